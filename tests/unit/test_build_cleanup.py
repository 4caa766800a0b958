"""tests/build_cleanup.sh: what a killed image or chroot build leaves mounted is unmounted, then removed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

HELPER = Path(__file__).resolve().parent.parent / "build_cleanup.sh"


def mounted_under(directory: Path) -> list[str]:
    with open("/proc/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(str(directory))]


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount")
def test_a_killed_builds_mounts_are_unmounted_and_its_directory_removed(tmp_path):
    """As debootstrap leaves it when killed: proc mounted at root/proc, and a tmpfs below another mount."""
    build = tmp_path / ".build.x"
    (build / "root/proc").mkdir(parents=True)
    (build / "root/dev").mkdir()
    kept = tmp_path / "kept"
    kept.mkdir()
    try:
        subprocess.run(["mount", "-t", "proc", "proc", str(build / "root/proc")], check=True)
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(build / "root/dev")], check=True)
        (build / "root/dev/file").write_text("x")
        out = subprocess.run(["bash", "-c", f'source "{HELPER}"; remove_build_dirs "$@"', "-",
                              str(tmp_path / ".build.*"), str(build)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert mounted_under(build) == [] and not build.exists()
        assert kept.is_dir()  # only what was named goes
    finally:
        for m in sorted(mounted_under(build), reverse=True):
            subprocess.run(["umount", "-l", m], check=False)
