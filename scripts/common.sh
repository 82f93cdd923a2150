# Shared by run.sh and test.sh: install what a fresh Debian 12 machine lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# Keep build products outside the checkout so fresh clones (CI) reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/cardea-target}"
# Cargo never prunes old artifacts: start over when the cache passes 15 GB.
if [ -d "$CARGO_TARGET_DIR" ] && [ "$(du -s "$CARGO_TARGET_DIR" | cut -f1)" -gt 15000000 ]; then
    echo ">> $CARGO_TARGET_DIR is over 15 GB; removing it"
    rm -rf "$CARGO_TARGET_DIR"
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo ">> apt-get install ${missing[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

build_deps() {
    # C toolchain (also configure + make for the bundled libsrtp2); clang + libclang +
    # libav*-dev for ffmpeg-next's bindings (AAC decoding) and srtp2-sys's; cmake for
    # the bundled libopus.
    apt_install build-essential pkg-config clang libclang-dev cmake \
        libavcodec-dev libavformat-dev libavutil-dev libswresample-dev libswscale-dev \
        libavfilter-dev libavdevice-dev
}

node_deps() {
    # The machine image may ship Node.js with its own npm (which Debian's npm package conflicts with).
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        apt_install nodejs npm
    fi
}

web_deps() {
    # janus.js and its adapter for the demo page, playwright-core for the browser tests.
    if [ ! -d web/node_modules/janus-gateway ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
        echo ">> npm ci (web/)"
        (cd web && npm ci --no-audit --no-fund --loglevel=error)
    fi
}
