#!/usr/bin/env bash
# Quick start 1: build brace and run it on the embedded demo config.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec cargo run --release --quiet -- demo
