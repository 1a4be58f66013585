#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this).
#
# It installs what the tests need when missing (openssh-server, etcd, chromium, the Go toolchain that
# builds the test kube-apiserver), builds that apiserver and unpacks a matching kubectl once
# into a cache outside the repo, starts etcd + apiserver on loopback for the run and stops
# them after. Nothing that needs a real server is skipped: KUPGRADE_REQUIRE_REAL_SERVERS=1
# turns a missing server into a failure.
#
# Environment:
#   CARGO_TARGET_DIR     defaults to /var/cache/kupgrade/target (kept between runs)
#   KUPGRADE_CACHE_DIR   defaults to /var/cache/kupgrade (test apiserver build, kubectl)
#   KUPGRADE_QUICK=1     skip the bench and fuzz builds
#   KUPGRADE_FLEET=0     skip scripts/fleet.sh test (real nodes, real apt/dnf/zypper, real SSH,
#                        20 seeded faults each resumed to the target; needs root)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/kupgrade/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
mkdir -p "$CARGO_TARGET_DIR"

step() { printf '\n==> %s (%ss)\n' "$*" "$SECONDS"; }

step "test prerequisites"
scripts/testenv.sh packages

step "reference data in sync with ../shared/data"
scripts/check-data.sh

step "formatting"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --quiet

step "test kube-apiserver and kubectl (cached)"
scripts/testenv.sh apiserver
scripts/testenv.sh kubectl

ENVDIR=$(mktemp -d /tmp/kupgrade-testenv.XXXXXX)
cleanup() { scripts/testenv.sh down "$ENVDIR" || true; rm -rf "$ENVDIR"; }
trap cleanup EXIT
step "start etcd + kube-apiserver"
scripts/testenv.sh up "$ENVDIR"
# shellcheck disable=SC1091
source "$ENVDIR/env"
export KUPGRADE_REQUIRE_REAL_SERVERS=1

step "tests and doctests"
cargo test --workspace --all-features --no-fail-fast

step "examples"
scripts/run-examples.sh

# Real Debian nodes in network namespaces, real apt, dnf and zypper over real SSH, under 20
# seeded faults (README, "Real nodes on this machine"); its root and repositories are cached
# beside the test apiserver.
if [ "${KUPGRADE_FLEET:-1}" = 1 ]; then
  step "fleet: upgrades of real nodes over SSH under 20 faults"
  scripts/fleet.sh packages
  scripts/fleet.sh test --faults "${KUPGRADE_FLEET_FAULTS:-20}" --seed "${KUPGRADE_FLEET_SEED:-1}"
fi

if [ "${KUPGRADE_QUICK:-0}" != 1 ]; then
  step "benches build"
  cargo bench --workspace --no-run --quiet
  step "fuzz targets build"
  cargo build --manifest-path fuzz/Cargo.toml --quiet
fi
step "all checks passed"
