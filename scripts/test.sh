#!/usr/bin/env bash
# Installs what the tests need and runs them all: lints, unit and API conformance
# tests, and the interop tests against real peers (Chromium + janus.js, aiortc, the
# docker-compose lab), the latter in a fresh network namespace where loopback is the
# only network.
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/docker.sh"
build_deps
apt_install chromium iproute2 util-linux python3-venv \
    gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly \
    gstreamer1.0-libav python3-gi gir1.2-gst-rtsp-server-1.0 \
    kamailio sip-tester baresip tcpdump coturn nftables docker.io docker-compose debootstrap \
    prometheus nats-server
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
cargo clippy --lib --features fuzzing --quiet -- -D warnings
echo ">> cargo check (fuzz targets, so they keep up with the code)"
(cd fuzz && cargo check --quiet)
echo ">> cargo build (tests)"
cargo test --workspace --lib --bins --tests --no-run --quiet
# The lab's images (the gateway's Dockerfile and lab/), built while the network is
# there; the lab test runs them in its namespace.
lab_images

# Unit, conformance and interop tests (no doctests: the crates have none that run).
# The network namespace has only loopback: no test can reach anything else.
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
set +e
TEST="cargo test --workspace --offline --lib --bins --tests $*"
if unshare -n true 2>/dev/null; then
    unshare -n bash -c "ip link set lo up && $TEST" 2>&1 | tee "$LOG"
else
    echo "!! cannot create a network namespace (need root or unprivileged user namespaces);" >&2
    echo "!! the interop tests refuse to run on a machine with other networks." >&2
    $TEST 2>&1 | tee "$LOG"
fi
status=${PIPESTATUS[0]}
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$LOG" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: .* ([0-9]+) failed' "$LOG" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
echo "all: $passed passed, $failed failed"
exit "$status"
