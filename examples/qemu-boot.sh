#!/bin/bash
# Boot a QEMU guest from a disk exposed by corfs, while it streams in the background.
#
# Usage: examples/qemu-boot.sh LEAF MOUNTPOINT [--run]
#   LEAF        a leaf made with: corfs create --backing /nfs/images/vm.raw LEAF
#   MOUNTPOINT  an empty directory
#   --run       actually start QEMU (needs qemu-system-x86_64 and, for speed, /dev/kvm); without it the
#               script only mounts, prints the command line and unmounts.
#
# Notes on the drive options:
#   format=raw        the exposed file is a flat raw disk; never let QEMU probe it.
#   cache=none        QEMU opens the file with O_DIRECT; corfs accepts O_DIRECT opens, and fsync on the
#                     exposed file is a real barrier (flushes the leaf's data, then its bitmaps), so the
#                     guest's flushes are honoured. cache=writeback also works (the host page cache is used).
#   aio=native        Linux AIO; needs cache=none (O_DIRECT). aio=threads works with any cache mode.
#   discard=unmap     the guest's TRIM becomes fallocate(PUNCH_HOLE) on the exposed file: corfs marks those
#                     clusters local zeros without fetching them from the backing.
#   detect-zeroes=unmap  write-zeroes requests also become holes.
#   QEMU's image locking (OFD locks) works: corfs leaves locking to the kernel.
set -euo pipefail
repo=$(dirname -- "$(dirname -- "$(readlink -f -- "$0")")")
corfs="$repo/bin/corfs"
[ $# -ge 2 ] || { sed -n '2,8p' "$0"; exit 64; }
leaf=$1 mnt=$2 run=${3:-}
disk="$mnt/$(basename -- "$leaf")"

"$corfs" mount "$leaf" "$mnt"
trap '"$corfs" umount "$mnt"' EXIT

# Bring the whole image local in the background, at most 200 MiB/s, while the guest runs.
echo "stream speed=200M" > "$mnt/control"

cmd=(qemu-system-x86_64 -machine q35,accel=kvm:tcg -m 2048 -smp 2
     -drive "file=$disk,if=virtio,format=raw,cache=none,aio=native,discard=unmap,detect-zeroes=unmap"
     -nographic)
echo "QEMU command line:"
echo "  ${cmd[*]}"
if [ "$run" = --run ]; then
    "${cmd[@]}"
else
    echo "(not started; pass --run to boot it)"
fi
"$corfs" status "$mnt"
