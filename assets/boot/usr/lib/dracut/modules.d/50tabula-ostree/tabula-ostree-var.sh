#!/bin/sh
# $1: the deployment, as ostree-prepare-root left it (the physical root at $1/sysroot, read-only,
# with the stateroot's /var bind-mounted writable on itself). ostree keeps one /var per stateroot
# across deployments and never writes it; a Tabula laptop is stateless, so here, before anything
# runs from it, that /var goes back to the image's (the deployment's /usr/share/factory/var,
# file-hierarchy(7)), keeping only the one list of what survives a boot (TABULA_KEEP_VAR in the
# deployment's /usr/lib/tabula/boot/stateless.sh, as for rsync-tree) and /home (ostree's /home is
# /var/home). One rsync does it, rewriting only what differs from the image (--checksum: a file
# with the image's size and time but other bytes is rewritten too); removing everything and copying
# the image's /var back took 7-15 s of every boot in the lab (TCG). An interrupted reset is finished
# by the next boot.
set -eu
root="$1"
os="$(sed -n 's|.*ostree=/ostree/boot\.[01]/\([^/ ]*\)/.*|\1|p' /proc/cmdline)"
var="$root/sysroot/ostree/deploy/$os/var"
factory="$root/usr/share/factory/var"
say() { echo "tabula-ostree-var: $*" >&2; }
[ -n "$os" ] && [ -d "$var" ] || { say "no stateroot /var for '$os': not reset"; exit 0; }
[ -d "$factory" ] || { say "the image has no /usr/share/factory/var: /var not reset"; exit 0; }

[ -f "$root/usr/lib/tabula/boot/stateless.sh" ] || { say "Tabula is not installed in this deployment: /var not reset"; exit 0; }
. "$root/usr/lib/tabula/boot/stateless.sh"
keep="home"
for k in $TABULA_KEEP_VAR; do
  case "$k" in
    /* | */ | *//* | .* | */.* | *[!A-Za-z0-9._/-]*) say "ignoring kept path '$k'"; continue ;;
  esac
  keep="$keep $k"
done

# A reimage asked for a pristine machine: Tabula's own state goes too (its identity stays).
if [ -e "$var/lib/tabula/reset-on-boot" ]; then
  rm -rf "$var/lib/tabula/state" "$var/lib/tabula/reset-on-boot"
fi

# Kept paths are excluded, so --delete leaves them, and the folders on the way to them, in place.
set --
for k in $keep; do set -- "$@" "--exclude=/$k"; done
rsync -aHAX --numeric-ids --checksum --delete "$@" "$factory/" "$var/"
sync
