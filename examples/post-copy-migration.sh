#!/bin/bash
# Post-copy block migration over NBD, end to end, on one machine (both "hosts" on 127.0.0.1).
#
# Usage: examples/post-copy-migration.sh [SOURCE_IMAGE]
#   SOURCE_IMAGE: a raw disk image to migrate (default: a 256 MiB image made here with data and holes).
#   Environment: KEEP=DIR keeps the destination leaf in DIR (default: a temp dir, removed at the end);
#                PORT=N the source's NBD port (default: a free one).
#
# 1. The source host exports its disk read-only over NBD (qemu-nbd here; qemu-storage-daemon works too).
# 2. The destination makes a leaf over nbd://SOURCE/disk, mounts it and starts the workload at once (a
#    guest would boot from MNT/disk.raw; here fio writes and verifies, like a guest's I/O), while a stream
#    pulls the rest of the disk behind it.
# 3. When the leaf is standalone the source export is stopped; the workload keeps running and verifies.
# 4. The leaf equals the source image plus the workload's writes, and survives a remount with no source.
# Exit status 0 when every check holds; the last line says "migration verified".
set -euo pipefail
repo=$(dirname -- "$(dirname -- "$(readlink -f -- "$0")")")
corfs="${CORFS:-$repo/bin/corfs}"
work=$(mktemp -d "${TMPDIR:-/tmp}/corfs-migrate.XXXXXX")
dest="${KEEP:-$work}"
mnt="$work/mnt"
nbd_pid=""
cleanup() {
    if grep -qs " $mnt fuse.corfs " /proc/mounts; then
        "$corfs" umount "$mnt" || fusermount -u -z "$mnt" || true
    fi
    if [ -n "$nbd_pid" ]; then kill "$nbd_pid" 2>/dev/null || true; wait "$nbd_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

for tool in qemu-nbd fio cmp; do
    command -v "$tool" >/dev/null || { echo "needs $tool (scripts/install-deps installs it)" >&2; exit 1; }
done

# field NAME: the value of NAME= in the status line (error= is last and may contain spaces)
field() { tr ' ' '\n' < "$mnt/control" | sed -n "s/^$1=//p" | head -1; }

source_image="${1:-}"
if [ -z "$source_image" ]; then
    source_image="$work/source.raw"
    truncate -s 256M "$source_image"
    # data at the start, the middle and the end; holes between (never transferred: block status says so)
    dd if=/dev/urandom of="$source_image" bs=1M count=48 conv=notrunc status=none
    dd if=/dev/urandom of="$source_image" bs=1M seek=120 count=16 conv=notrunc status=none
    dd if=/dev/urandom of="$source_image" bs=1M seek=240 count=16 conv=notrunc status=none
fi
size=$(stat -c %s "$source_image")
port="${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"

echo "== source: export $source_image read-only on nbd://127.0.0.1:$port/disk"
qemu-nbd --read-only --persistent --shared=8 --format=raw --bind=127.0.0.1 --port="$port" \
    --export-name=disk "$source_image" &
nbd_pid=$!
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
done

echo "== destination: leaf over the source, mounted, workload started at once"
mkdir -p "$dest" "$mnt"
"$corfs" create --force --backing "nbd://127.0.0.1:$port/disk" "$dest/disk.raw"
"$corfs" mount "$dest/disk.raw" "$mnt"
disk="$mnt/disk.raw"
# The workload: random 4 KiB writes with verify into the first 32 MiB of the disk (a guest's I/O),
# while the stream pulls the rest. Its region is checked by fio, the rest against the source.
region=$((32 << 20))
fio_job=(--name=guest --filename="$disk" --size="$region" --bs=4k --rw=randwrite --ioengine=psync
         --direct=1 --verify=crc32c --verify_fatal=1 --randseed=4242 --verify_state_save=0)
fio "${fio_job[@]}" --do_verify=0 --output="$work/fio-write.log" &
fio_pid=$!
echo "stream" > "$mnt/control"

echo "== stream behind the workload"
while :; do
    state=$(field state)
    echo "  stream $state: $(field done_bytes)/$(field total_bytes) bytes, standalone=$(field standalone)"
    case "$state" in running) sleep 0.5 ;; *) break ;; esac
done
[ "$state" = completed ] || { echo "stream ended $state: $(sed -n 's/.* error=//p' "$mnt/control")" >&2; exit 1; }
[ "$(field standalone)" = yes ] || { echo "not standalone after the stream" >&2; exit 1; }
wait "$fio_pid" || { echo "the workload failed while migrating:" >&2; cat "$work/fio-write.log" >&2; exit 1; }

echo "== standalone: stop the source export; the workload keeps running"
kill "$nbd_pid"; wait "$nbd_pid" 2>/dev/null || true; nbd_pid=""
fio "${fio_job[@]}" --verify_only --output="$work/fio-verify.log" \
    || { echo "verify after the source left failed:" >&2; cat "$work/fio-verify.log" >&2; exit 1; }
echo "  the workload's writes verify with the source gone"
cmp --ignore-initial="$region" "$disk" "$source_image" \
    || { echo "the leaf differs from the source outside the workload's region" >&2; exit 1; }
echo "  the rest of the disk equals the source"

echo "== remount with no source"
"$corfs" umount "$mnt"
"$corfs" mount "$dest/disk.raw" "$mnt"
fio "${fio_job[@]}" --verify_only --output="$work/fio-verify2.log" \
    || { echo "verify after remount failed" >&2; cat "$work/fio-verify2.log" >&2; exit 1; }
cmp --ignore-initial="$region" "$disk" "$source_image"
[ "$(stat -c %s "$disk")" = "$size" ]
"$corfs" umount "$mnt"
echo "migration verified: $dest/disk.raw is the source plus the workload's writes, with no source"
