#!/usr/bin/env bash
# Runs the lossy-network views of interop-tests/tests/video_under_packet_loss.rs against
# Janus 1.1.2 (Debian's package, installed here) for comparison with Cardea's figures,
# which `scripts/test.sh` prints. Needs what scripts/test.sh installed.
source "$(dirname "$0")/common.sh"
build_deps
apt_install janus chromium iproute2 util-linux nftables gstreamer1.0-tools \
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
node_deps
web_deps
TEST="cargo test -p interop-tests --test video_under_packet_loss -- --ignored --nocapture janus_under_the_same_loss"
unshare -n bash -c "ip link set lo up && $TEST"
