#!/usr/bin/env bash
# Installs what building and testing brace needs when it is missing: cmake (the pingora build),
# promtool (the metrics format check and the alert-rule tests), curl and openssl (the TLS and
# HTTP/2 test), chromium (the status page test renders the page in a headless browser),
# Debian's python3 with grpcio (a real gRPC server and client for the gRPC test), and
# redis-server and dnsmasq (a real shared store and a real DNS server for the fleet tests).
# Debian/Ubuntu, via apt-get.
set -euo pipefail
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
/usr/bin/python3 -c 'import grpc' >/dev/null 2>&1 || need+=(python3-grpcio)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
if ! command -v cargo >/dev/null 2>&1; then
  echo "brace needs a Rust toolchain (cargo): see https://rustup.rs" >&2
  exit 1
fi
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${need[*]} with apt-get" >&2
# The prometheus package would start a Prometheus server; only its promtool is wanted, so
# tell invoke-rc.d not to start services during this install (Debian's policy-rc.d).
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod +x "$policy"
  made_policy=1
fi
trap '[ "$made_policy" = 1 ] && $sudo rm -f "$policy"' EXIT
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
