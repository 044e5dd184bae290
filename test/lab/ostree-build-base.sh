#!/usr/bin/env bash
# The ostree laptop's base: Debian 13 (trixie) minbase with systemd, a kernel, nodejs, what a Tabula
# laptop needs, and Debian's ostree boot integration (ostree-boot: ostree-prepare-root in a dracut
# initramfs, ostree-finalize-staged at shutdown). Debian's ostree-boot integrates with dracut only
# (its README.Debian), so this base has dracut instead of initramfs-tools. Cached in
# $TABULA_LAB_CACHE (default /var/cache/tabula-lab) under a hash of this recipe; rebuilt only when
# it changes or the cache is missing.
# Usage: ostree-build-base.sh  -> prints the cached tree's path on the last line.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${TABULA_LAB_CACHE:-/var/cache/tabula-lab}"

packages=(
  systemd systemd-sysv udev kmod dbus libpam-systemd login
  linux-image-amd64 dracut                    # ostree-boot's initramfs integration is a dracut module
  ostree ostree-boot                          # ostree admin, ostree-prepare-root, ostree-finalize-staged
  systemd-boot systemd-boot-efi               # the EFI loader the lab puts on the ESP
  nodejs rsync openssh-server openssh-client  # Tabula's agent, the backup transport
  polkitd pkexec                              # the agent reaches tabula-helper through pkexec
  procps iproute2
  curl                                        # the lab's waits ask the agent's socket (laptop.ts peek)
  libsecret-1-0                               # keytar in the Tabula package links it
)
key="$(cat "$0" | sha256sum | cut -c1-16)"
out="$cache/ostree-base-$key"
if [ -f "$out/.complete" ]; then echo "$out"; exit 0; fi

mkdir -p "$cache"
rm -rf --one-file-system "$out.tmp"
# Before the kernel is installed: dracut builds a generic initramfs (a chroot's "host" is not the
# laptop), and ostree-prepare-root's config goes into it: /etc transient (every boot starts from the
# image's /etc; ostree applies that only with a read-only /sysroot, which ostree admin and Tabula's
# helper remount writable in their own mount namespace).
# The initramfs leaves out what a virtio laptop never uses in it: udev's hardware database (13 MB:
# names for devices, not drivers), NVDIMM, SCSI LUN masks, resume from hibernation, 9p/virtiofs
# roots, the battery check and TPM PCR phases.
essential='mkdir -p "$1/etc/dracut.conf.d" "$1/usr/lib/ostree"
printf "hostonly=no\ncompress=zstd\nomit_dracutmodules+=\" plymouth hwdb nvdimm lunmask resume virtfs virtiofs systemd-battery-check systemd-pcrphase \"\n" > "$1/etc/dracut.conf.d/10-tabula-lab.conf"
printf "[sysroot]\nreadonly = true\n\n[etc]\ntransient = true\n" > "$1/usr/lib/ostree/prepare-root.conf"'
# No documentation, manual pages or translations (a quarter of the base's files): every deployment
# checks out, and every update finalizes, fewer files. dpkg keeps them out of later installs too.
slim=(doc man locale info lintian)
excludes=()
for d in "${slim[@]}"; do excludes+=("--dpkgopt=path-exclude=/usr/share/$d/*"); done
mmdebstrap --variant=minbase --mode=root --quiet "${excludes[@]}" \
  --include="$(IFS=,; echo "${packages[*]}")" \
  --essential-hook="$essential" \
  --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*; : > "$1/etc/machine-id"' \
  --customize-hook="for d in ${slim[*]}; do [ ! -d \"\$1/usr/share/\$d\" ] || find \"\$1/usr/share/\$d\" -mindepth 1 -delete; done" \
  --customize-hook='kver="$(ls "$1/usr/lib/modules")"; chroot "$1" dracut --force --kver "$kver" "/boot/initrd.img-$kver" >/dev/null 2>&1; chroot "$1" sh -c "lsinitrd /boot/initrd.img-$kver" | grep -q ostree-prepare-root' \
  trixie "$out.tmp" >&2
touch "$out.tmp/.complete"
mv "$out.tmp" "$out"
# Older bases are superseded (removed only now: a lab still running may be reading one).
find "$cache" -maxdepth 1 -name 'ostree-base-*' ! -name "ostree-base-$key" -exec rm -rf --one-file-system {} + 2>/dev/null || true
echo "$out"
