#!/bin/sh
# $1: the deployment, as ostree-prepare-root left it (the physical root at $1/sysroot, read-only,
# with the stateroot's /var bind-mounted writable on itself). ostree keeps one /var per stateroot
# across deployments and never writes it; a Tabula laptop is stateless, so here, before anything
# runs from it, that /var goes back to the image's (the deployment's /usr/share/factory/var,
# file-hierarchy(7)), keeping only the one list of what survives a boot (TABULA_KEEP_VAR in the
# deployment's /usr/lib/tabula/boot/stateless.sh, as for rsync-tree) and /home (ostree's /home is
# /var/home). Not kept paths are removed first, then the missing ones copied from the image: an
# interrupted reset is finished by the next boot.
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

# $1 a folder, $2 its path under /var ("" or "lib/"): removes what is neither kept nor on the
# way to a kept path.
prune() {
  for e in "$1"/* "$1"/.[!.]* "$1"/..?*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    rel="$2${e##*/}"
    case " $keep " in *" $rel "*) continue ;; esac
    case " $keep " in
      *" $rel/"*) if [ -d "$e" ] && [ ! -L "$e" ]; then prune "$e" "$rel/"; continue; fi ;;
    esac
    rm -rf "$e"
  done
}
prune "$var" ""
cp -a --update=none "$factory/." "$var/"
sync
