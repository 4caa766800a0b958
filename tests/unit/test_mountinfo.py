"""The one mountinfo parser: mount ids, escaped mount points, optional fields, bad lines skipped."""

from __future__ import annotations

from guestcheck.mountinfo import parse_mountinfo, read_mountinfo, topmost

SAMPLE = (
    "22 1 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
    "40 22 0:12 / /sys/kernel/tracing rw,nosuid,nodev,noexec,relatime shared:9 master:2 - tracefs tracefs rw\n"
    "41 1 8:1 /data /mnt/my\\040dir ro,relatime - ext4 /dev/vda1 rw\n"
    "garbage line\n"
    "x 1 0:1 / /bad rw - proc proc rw\n"
    "50 22 0:13 / /sys/kernel/tracing rw,relatime - tracefs tracefs rw\n"
)


def test_fields_and_escapes():
    mounts = parse_mountinfo(SAMPLE)
    assert [m.mount_id for m in mounts] == [22, 40, 41, 50]
    tracing = mounts[1]
    assert (tracing.parent_id, tracing.root, tracing.mount_point, tracing.fstype, tracing.source) == \
        (22, "/", "/sys/kernel/tracing", "tracefs", "tracefs")
    assert mounts[2].mount_point == "/mnt/my dir" and mounts[2].root == "/data" and mounts[2].read_only
    assert not tracing.read_only


def test_topmost_is_the_last_mount_on_a_point():
    mounts = parse_mountinfo(SAMPLE)
    assert topmost(mounts, "/sys/kernel/tracing").mount_id == 50
    assert topmost(mounts, "/nowhere") is None


def test_this_process_mountinfo_reads():
    mounts = read_mountinfo()
    assert any(m.mount_point == "/" for m in mounts)
