#!/usr/bin/env bash
# Reward 1 when /app/hello.txt holds exactly "Hello, world!", else 0.
set -u
mkdir -p /logs/verifier
if [ -f /app/hello.txt ] && [ "$(cat /app/hello.txt)" = "Hello, world!" ]; then
  echo "hello.txt is correct"
  echo 1 > /logs/verifier/reward.txt
else
  echo "hello.txt is missing or wrong: $(cat /app/hello.txt 2>&1 | head -c 200)"
  echo 0 > /logs/verifier/reward.txt
fi
