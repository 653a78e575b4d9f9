#!/usr/bin/env bash
# Installs the named tools with apt-get when missing (the load scripts' shared set-up).
#   bash benches/load/install.sh nginx haproxy wrk taskset valgrind
set -euo pipefail
need=()
for tool in "$@"; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  pkgs=()
  for t in "${need[@]}"; do case "$t" in taskset) pkgs+=(util-linux);; callgrind_control) pkgs+=(valgrind);; *) pkgs+=("$t");; esac; done
  echo "load: installing ${pkgs[*]}" >&2
  $sudo apt-get update -qq
  # The nginx and haproxy packages would start system services; the harness runs its own.
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d.brace >/dev/null
  [ -e /usr/sbin/policy-rc.d ] || { $sudo cp /usr/sbin/policy-rc.d.brace /usr/sbin/policy-rc.d; $sudo chmod +x /usr/sbin/policy-rc.d; made=1; }
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  [ "${made:-0}" = 1 ] && $sudo rm -f /usr/sbin/policy-rc.d
  $sudo rm -f /usr/sbin/policy-rc.d.brace
fi
