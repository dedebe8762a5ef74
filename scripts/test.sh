#!/usr/bin/env bash
# The test suite on a fresh machine, by tier (docs/testing.md):
#
#   bash scripts/test.sh                  every tier: what CI runs
#   bash scripts/test.sh fast             no Docker (none to reach), no network: unit,
#                                         fake-environment, CLI, schema, layering,
#                                         property and doc tests
#   bash scripts/test.sh docker           the provider conformance suite and CLI runs on Docker
#   bash scripts/test.sh heavy            installed agents, Chromium, desktop and SDK images
#   bash scripts/test.sh docker -- apply  more arguments go to `cargo nextest run`
#
# It prepares what the tests need that cargo cannot fetch: cargo-nextest itself (installed
# from crates.io when missing), and for the tiers that use them Debian's Chromium and
# chromedriver (the viewer's browser tests) and xmllint (the JUnit report's schema check).
# Every test runs even after one fails; nextest ends with the failed tests by name, and the
# exit status is non-zero when anything failed. The dockerd restart and wedge tests (heavy)
# touch this machine's Docker daemon, so they only do so with HELIOS_TEST_DOCKERD_RESTART=1
# and HELIOS_TEST_DOCKERD_WEDGE=1 set (as `.ci/run` does).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'scripts/test.sh: %s\n' "$*" >&2; }

tiers=()
while [ $# -gt 0 ]; do
    case "$1" in
        fast|docker|heavy) tiers+=("$1"); shift ;;
        --) shift; break ;;
        *) break ;;
    esac
done
has_tier() {
    [ ${#tiers[@]} -eq 0 ] && return 0
    local t
    for t in "${tiers[@]}"; do [ "$t" = "$1" ] && return 0; done
    return 1
}

# What tests run that cargo cannot fetch: the browser tests drive /usr/bin/chromium through
# /usr/bin/chromedriver (tests/common/browser.rs); the JUnit report is checked against its
# schema by xmllint (tests/report.rs).
missing=()
if has_tier heavy; then
    { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || missing+=(chromium chromium-driver)
fi
if has_tier docker; then
    command -v xmllint >/dev/null || missing+=(libxml2-utils)
fi
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

# The runner of the tiers (profiles in .config/nextest.toml). Installing it compiles it
# once, about 3 minutes on two cores (docs/testing.md).
if ! cargo nextest --version >/dev/null 2>&1; then
    say "installing cargo-nextest from crates.io (once)"
    cargo install --locked --quiet cargo-nextest
fi

# The Docker tiers run trials in Docker: say so now rather than in fifty failures.
if { has_tier docker || has_tier heavy; } && ! docker info >/dev/null 2>&1; then
    say "warning: no Docker engine answers (\`docker info\` fails); the docker and heavy tiers need one"
fi

# The nextest profiles to run: the docker and heavy tiers together are one run (`slow`),
# every tier is one run of everything, so that CPU work overlaps the Docker waits.
profiles=()
if [ ${#tiers[@]} -eq 0 ] || { has_tier fast && has_tier docker && has_tier heavy; }; then
    profiles=(default)
else
    has_tier fast && profiles+=(fast)
    if has_tier docker && has_tier heavy; then
        profiles+=(slow)
    else
        has_tier docker && profiles+=(docker)
        has_tier heavy && profiles+=(heavy)
    fi
fi
status=0
for profile in "${profiles[@]}"; do
    say "cargo nextest run --profile $profile $*"
    cargo nextest run --profile "$profile" "$@" || status=$?
done
# nextest does not run doc tests; they belong to the fast tier, which runs with no Docker
# engine to reach (nextest's fast tests get the same DOCKER_HOST: .config/nextest.toml).
if has_tier fast && [ $# -eq 0 ]; then
    DOCKER_HOST=unix:///nonexistent/docker.sock cargo test --doc --quiet || status=$?
fi
if [ "$status" -ne 0 ]; then
    say "FAILED: the failed tests are listed above, after \`Summary\`"
else
    say "every test passed"
fi
exit "$status"
