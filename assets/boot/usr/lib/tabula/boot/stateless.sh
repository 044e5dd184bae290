# How a deployment's tree becomes a stateless root, in one place for both ways a deployment starts:
# a full boot (the initramfs hook, /usr/share/initramfs-tools/scripts/local-bottom/tabula) and a soft
# reboot (/usr/libexec/tabula/tabula-nextroot). Both source it from the deployment being started,
# so what that image's package says survives is what survives. POSIX sh: in the initramfs it runs
# on busybox (the package's initramfs conf hook requires it there).

# Paths under /var that survive a boot; everything else in /var is reset to the image's /var. The
# README ("What survives a boot") names them. lib/tabula holds the deployments themselves.
TABULA_KEEP_VAR="lib/tabula log/journal"

# tabula_fresh_etc TREE IDENTITY ROOT: ROOT/etc becomes a tmpfs holding the image's /etc (TREE/etc)
# plus this machine's identity from IDENTITY (machine-id, made here on a first boot; SSH host keys).
tabula_fresh_etc() {
  mkdir -p "$2" || return 1
  chmod 0700 "$2" || return 1
  mount -n -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$3/etc" || return 1
  cp -a "$1/etc/." "$3/etc/" || return 1
  if [ ! -s "$2/machine-id" ]; then
    tr -d '-' < /proc/sys/kernel/random/uuid > "$2/machine-id.tmp" && mv "$2/machine-id.tmp" "$2/machine-id" || return 1
  fi
  cp "$2/machine-id" "$3/etc/machine-id" || return 1
  chmod 0444 "$3/etc/machine-id" || return 1
  for key in "$2"/ssh_host_*; do
    if [ -e "$key" ]; then cp -p "$key" "$3/etc/ssh/" || return 1; fi
  done
}

# tabula_reset_var TREE PERSIST: PERSIST/var (the persistent disk's /var) becomes the image's /var
# with only TABULA_KEEP_VAR carried over (moved, not copied). The previous one is left as
# PERSIST/var.old for the caller to remove (a running system may still have files open in it).
# After a reimage (reset-on-boot) Tabula's own machine state goes too; the deployments stay.
tabula_reset_var() {
  if [ -e "$2/var/lib/tabula/reset-on-boot" ]; then
    rm -rf "$2/var/lib/tabula/state" "$2/var/lib/tabula/reset-on-boot" || return 1
  fi
  rm -rf "$2/var.new" "$2/var.old" || return 1
  mkdir -p "$2/var" "$2/var.new" "$2/home" || return 1
  cp -a "$1/var/." "$2/var.new/" || return 1
  for k in $TABULA_KEEP_VAR; do
    if [ -e "$2/var/$k" ]; then
      rm -rf "$2/var.new/$k" || return 1
      mkdir -p "$(dirname "$2/var.new/$k")" || return 1
      mv "$2/var/$k" "$2/var.new/$k" || return 1
    fi
  done
  mv "$2/var" "$2/var.old" || return 1
  mv "$2/var.new" "$2/var" || return 1
  sync
}
