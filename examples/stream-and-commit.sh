#!/bin/bash
# Drives a stream and a commit with nothing but echo and cat on MOUNTPOINT/control.
#
# Usage: examples/stream-and-commit.sh            (makes its own images in a temp dir)
#
# The control file takes one command a line: VERB [IMAGE] [ARG]. A refused command fails the write
# (echo prints the errno, e.g. "Invalid argument") and the reason shows in the status's error= field.
set -euo pipefail
repo=$(dirname -- "$(dirname -- "$(readlink -f -- "$0")")")
corfs="$repo/bin/corfs"
work=$(mktemp -d "${TMPDIR:-/tmp}/corfs-jobs.XXXXXX")
mnt="$work/mnt"
cleanup() {
    if grep -qs " $mnt fuse.corfs " /proc/mounts; then
        "$corfs" umount "$mnt" || fusermount -u -z "$mnt" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# field NAME: the value of NAME= in the (single) status line; error= is last and may contain spaces.
field() {
    if [ "$1" = error ]; then sed -n 's/.* error=//p' "$mnt/control" | head -1
    else cat "$mnt/control" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1; fi
}

# wait_job: poll the status until the job is no longer running; fail unless it completed.
wait_job() {
    local state
    while :; do
        state=$(field state)
        echo "  $(field job) state=$state done=$(field done_bytes)/$(field total_bytes) rate=$(field rate)"
        case "$state" in running|paused) sleep 0.5 ;; *) break ;; esac
    done
    [ "$state" = completed ] || { echo "job ended $state: $(field error)" >&2; exit 1; }
}

truncate -s 128M "$work/base.raw"
dd if=/dev/urandom of="$work/base.raw" bs=1M count=32 conv=notrunc status=none
"$corfs" create --backing "$work/base.raw" "$work/disk.raw"
mkdir "$mnt"
"$corfs" mount "$work/disk.raw" "$mnt"

echo "== status"
cat "$mnt/control"

echo "== a bad command fails with EINVAL and changes nothing"
if echo "strem" 2>&1 > "$mnt/control"; then echo "accepted?!" >&2; exit 1; fi
echo "  error=$(field error)"

echo "== stream at 16 MiB/s, pause, raise the speed, resume"
echo "stream speed=16M" > "$mnt/control"
sleep 1
echo pause > "$mnt/control"
echo "  state=$(field state)"
echo "speed 0" > "$mnt/control"
echo resume > "$mnt/control"
wait_job
echo "  standalone=$(field standalone)"

echo "== write 1 MiB through the mount, then commit it back into the backing"
dd if=/dev/urandom of="$mnt/disk.raw" bs=64K seek=100 count=16 conv=notrunc,fsync status=none
echo "  dirty_bytes=$(field dirty_bytes)"
echo commit > "$mnt/control"
wait_job
echo "  dirty_bytes=$(field dirty_bytes)"
cmp "$mnt/disk.raw" "$work/base.raw" && echo "  the backing now equals the exposed disk"

"$corfs" umount "$mnt"
echo "stream-and-commit: done"
