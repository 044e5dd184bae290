#!/bin/bash
# Tabula on an ostree system whose /etc is transient (prepare-root.conf: etc.transient): every boot
# starts /etc from the image, so the machine's identity (machine-id and SSH host keys, kept in
# /var/lib/tabula/identity by tabula-identity.service) is copied into it here, in the initramfs,
# after ostree-prepare-root and before systemd reads the machine-id. Debian's ostree-boot integrates
# with dracut only; installing or upgrading the package rebuilds the initramfs (dpkg trigger).

check() {
    [[ -x /usr/lib/ostree/ostree-prepare-root ]] || return 1
    return 0
}

depends() {
    echo ostree systemd
}

install() {
    inst_multiple cp sed
    inst_simple "$moddir/tabula-ostree-identity.sh" /usr/libexec/tabula/tabula-ostree-identity
    inst_simple "$moddir/tabula-ostree-identity.service" "$systemdsystemunitdir/tabula-ostree-identity.service"
    mkdir -p "${initdir}${systemdsystemconfdir}/initrd-root-fs.target.wants"
    ln_r "$systemdsystemunitdir/tabula-ostree-identity.service" "$systemdsystemconfdir/initrd-root-fs.target.wants/tabula-ostree-identity.service"
}
