#!/usr/bin/env bash
# The whole test suite on a fresh machine: prepares what the tests need that cargo cannot
# fetch (Debian's Chromium and chromedriver for the viewer's browser tests, xmllint for the
# JUnit report's), checks that
# a Docker engine answers, then runs `cargo test` with the arguments given
# (`scripts/test.sh --test viewer`, `scripts/test.sh -- --nocapture`).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'scripts/test.sh: %s\n' "$*" >&2; }

# What tests run that cargo cannot fetch: the browser tests drive /usr/bin/chromium through
# /usr/bin/chromedriver (tests/common/browser.rs); the JUnit report is checked against its
# schema by xmllint (tests/report.rs).
missing=()
{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || missing+=(chromium chromium-driver)
command -v xmllint >/dev/null || missing+=(libxml2-utils)
if [ ${#missing[@]} -gt 0 ]; then
    packages="${missing[*]}"
    if [ "$(id -u)" = 0 ]; then
        as_root=()
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        say "the tests need Debian's $packages, and installing them needs root:"
        say "run \`sudo apt-get install $packages\`, then this script again"
        exit 1
    fi
    if ! command -v apt-get >/dev/null; then
        say "the tests need Debian's $packages (Chromium and chromedriver in /usr/bin, xmllint);"
        say "this machine has no apt-get: install them by hand"
        exit 1
    fi
    say "installing $packages"
    "${as_root[@]}" apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Most end-to-end tests run trials in Docker: say so now rather than in a hundred failures.
if ! docker info >/dev/null 2>&1; then
    say "warning: no Docker engine answers (\`docker info\` fails); the end-to-end tests need one"
fi

exec cargo test "$@"
