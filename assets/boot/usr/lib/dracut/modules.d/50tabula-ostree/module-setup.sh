#!/bin/bash
# Tabula on an ostree system whose /etc is transient (prepare-root.conf: etc.transient): every boot
# starts /etc from the image, so the machine's identity (machine-id and SSH host keys, kept in
# /var/lib/tabula/identity by tabula-identity.service) is copied into it here, in the initramfs,
# after ostree-prepare-root and before systemd reads the machine-id. Before that, the stateroot's
# /var is reset to the image's but for what survives a boot (tabula-ostree-var). Debian's ostree-boot integrates
# with dracut only; installing or upgrading the package rebuilds the initramfs (dpkg trigger).

check() {
    [[ -x /usr/lib/ostree/ostree-prepare-root ]] || return 1
    return 0
}

depends() {
    echo ostree systemd
}

install() {
    inst_multiple cp rm rsync sed sync
    mkdir -p "${initdir}${systemdsystemconfdir}/initrd-root-fs.target.wants"
    for step in identity var; do
        inst_simple "$moddir/tabula-ostree-$step.sh" "/usr/libexec/tabula/tabula-ostree-$step"
        inst_simple "$moddir/tabula-ostree-$step.service" "$systemdsystemunitdir/tabula-ostree-$step.service"
        ln_r "$systemdsystemunitdir/tabula-ostree-$step.service" "$systemdsystemconfdir/initrd-root-fs.target.wants/tabula-ostree-$step.service"
    done
}
