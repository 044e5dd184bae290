#!/bin/sh
# $1: the deployment, as ostree-prepare-root left it (its /etc mounted, the physical root at
# $1/sysroot). The identity lives in the stateroot's /var, named by the ostree= kernel argument.
set -eu
root="$1"
os="$(sed -n 's|.*ostree=/ostree/boot\.[01]/\([^/ ]*\)/.*|\1|p' /proc/cmdline)"
identity="$root/sysroot/ostree/deploy/$os/var/lib/tabula/identity"
# The first boot: tabula-identity.service makes the identity.
[ -n "$os" ] && [ -d "$identity" ] || exit 0
if [ -s "$identity/machine-id" ]; then cp "$identity/machine-id" "$root/etc/machine-id"; fi
for f in ssh_host_ed25519_key ssh_host_ed25519_key.pub; do
  if [ -e "$identity/$f" ]; then cp -p "$identity/$f" "$root/etc/ssh/$f"; fi
done
