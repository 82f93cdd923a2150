# Cardea's container image.
#
#   docker build -t cardea .
#   docker run -p 8088:8088 -p 8188:8188 -p 10000-10003:10000-10003/udp \
#       -e CARDEA_PUBLIC_ADDRESS=<the address browsers reach this host at> cardea
#
# The shipped configuration (conf/cardea.toml, the demo source at /) is
# /etc/cardea/cardea.toml: mount your own over it. The whole lab: docker-compose.yml.
#
# Build arguments:
#   RUST_IMAGE  the build stage's image, with cargo and rustc (default rust:1-bookworm).
#               Without registry access, `scripts/docker.sh images` makes
#               cardea-rust:host from the machine's own toolchain on a debootstrapped
#               Debian: --build-arg RUST_IMAGE=cardea-rust:host.
#   BASE_IMAGE  the runtime's image (default debian:bookworm-slim, which the same script
#               makes locally with debootstrap when it cannot be pulled).
# Needs BuildKit (the default since Docker 23; DOCKER_BUILDKIT=1 before that).
ARG RUST_IMAGE=rust:1-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
# As scripts/common.sh's build_deps: ffmpeg-next's bindings (clang), the bundled
# libopus and aws-lc (cmake), libsrtp2 and OpenH264 (a C/C++ toolchain).
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends build-essential pkg-config clang libclang-dev \
       cmake libavcodec-dev libavformat-dev libavutil-dev libswresample-dev libswscale-dev \
       libavfilter-dev libavdevice-dev >/dev/null \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The registry and target caches outlive the build: a change to the gateway's code
# recompiles the gateway, not its dependencies. The sources are touched first: cargo
# judges freshness by modification times, and a copied file may be older than the
# cached build of its previous version. No debug info: a smaller image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    find . -path ./target -prune -o -type f -exec touch {} + \
    && CARGO_PROFILE_RELEASE_DEBUG=0 cargo build --release --locked --bin cardea \
    && cp target/release/cardea /usr/local/bin/cardea

# janus.js and its adapter for the pages, from the npm packages web/package-lock.json pins.
FROM ${RUST_IMAGE} AS web
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
    && mkdir -p /vendor/janus-gateway/npm/dist /vendor/webrtc-adapter/out \
    && cp node_modules/janus-gateway/npm/dist/janus.es.js /vendor/janus-gateway/npm/dist/ \
    && cp node_modules/webrtc-adapter/out/adapter.js /vendor/webrtc-adapter/out/

FROM ${BASE_IMAGE}
# Only the runtime libraries the binary links (FFmpeg 5.1's libavcodec for AAC and JPEG
# snapshots, its resampler and scaler); the gateway runs as an unprivileged user.
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends libavcodec59 libavutil57 libswresample4 \
       libswscale6 >/dev/null \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && useradd --system --uid 10001 --user-group --home-dir /usr/share/cardea \
       --shell /usr/sbin/nologin cardea
COPY --from=build /usr/local/bin/cardea /usr/local/bin/cardea
COPY --from=web /vendor /usr/share/cardea/web/node_modules
COPY conf/cardea.toml /etc/cardea/cardea.toml
# The shipped config's web.node_modules ("web/node_modules") is relative to here.
WORKDIR /usr/share/cardea
USER cardea
# Four media shards, whatever the host's cores: the UDP range to publish is fixed
# (CARDEA_MEDIA_SHARDS=N at run time needs 10000 to 10000+N-1 published).
ENV CARDEA_MEDIA_SHARDS=4
# HTTP API and pages, WebSocket API, one media UDP port per shard (SIP's ports are the
# configuration's: the lab's are in docker-compose.yml).
EXPOSE 8088/tcp 8188/tcp 10000-10003/udp
# GET /janus/info with bash alone (no curl in the image): healthy once the API answers
# (on the shipped port, 8088: a configuration that moves it needs its own HEALTHCHECK).
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8088 && printf 'GET /janus/info HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q server_info <&3"]
ENTRYPOINT ["cardea"]
CMD ["--config", "/etc/cardea/cardea.toml"]
