#!/usr/bin/env bash
# Runs the gateway with the shipped configuration; open http://localhost:8088/ (camera wall; /lab: echo test, streams, phone).
source "$(dirname "$0")/common.sh"
build_deps
node_deps
web_deps
exec cargo run --release --bin cardea -- --config conf/cardea.toml "$@"
