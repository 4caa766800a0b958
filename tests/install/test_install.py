"""Every install path, used from `/` as a newcomer would: pip into a fresh venv, pipx, and the .deb in a chroot.

Each installs from a copy of this checkout's tracked files (nothing built lands in the checkout), then runs
`tune list` (the four shipped profiles, from the installed copy), `tune diff throughput` and `doctor`.
No registry is asked: the venvs see Debian's libraries (--system-site-packages) and build with Debian's
setuptools (--no-build-isolation); the chroot's libraries come from the cached debootstrap tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's: its site-packages hold python3-click & co.
PROFILES = ["latency", "many-connections", "throughput", "wan", "wan-lossy"]
DEBIAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"  # no pyenv shims

pytestmark = pytest.mark.install


def source_copy(dest: Path) -> Path:
    """The checkout's tracked and new (not ignored) files, as an sdist would have them."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.split(b"\0")
    for name in filter(None, files):
        src, dst = REPO / os.fsdecode(name), dest / os.fsdecode(name)
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    return dest


def run(argv: list[str], env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd="/",
                          env={**os.environ, "PATH": DEBIAN_PATH, **(env or {})}, **kw)


def check_installed(command: list[str], env: dict[str, str] | None = None, where: str = "") -> None:
    """The newcomer's three commands, from /, with no checkout in sight."""
    listed = run([*command, "tune", "list"], env)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == PROFILES
    shown = run([*command, "tune", "show", "throughput"], env)
    assert shown.returncode == 0 and f"file: {where}" in shown.stdout, shown.stdout
    diff = run([*command, "tune", "diff", "throughput"], env)
    assert diff.returncode == 0, diff.stderr
    assert diff.stdout.startswith("throughput: ") and "net.ipv4.tcp_rmem" in diff.stdout
    doctor = run([*command, "doctor", "--json", "--sample", "0"], env)
    assert doctor.returncode in (0, 1, 2), doctor.stderr
    assert "Traceback" not in doctor.stderr
    assert json.loads(doctor.stdout)["schema"] == "guestcheck.doctor/1"


def test_pip_into_a_fresh_venv(tmp_path):
    src = source_copy(tmp_path / "src")
    venv = tmp_path / "venv"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    out = run([str(venv / "bin/pip"), "install", "--no-index", "--no-build-isolation", str(src)])
    assert out.returncode == 0, out.stdout + out.stderr
    site = next(venv.glob("lib/python3*/site-packages"))
    assert sorted(p.name for p in (site / "guestcheck/profiles").iterdir()) == sorted(f"{p}.conf" for p in PROFILES)
    check_installed([str(venv / "bin/guestcheck")], where=str(site / "guestcheck/profiles/"))
    check_installed([str(venv / "bin/python"), "-m", "guestcheck"], where=str(site / "guestcheck/profiles/"))


@pytest.mark.skipif(not shutil.which("pipx", path=DEBIAN_PATH), reason="pipx not installed (apt-get install pipx)")
def test_pipx(tmp_path):
    src = source_copy(tmp_path / "src")
    env = {"PIPX_HOME": str(tmp_path / "pipx"), "PIPX_BIN_DIR": str(tmp_path / "bin"),
           "PIPX_DEFAULT_PYTHON": SYSTEM_PYTHON}
    out = run(["pipx", "install", "--system-site-packages", "--pip-args=--no-index --no-build-isolation",
               str(src)], env)
    assert out.returncode == 0, out.stdout + out.stderr
    check_installed([str(tmp_path / "bin/guestcheck")], env, where=str(tmp_path / "pipx/venvs/guestcheck/"))


@pytest.mark.root
def test_deb_in_a_chroot(tmp_path):
    """The .deb (tests/vm/build_deb.sh) installed with dpkg into a copy of a cached Debian 12 chroot."""
    if os.geteuid() != 0:
        pytest.skip("needs root (chroot, mounts)")
    cached = run([str(HERE / "build_chroot.sh")])
    assert cached.returncode == 0, cached.stderr
    built = run([str(REPO / "tests/vm/build_deb.sh"), str(tmp_path / "deb")], env={"DEB_BUILD_OPTIONS": "nocheck"})
    assert built.returncode == 0, built.stderr
    deb = Path(built.stdout.strip().splitlines()[-1])
    root = tmp_path / "root"
    subprocess.run(["cp", "-a", cached.stdout.strip(), str(root)], check=True)
    shutil.copy(deb, root / "tmp/guestcheck.deb")
    # a mount namespace of its own: /proc and /sys inside the chroot vanish with it
    script = (f"mount -t proc proc {root}/proc && mount -t sysfs sysfs {root}/sys && "
              f"chroot {root} dpkg -i /tmp/guestcheck.deb >/dev/null && "
              f"chroot {root} sh -c 'cd / && "
              "guestcheck tune list && echo ==== && guestcheck tune show throughput && echo ==== && "
              "guestcheck tune diff throughput && echo ==== && python3 -m guestcheck doctor --json --sample 0; "
              "echo \"rc=$?\"; ls /usr/lib/python3/dist-packages/guestcheck/profiles 2>&1 | head -1'")
    out = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script])
    assert out.returncode == 0, out.stderr
    listed, shown, diff, rest = out.stdout.split("====\n")
    assert [line.split()[0] for line in listed.splitlines()] == PROFILES
    assert "file: /usr/share/guestcheck/profiles/throughput.conf" in shown
    assert diff.startswith("throughput: ") and "net.ipv4.tcp_rmem" in diff
    doc, _, tail = rest.rpartition("rc=")
    assert json.loads(doc)["schema"] == "guestcheck.doctor/1" and "Traceback" not in out.stderr
    code, _, listing = tail.partition("\n")
    assert int(code) in (0, 1, 2)
    assert "No such file or directory" in listing  # one copy of the profiles: /usr/share's
