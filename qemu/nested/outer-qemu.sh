#!/bin/bash
# Prepares (once) the QEMU that runs the outer VM ("L0", TCG emulating SVM for nested KVM): Debian's
# bookworm-backports qemu-system-x86, unpacked under ~/.cache/vsockfw/ with a private apt list, so
# the system's QEMU (bookworm's 7.2, which boots the firmware everywhere else, also inside L1) stays.
# Why: 7.2's TCG SVM delivers interrupts inside STI's shadow (a nested guest's `sti; hlt` then
# halts for good) and runs the outer VM slower; 10.0 showed no such interrupt, and its suites run in
# two thirds of the time (docs/reliability.md, "The outer VM now runs on QEMU 10.0").
# Prints a command (a wrapper script) on stdout; exit 1 when it cannot be had (no registry).
set -euo pipefail

# Pinned: what bookworm-backports held on 2026-12-07. VSOCKFW_OUTER_QEMU_VERSION overrides.
VERSION=${VSOCKFW_OUTER_QEMU_VERSION:-1:10.0.2+ds-2+deb13u1~bpo12+1}
PACKAGES="qemu-system-x86 qemu-system-common qemu-system-data"
MIRROR=${VSOCKFW_DEBIAN_MIRROR:-http://deb.debian.org/debian}

cache=${VSOCKFW_CACHE:-$HOME/.cache/vsockfw}
dir=$cache/qemu-${VERSION//[:~+]/_}
say() { echo "vsockfw: $*" >&2; }

# A system QEMU of 10 or newer (e.g. Debian 13's) serves as it is.
system_major=$(qemu-system-x86_64 --version 2>/dev/null | sed -n '1s/.*version \([0-9]*\)\..*/\1/p')
if [ "${system_major:-0}" -ge 10 ]; then echo qemu-system-x86_64; exit 0; fi

if [ ! -x "$dir/qemu" ]; then
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/qemu-unpack.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  apt_dir=$cache/apt-backports
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
  echo "deb $MIRROR bookworm-backports main" >"$apt_dir/sources.list"
  apt=(apt-get -q -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
       -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir")
  wanted=(); for p in $PACKAGES; do wanted+=("$p=$VERSION"); done
  say "downloading QEMU $VERSION from bookworm-backports for the outer VM (one time) ..."
  if ! (cd "$work" && "${apt[@]}" download "${wanted[@]}" >/dev/null 2>&1); then
    "${apt[@]}" update >/dev/null 2>&1 || true
    (cd "$work" && "${apt[@]}" download "${wanted[@]}" >/dev/null 2>&1) || { say "cannot download QEMU $VERSION"; exit 1; }
  fi
  for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
  missing=$(ldd "$work/root/usr/bin/qemu-system-x86_64" | grep 'not found' || true)
  [ -z "$missing" ] || { say "QEMU $VERSION needs libraries this machine lacks: $missing"; exit 1; }
  rm -rf "$dir"; mkdir -p "$dir"
  mv "$work/root" "$dir/root"
  # Its own data first; the BIOS (seabios) and option ROMs it does not ship come from the system's.
  printf '#!/bin/sh\nexec %q -L %q -L /usr/share/qemu "$@"\n' \
    "$dir/root/usr/bin/qemu-system-x86_64" "$dir/root/usr/share/qemu" >"$dir/qemu.new"
  chmod +x "$dir/qemu.new"; mv "$dir/qemu.new" "$dir/qemu"
fi
echo "$dir/qemu"
