#!/bin/sh
# Builds the initramfs of the cgroup v2 test VM (see init beside this file):
#   make-initramfs.sh OUT GOCKER_BINARY KERNEL_DIR
# OUT is an uncompressed newc cpio archive (the kernel takes it as is, and
# under software emulation decompressing would cost more than reading it).
# GOCKER_BINARY must be fully static: the VM has no shared libraries.
set -eu
out=$1 binary=$2 kernel=$3
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/lib/modules"
cp /bin/busybox "$work/bin/busybox"
cp "$binary" "$work/bin/gocker"
cp "$here/init" "$work/init"
chmod 755 "$work/init" "$work/bin/gocker" "$work/bin/busybox"
overlay=$(find "$kernel/lib/modules" -name overlay.ko | head -n 1)
[ -n "$overlay" ] || { echo "make-initramfs.sh: no overlay.ko under $kernel/lib/modules" >&2; exit 1; }
cp "$overlay" "$work/lib/modules/overlay.ko"
(cd "$work" && find . | cpio -o -H newc --quiet) > "$out.tmp"
mv "$out.tmp" "$out"
