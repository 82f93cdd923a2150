#!/usr/bin/env bash
# Runs the gateway with the shipped configuration; open http://localhost:8088/ for the echo test.
source "$(dirname "$0")/common.sh"
apt_install build-essential pkg-config
node_deps
web_deps
exec cargo run --release --bin cardea -- --config conf/cardea.toml "$@"
