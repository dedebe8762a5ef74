#!/usr/bin/env bash
# The whole test suite on a fresh machine: prepares what the tests need that cargo cannot
# fetch (Debian's Chromium and chromedriver for the viewer's browser tests, xmllint for the
# JUnit report's), checks that
# a Docker engine answers, then runs `cargo test --no-fail-fast` with the arguments given
# (`scripts/test.sh --test viewer`, `scripts/test.sh -- --nocapture`): every test binary
# runs even when an earlier one fails, and the end says how many tests failed in which
# binary, by name. The exit status is cargo's (non-zero when anything failed).
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

# Every binary runs (no stop at the first that fails), the output both shown and kept so
# that the end can sum up what failed where.
log="$(mktemp "${TMPDIR:-/tmp}/helios-test.XXXXXX")"
trap 'rm -f "$log"' EXIT
set +e
cargo test --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# cargo names each binary on a `Running ...` line (`Doc-tests` for doc tests); a failed
# binary lists its failing tests after `failures:` as `    name` lines and ends with
# `test result: FAILED. ... N failed` (the first `failures:` block holds each test's output
# under `---- name stdout ----`, the last one the names). A binary that does not build or crashes shows up in
# cargo's closing `error: N targets failed:` list instead, which is printed as it is.
summary="$(awk '
    /^ *Running / { binary = ($2 == "unittests") ? $3 : $2; next }
    /^ *Doc-tests / { binary = "doc-tests " $2; next }
    /^failures:$/ { listing = 1; names[binary] = ""; next }
    /^---- / { listing = 0; next }
    listing && /^    [^ ]/ { names[binary] = names[binary] "\n    " substr($0, 5); next }
    /^test result: FAILED/ {
        listing = 0
        match($0, /[0-9]+ failed/); failed = substr($0, RSTART, RLENGTH - 7)
        total += failed
        printf "  %s: %s failed%s\n", binary, failed, names[binary]
    }
    END { if (total > 0) printf "TOTAL %d\n", total }
' "$log")"
if [ "$status" -ne 0 ]; then
    say "FAILED (cargo exited with $status)"
    if [ -n "$summary" ]; then
        total="$(printf '%s\n' "$summary" | sed -n 's/^TOTAL //p')"
        say "$total test(s) failed, by test binary:"
        printf '%s\n' "$summary" | grep -v '^TOTAL ' >&2
    fi
    if grep -q '^error: [0-9]* targets\? failed' "$log"; then
        sed -n '/^error: [0-9]* targets\? failed/,$p' "$log" >&2
    fi
else
    say "every test passed"
fi
exit "$status"
