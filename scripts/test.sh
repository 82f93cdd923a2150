#!/usr/bin/env bash
# Installs what the tests need and runs them all: lints, unit and API conformance
# tests, and the interop tests against real peers (Chromium + janus.js, aiortc),
# the latter in a fresh network namespace where loopback is the only network.
source "$(dirname "$0")/common.sh"
apt_install build-essential pkg-config chromium iproute2 util-linux python3-venv
node_deps
web_deps
PY_VENV="$ROOT/interop-tests/.venv"
if [ ! -x "$PY_VENV/bin/python" ] || ! "$PY_VENV/bin/python" -c "import aiortc, numpy" 2>/dev/null; then
    echo ">> python venv with aiortc (interop-tests/.venv)"
    python3 -m venv "$PY_VENV"
    "$PY_VENV/bin/pip" install -q --disable-pip-version-check -r interop-tests/requirements.txt
fi

echo ">> cargo fmt --check"
cargo fmt --all --check
echo ">> cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo ">> cargo build (tests)"
cargo test --workspace --no-run --quiet

# The network namespace has only loopback: no test can reach anything else.
if unshare -n true 2>/dev/null; then
    exec unshare -n bash -c "ip link set lo up && cargo test --workspace --offline $*"
else
    echo "!! cannot create a network namespace (need root or unprivileged user namespaces);" >&2
    echo "!! the interop tests refuse to run on a machine with other networks." >&2
    exec cargo test --workspace --offline "$@"
fi
