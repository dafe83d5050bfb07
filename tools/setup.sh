#!/usr/bin/env bash
# Installs what the build, the tests and the run scripts need, and nothing else: missing Debian
# packages (as root: `apt-get update` once, then install) and the npm packages when node_modules is
# older than package-lock.json. Quiet when everything is present; one clear line when it cannot.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(qemu-system-x86 qemu-utils wabt clang lld nasm binutils python3 ncat socat busybox-static
  xz-utils zstd cpio kmod libnode-dev tshark tcpdump python3-matplotlib iperf3)
# Each package is checked by a file it installs (fast; dpkg-query for every make would be slow).
declare -A PROVIDES=(
  [qemu-system-x86]=/usr/bin/qemu-system-x86_64 [qemu-utils]=/usr/bin/qemu-img [wabt]=/usr/bin/wasm2c
  [clang]=/usr/bin/clang [lld]=/usr/bin/ld.lld [nasm]=/usr/bin/nasm [binutils]=/usr/bin/objdump
  [python3]=/usr/bin/python3 [ncat]=/usr/bin/ncat [socat]=/usr/bin/socat [busybox-static]=/bin/busybox
  [xz-utils]=/usr/bin/xz [zstd]=/usr/bin/zstd [cpio]=/usr/bin/cpio [kmod]=/usr/bin/kmod
  [libnode-dev]=/usr/include/node/node_api.h  # N-API headers for the vhost-user addon (any node's will do)
  [tshark]=/usr/bin/tshark [tcpdump]=/usr/bin/tcpdump
  [python3-matplotlib]=/usr/lib/python3/dist-packages/matplotlib/__init__.py
  [iperf3]=/usr/bin/iperf3  # the client the iperf3 tests drive through the TCP forward
)

missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
  [ -e "${PROVIDES[$package]}" ] || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q "${missing[@]}" >/tmp/vsockfw-apt.log 2>&1; then
    apt-get update -q >>/tmp/vsockfw-apt.log 2>&1 || true
    if ! apt-get install -y -q "${missing[@]}" >>/tmp/vsockfw-apt.log 2>&1; then
      echo "setup: could not install ${missing[*]} (no package registry?); see /tmp/vsockfw-apt.log" >&2
      exit 1
    fi
  fi
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup: node and npm are needed (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi

# node_modules is current when npm's own record of it is newer than the lock file.
if [ ! -e node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  if ! npm ci --no-audit --no-fund --loglevel=error >/tmp/vsockfw-npm.log 2>&1; then
    echo "setup: npm ci failed (no npm registry?); see /tmp/vsockfw-npm.log" >&2
    exit 1
  fi
  touch node_modules/.package-lock.json
fi
