#!/usr/bin/env bash
# The lab's base image: Debian 13 (trixie) minbase with systemd, a kernel, nodejs and what a Tabula
# laptop needs, plus Tabula's initramfs hook (assets/boot), built into the initramfs. Cached in
# $TABULA_LAB_CACHE (default /var/cache/tabula-lab) under a hash of this recipe and the hook, so it
# is rebuilt only when one of them changes (or the cache is missing).
# Usage: build-base.sh  -> prints the cached tree's path on the last line.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${TABULA_LAB_CACHE:-/var/cache/tabula-lab}"

packages=(
  systemd systemd-sysv udev kmod dbus libpam-systemd login
  linux-image-amd64 initramfs-tools busybox   # busybox: cp/mv/rm for the initramfs hook
  zstd                                        # initramfs-tools compresses with it (COMPRESS=zstd; gzip without it)
  systemd-boot systemd-boot-efi               # the EFI loader the lab puts on the ESP, and systemd-bless-boot
  nodejs rsync openssh-server openssh-client  # Tabula's agent, the backup and image transport
  polkitd pkexec                              # the agent reaches tabula-helper through pkexec
  procps iproute2
  curl                                        # the lab's cheap status probe on the agent's socket (laptop.ts peek)
  inotify-tools                               # the agent's change journal (inotifywait): the package recommends it, apt installs it
  libsecret-1-0                               # keytar in the Tabula package links it
)
key="$(cat "$0" "$here/customize-base.sh" "$repo/assets/boot/usr/share/initramfs-tools/scripts/local-bottom/tabula" | sha256sum | cut -c1-16)"
out="$cache/base-$key"
# Two labs may start at once (two worktrees, or the rsync-tree and ostree engineers' runs, which both
# pass here): one builds, the other waits for it and uses the same tree.
mkdir -p "$cache"
exec 9>"$cache/base-$key.lock"
flock 9
# Marked as used (the folder's time): the removal of superseded bases below spares a base a lab used lately.
if [ -f "$out/.complete" ]; then touch "$out"; echo "$out"; exit 0; fi

rm -rf --one-file-system "$out.tmp"
# No documentation, manual pages or translations (a quarter of the base's files, 64 of 457 MB):
# every image copy, publish, pull, check and reset handles fewer files. dpkg keeps them out of the
# images' own installs too, but for Tabula's /usr/share/doc/tabula ((g) tampers with a file there).
slim=(doc man locale info lintian)
excludes=()
for d in "${slim[@]}"; do excludes+=("--dpkgopt=path-exclude=/usr/share/$d/*"); done
excludes+=("--dpkgopt=path-include=/usr/share/doc/tabula/*")
mmdebstrap --variant=minbase --mode=root --quiet "${excludes[@]}" \
  --include="$(IFS=,; echo "${packages[*]}")" \
  --essential-hook="install -D -m 0755 \"$repo/assets/boot/usr/share/initramfs-tools/scripts/local-bottom/tabula\" \"\$1/usr/share/initramfs-tools/scripts/local-bottom/tabula\"" \
  --customize-hook="\"$here/customize-base.sh\" \"\$1\"" \
  --customize-hook="for d in ${slim[*]}; do [ ! -d \"\$1/usr/share/\$d\" ] || find \"\$1/usr/share/\$d\" -mindepth 1 -delete; done" \
  trixie "$out.tmp" >&2
touch "$out.tmp/.complete"
mv "$out.tmp" "$out"
# Older bases are superseded by this recipe, but another checkout (another branch's recipe) may be
# building one or walking a laptop made from one right now: only bases no lab used for 12 hours go.
find "$cache" -maxdepth 1 -name 'base-*' ! -name "base-$key" ! -name '*.lock' -mmin +720 -exec rm -rf --one-file-system {} + 2>/dev/null || true
find "$cache" -maxdepth 1 -name 'base-*.lock' -mmin +720 -delete 2>/dev/null || true
echo "$out"
