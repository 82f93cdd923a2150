#!/usr/bin/env bash
# The Docker side of the tests (sourced by test.sh; also runnable: `scripts/docker.sh images`).
#
# A private Docker engine (its own socket, data root and exec root), so nothing here
# touches a Docker the machine already runs; the images it builds stay in its data
# root for the next run. The lab test (interop-tests/tests/docker_lab.rs) starts the
# same engine again inside its own network namespace, where the images are all built
# already, so the lab's traffic never leaves that namespace.
#
# No registry is reachable here: `debian:bookworm-slim` is made locally by debootstrap
# from the Debian mirror apt uses, and the Dockerfile's Rust stage runs on
# `cardea-rust:host`, this machine's Rust toolchain on that base (the Dockerfile's
# RUST_IMAGE build argument; with registry access the default rust:1-bookworm is used).
set -euo pipefail

CARDEA_DOCKER_ROOT="${CARDEA_DOCKER_ROOT:-/var/lib/cardea-docker}"
CARDEA_DOCKER_RUN="${CARDEA_DOCKER_RUN:-/run/cardea-docker}"
CARDEA_DOCKER_BRIDGE=cardea0
export DOCKER_HOST="unix://$CARDEA_DOCKER_RUN/docker.sock"
# Debian's client (20.10, the engine's version, with its built-in BuildKit), not any
# newer client on the PATH that wants the buildx plugin.
DOCKER=/usr/bin/docker

docker_up() {
    if $DOCKER info >/dev/null 2>&1; then return; fi
    mkdir -p "$CARDEA_DOCKER_RUN"
    echo ">> dockerd (data root $CARDEA_DOCKER_ROOT)"
    # Its own bridge (not docker0, which a Docker the machine runs may own), removed by docker_down.
    if ! ip link show "$CARDEA_DOCKER_BRIDGE" >/dev/null 2>&1; then
        ip link add "$CARDEA_DOCKER_BRIDGE" type bridge
        ip addr add 10.213.89.1/24 dev "$CARDEA_DOCKER_BRIDGE"
        ip link set "$CARDEA_DOCKER_BRIDGE" up
    fi
    dockerd --host "$DOCKER_HOST" --data-root "$CARDEA_DOCKER_ROOT" --bridge "$CARDEA_DOCKER_BRIDGE" \
        --exec-root "$CARDEA_DOCKER_RUN/exec" --pidfile "$CARDEA_DOCKER_RUN/dockerd.pid" \
        >"$CARDEA_DOCKER_RUN/dockerd.log" 2>&1 &
    for _ in $(seq 1 60); do
        if $DOCKER info >/dev/null 2>&1; then return; fi
        sleep 0.5
    done
    tail -20 "$CARDEA_DOCKER_RUN/dockerd.log" >&2
    echo "!! dockerd did not start" >&2
    return 1
}

docker_down() {
    local pid
    pid=$(cat "$CARDEA_DOCKER_RUN/dockerd.pid" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 60); do
        if ! kill -0 "$pid" 2>/dev/null; then
            ip link delete "$CARDEA_DOCKER_BRIDGE" 2>/dev/null || true
            return 0
        fi
        sleep 0.5
    done
    echo "!! dockerd $pid did not stop" >&2
}

# The apt sources of this machine's Debian mirror (deb822 or one-line), for the base image.
debian_mirror() {
    local uri
    uri=$(grep -hoE '^URIs: *\S+' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1 | awk '{print $2}')
    [ -n "$uri" ] || uri=$(grep -hoE '^deb +\S+/debian ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')
    echo "${uri:-http://deb.debian.org/debian}"
}

base_image() {
    if $DOCKER image inspect debian:bookworm-slim >/dev/null 2>&1; then return; fi
    local mirror dir
    mirror=$(debian_mirror)
    dir=$(mktemp -d /var/tmp/cardea-rootfs.XXXXXX)
    echo ">> debian:bookworm-slim from debootstrap --variant=minbase bookworm $mirror"
    debootstrap --variant=minbase bookworm "$dir" "$mirror" >/dev/null
    cat >"$dir/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
EOF
    # As the official image: no recommends, no caches, no docs.
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
        >"$dir/etc/apt/apt.conf.d/90slim"
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb \
        "$dir"/usr/share/doc/* "$dir"/usr/share/man/*
    tar -C "$dir" -c . | $DOCKER import -c 'CMD ["bash"]' - debian:bookworm-slim >/dev/null
    rm -rf "$dir"
}

# This machine's toolchain (rustc, cargo, the x86_64 standard library) and trust store
# on the base image: the Dockerfile's Rust stage without a registry.
rust_image() {
    local sysroot version ctx
    sysroot=$(rustc --print sysroot)
    version=$(rustc --version | awk '{print $2}')
    if [ "$($DOCKER image inspect -f '{{index .Config.Labels "rustc"}}' cardea-rust:host 2>/dev/null)" = "$version" ]; then
        return
    fi
    echo ">> cardea-rust:host (rustc $version from this machine)"
    ctx=$(mktemp -d /var/tmp/cardea-rust.XXXXXX)
    mkdir -p "$ctx/rust/bin" "$ctx/rust/lib/rustlib" "$ctx/ca"
    cp "$sysroot/bin/rustc" "$sysroot/bin/cargo" "$sysroot/bin/rustdoc" "$ctx/rust/bin/"
    cp -a "$sysroot"/lib/*.so* "$ctx/rust/lib/"
    cp -a "$sysroot/lib/rustlib/x86_64-unknown-linux-gnu" "$ctx/rust/lib/rustlib/"
    cp /usr/local/share/ca-certificates/*.crt "$ctx/ca/" 2>/dev/null || true
    cat >"$ctx/Dockerfile" <<EOF
FROM debian:bookworm-slim
LABEL rustc="$version"
COPY rust /usr/local/rust
# This machine's extra certificate authorities (a proxy's, say): the build reaches the
# registries the way the machine does. update-ca-certificates keeps them.
COPY ca /usr/local/share/ca-certificates
RUN apt-get update -qq && apt-get install -y -qq ca-certificates >/dev/null && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/local/rust/bin:/usr/local/cargo/bin:\$PATH CARGO_HOME=/usr/local/cargo \\
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
EOF
    DOCKER_BUILDKIT=1 $DOCKER build -q -t cardea-rust:host "$ctx" >/dev/null
    rm -rf "$ctx"
}

# Every image the lab needs, built (or found in the cache) while the network is there.
lab_images() {
    docker_up
    base_image
    rust_image
    echo ">> docker-compose build (the lab: cardea, camera, pbx, phone, turn)"
    (cd "$ROOT" && RUST_IMAGE=cardea-rust:host COMPOSE_DOCKER_CLI_BUILD=1 DOCKER_BUILDKIT=1 \
        PATH="/usr/bin:$PATH" docker-compose build -q)
    $DOCKER image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^cardea' || true
    docker_down
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    ROOT=$(cd "$(dirname "$0")/.." && pwd)
    case "${1:-}" in
    images) lab_images ;;
    up) docker_up ;;
    down) docker_down ;;
    *) echo "usage: $0 images|up|down" >&2; exit 2 ;;
    esac
fi
