#!/bin/bash
# Prepares (once) what the outer VM ("L1", the vhost-vsock host) and the Linux stand-in guest boot:
# a Debian kernel, the few modules they need (with modules.dep), and one busybox initramfs holding
# both init scripts. Everything lives under ~/.cache/vsockfw/, outside the repo.
# Prints the prepared directory on stdout; quiet when cached, progress on stderr while it works.
set -euo pipefail

# Pinned: what `apt-cache depends linux-image-amd64` named on 2026-11-21 (bookworm-security).
PINNED_KVER=${VSOCKFW_KVER:-6.1.0-56-amd64}  # VSOCKFW_KVER overrides (for testing the fallback)
# The modules L1 (9p root, vhost-vsock, nested KVM, the vsockmon capture device) and the stand-in
# guest (virtio vsock) load; their dependencies are added from modules.dep.
MODULES="virtio_pci 9pnet_virtio 9p vhost_vsock kvm-amd vmw_vsock_virtio_transport vsockmon"

here=$(cd "$(dirname "$0")" && pwd)
cache=${VSOCKFW_CACHE:-$HOME/.cache/vsockfw}
mkdir -p "$cache"

say() { echo "vsockfw: $*" >&2; }
scratch=()   # work directories removed on any exit (an interrupted preparation leaves nothing behind)
trap 'rm -rf "${scratch[@]}"' EXIT

# Everything that shapes the initramfs; a change rebuilds it.
inputs_hash() {
  cat "$0" "$here/init-l1.sh" "$here/linux-guest/init.sh" /bin/busybox | sha256sum | cut -c1-16
}

# modules.ok lists the modules unpacked: a module added to $MODULES unpacks the kernel again.
prepared() {  # $1 = kernel version
  [ -s "$cache/linux-$1/vmlinuz" ] && [ "$(cat "$cache/linux-$1/modules.ok" 2>/dev/null)" = "$MODULES" ]
}

fetch_kernel() {  # $1 = kernel version; unpacks vmlinuz + module subset into $cache/linux-$1
  local kver=$1 dir=$cache/linux-$1 work
  prepared "$kver" && return 0
  work=$(mktemp -d "$cache/unpack.XXXXXX"); scratch+=("$work")
  say "downloading linux-image-$kver (one time) ..."
  if ! (cd "$work" && apt-get download -q "linux-image-$kver" >/dev/null 2>&1); then
    say "apt-get download failed; running apt-get update once"
    apt-get update -q >/dev/null 2>&1 || true
    if ! (cd "$work" && apt-get download -q "linux-image-$kver" >/dev/null 2>&1); then
      rm -rf "$work"; return 1
    fi
  fi
  say "unpacking kernel and modules ..."
  dpkg-deb -x "$work"/linux-image-*.deb "$work/x"
  local src=$work/x/lib/modules/$kver
  busybox depmod -b "$work/x" "$kver"
  rm -rf "$dir"; mkdir -p "$dir/root/lib/modules/$kver"
  cp "$work/x/boot/vmlinuz-$kver" "$dir/vmlinuz"
  # Dependency closure of $MODULES from modules.dep.
  local want=() m line deps
  for m in $MODULES; do
    line=$(grep -E "/${m}\.ko(\.[a-z]+)?:" "$src/modules.dep") || { say "module $m missing"; rm -rf "$work"; return 1; }
    want+=("${line%%:*}")
    deps=${line#*:}
    for d in $deps; do want+=("$d"); done
  done
  for f in $(printf '%s\n' "${want[@]}" | sort -u); do
    mkdir -p "$dir/root/lib/modules/$kver/$(dirname "$f")"
    cp "$src/$f" "$dir/root/lib/modules/$kver/$f"
  done
  cp "$src"/modules.builtin* "$dir/root/lib/modules/$kver/" 2>/dev/null || true
  busybox depmod -b "$dir/root" "$kver"
  echo "$kver" >"$dir/kver"
  echo "$MODULES" >"$dir/modules.ok"
  rm -rf "$work"
}

pick_kernel() {  # sets $kver (no subshell, so the EXIT trap sees every scratch directory)
  kver=$PINNED_KVER
  prepared "$kver" && return
  # The pin was found gone before: keep using the fallback chosen then (no apt traffic).
  local previous
  previous=$(cat "$cache/fallback-$kver" 2>/dev/null || true)
  [ -n "$previous" ] && prepared "$previous" && { kver=$previous; return; }
  fetch_kernel "$kver" && return
  kver=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: linux-image-\(.*\)$/\1/p' | head -1)
  [ -n "$kver" ] || { say "cannot find a Debian kernel package"; exit 1; }
  say "pinned kernel $PINNED_KVER is gone; using linux-image-$kver"
  fetch_kernel "$kver" || { say "cannot download linux-image-$kver"; exit 1; }
  echo "$kver" >"$cache/fallback-$PINNED_KVER"
}

build_initrd() {  # $1 = kernel dir
  local dir=$1 hash root
  hash=$(inputs_hash)
  [ -s "$dir/initrd.gz" ] && [ "$(cat "$dir/initrd.hash" 2>/dev/null)" = "$hash" ] && return 0
  say "building initramfs ..."
  root=$(mktemp -d "$cache/initrd.XXXXXX"); scratch+=("$root")
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,newroot,job,results,tmp}
  cp /bin/busybox "$root/bin/busybox"
  cp -a "$dir/root/lib" "$root/lib"
  install -m 755 "$here/init-l1.sh" "$root/init"
  install -m 755 "$here/linux-guest/init.sh" "$root/init-l2"
  (cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$dir/initrd.gz.new"
  mv "$dir/initrd.gz.new" "$dir/initrd.gz"
  echo "$hash" >"$dir/initrd.hash"
  rm -rf "$root"
}

# The initramfs runs /bin/busybox with no libc beside it: it must be busybox-static.
dpkg -s busybox-static >/dev/null 2>&1 || { say "busybox-static is required (apt-get install busybox-static)"; exit 1; }
pick_kernel
build_initrd "$cache/linux-$kver"
echo "$cache/linux-$kver"
