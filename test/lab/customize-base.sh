#!/usr/bin/env bash
# Runs inside mmdebstrap's customize step (the chroot is $1, mounts in place): turns the Debian tree
# into a Tabula laptop image, the way a fleet admin would. Nothing lab-specific (users, keys) here:
# that is added per run by the lab (test/lab/image.ts).
set -euo pipefail
root="$1"; repo="$2"
boot="$repo/assets/boot"

# The initramfs hook (what the Debian package ships too; its units are added per run by the lab).
install -D -m 0755 "$boot/usr/share/initramfs-tools/scripts/local-bottom/tabula" "$root/usr/share/initramfs-tools/scripts/local-bottom/tabula"

# The machine's identity is made on the laptop, never shipped in the image.
rm -f "$root"/etc/ssh/ssh_host_*
: > "$root/etc/machine-id"
# Mount points the boot path uses on the read-only root.
mkdir -p "$root/efi"
# The ESP is mounted when Tabula's helper writes a boot entry (automount: a boot never waits for it).
printf 'PARTLABEL=esp /efi vfat umask=0077,noauto,nofail,x-systemd.automount,x-systemd.idle-timeout=60 0 0\n' > "$root/etc/fstab"

chroot "$root" update-initramfs -u -k all
