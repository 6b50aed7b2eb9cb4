#!/bin/bash
# The corfs quick start: make a backing image, create a leaf over it, mount it, read through the mount,
# stream the rest in the background with visible progress, show the status, unmount.
# Everything lives in a temporary directory that is removed at the end; the mount is always unmounted.
set -euo pipefail
repo=$(dirname -- "$(dirname -- "$(readlink -f -- "$0")")")
corfs="$repo/bin/corfs"
work=$(mktemp -d "${TMPDIR:-/tmp}/corfs-quickstart.XXXXXX")
mnt="$work/mnt"

cleanup() {
    if grep -qs " $mnt fuse.corfs " /proc/mounts; then
        "$corfs" umount "$mnt" || fusermount -u -z "$mnt" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. A 256 MiB backing image with 64 MiB of data and holes: $work/base.raw"
truncate -s 256M "$work/base.raw"
for mib in 0 32 96 160 224; do
    dd if=/dev/urandom of="$work/base.raw" bs=1M seek=$mib count=12 conv=notrunc status=none
done
du -h --apparent-size "$work/base.raw"; du -h "$work/base.raw"

step "2. corfs create: a leaf over it"
"$corfs" create --backing "$work/base.raw" "$work/leaf.raw"
"$corfs" info "$work/leaf.raw"

step "3. corfs mount (returns once the mount is ready; the daemon logs to $work/leaf.raw.log)"
mkdir "$mnt"
"$corfs" mount "$work/leaf.raw" "$mnt"
ls -l "$mnt"
grep " $mnt " /proc/mounts

step "4. Read the first 64 MiB through the mount (copy-on-read) and compare with the backing"
dd if="$mnt/leaf.raw" of=/dev/null bs=1M count=64 status=progress
cmp -n $((64 << 20)) "$mnt/leaf.raw" "$work/base.raw" && echo "first 64 MiB identical to the backing"
cat "$mnt/control"

step "5. Stream the rest in the background, at most 32 MiB/s so the progress is visible"
# Same as: echo "stream speed=32M" > "$mnt/control", then polling cat "$mnt/control".
"$corfs" stream "$mnt" --speed 32M --wait

step "6. Status: the leaf is standalone"
"$corfs" status "$mnt"
cmp "$mnt/leaf.raw" "$work/base.raw" && echo "whole disk identical to the backing"

step "7. Unmount (flushes everything), then the leaf works without the backing"
"$corfs" umount "$mnt"
"$corfs" info "$work/leaf.raw"
"$corfs" check "$work/leaf.raw"
cmp "$work/leaf.raw" "$work/base.raw" && echo "LEAF alone is a complete raw image of the disk"
echo
echo "quickstart: done"
