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
# ... and nothing at boot asks for it. systemd-boot reads and rewrites the ESP's random seed itself
# at every boot (the disk is made with one, as `bootctl install` makes it);
# systemd-boot-random-seed.service only tops it up from the running kernel, but it is ordered before
# sysinit.target and opens the ESP: every boot waited for udev to find the partition and for its
# FAT mount (29-40 s under TCG) before anything after sysinit.target started. A stateless laptop's
# boot should not wait on its ESP: masked.
ln -sf /dev/null "$root/etc/systemd/system/systemd-boot-random-seed.service"
# A laptop of this image has one kind of disk: the initramfs carries only what mounts its root
# (virtio disk, ext4) instead of Debian's MODULES=most (37 MB, most of it loaded by udev at every
# boot: ~45 s of a boot under TCG). Rebuilt here with this and with the hook and busybox in place.
mkdir -p "$root/etc/initramfs-tools/conf.d"
printf 'MODULES=list\n' > "$root/etc/initramfs-tools/conf.d/tabula-lab-modules"
printf 'virtio_pci\nvirtio_blk\next4\ncrc32c_generic\n' >> "$root/etc/initramfs-tools/modules"
chroot "$root" update-initramfs -u -k all
contents="$(chroot "$root" sh -c 'lsinitramfs /boot/initrd.img-*')"
for f in 'local-bottom/tabula$' 'bin/busybox$' '/virtio_blk\.ko'; do
  grep -q "$f" <<<"$contents" || { echo "customize-base.sh: the initramfs lacks $f" >&2; exit 1; }
done
