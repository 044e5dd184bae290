#!/usr/bin/env bash
# Runs inside mmdebstrap's customize step (the chroot is $1, mounts in place): turns the Debian tree
# into a Tabula laptop image, the way a fleet admin would. Nothing lab-specific (users, keys) here:
# that is added per run by the lab (test/lab/image.ts).
set -euo pipefail
# Tabula's initramfs hook was put in place before the kernel was installed (build-base.sh's
# essential hook), so the kernel's own initramfs holds it; the package ships the same file.
root="$1"

# The machine's identity is made on the laptop, never shipped in the image.
rm -f "$root"/etc/ssh/ssh_host_*
: > "$root/etc/machine-id"
# Mount points the boot path uses on the read-only root.
mkdir -p "$root/efi"
# The ESP is mounted when Tabula's helper writes a boot entry (automount: a boot never waits for it).
printf 'PARTLABEL=esp /efi vfat umask=0077,noauto,nofail,x-systemd.automount,x-systemd.idle-timeout=60 0 0\n' > "$root/etc/fstab"
# The hook needs busybox (cp, mv) in the initramfs: rebuild it only if apt configured the kernel first.
contents="$(chroot "$root" sh -c 'lsinitramfs /boot/initrd.img-*')"
if ! grep -q 'local-bottom/tabula$' <<<"$contents" || ! grep -q 'bin/busybox$' <<<"$contents"; then
  chroot "$root" update-initramfs -u -k all
fi
