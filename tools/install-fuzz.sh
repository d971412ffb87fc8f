#!/usr/bin/env bash
# Make sure `cargo xtask fuzz` can run: the nightly toolchain (cargo-fuzz needs it for
# the sanitizer-coverage flags) and cargo-fuzz itself. Idempotent: what is there stays.
# Exit status: 0 ready, 2 the nightly toolchain is missing, 1 anything else failed.
set -euo pipefail

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "install-fuzz: the nightly toolchain is missing; install it with:" >&2
    echo "install-fuzz:     rustup toolchain install nightly --profile minimal" >&2
    exit 2
fi

# `--locked`: cargo-fuzz built with the dependency versions it was released with, so a
# new release of one of them cannot break the install. The xtask was written against
# cargo-fuzz 0.13 (`build` and `run` with -a and -s, libFuzzer options after `--`).
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "install-fuzz: installing cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
    if ! cargo install cargo-fuzz --locked; then
        echo "install-fuzz: could not install cargo-fuzz (it needs a C++ compiler, g++)" >&2
        exit 1
    fi
fi

echo "install-fuzz: $(cargo fuzz --version), $(cargo +nightly --version)" >&2
