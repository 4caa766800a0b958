"""pyproject.toml ships every package and the profiles; .gitignore covers what a .deb build leaves behind."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.fakemachine import REPO


def test_every_package_and_the_profiles_are_in_the_wheel():
    tomllib = pytest.importorskip("tomllib")
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "guestcheck").rglob("__init__.py")}
    # a new subpackage must be added to the list, or pip installs a guestcheck without it
    assert set(setuptools["packages"]) == on_disk | {"guestcheck.profiles"}
    assert setuptools["package-dir"] == {"guestcheck.profiles": "profiles"}
    assert setuptools["package-data"] == {"guestcheck.profiles": ["*.conf"]}
    assert sorted(p.name for p in (REPO / "profiles").glob("*.conf")) == [
        "latency.conf", "many-connections.conf", "throughput.conf", "wan-lossy.conf", "wan.conf"]


LEFTOVERS = [
    ".pybuild/cpython3_3.11/build/x", "debian/.debhelper/generated/x", "debian/guestcheck/usr/bin/guestcheck",
    "debian/tmp/x", "debian/files", "debian/guestcheck.substvars", "debian/guestcheck.postinst.debhelper",
    "debian/debhelper-build-stamp", "debian/guestcheck.1", "guestcheck.egg-info/PKG-INFO", "build/lib/x",
]


@pytest.mark.skipif(not shutil.which("git"), reason="needs git")
def test_gitignore_covers_dpkg_buildpackages_leftovers(tmp_path):
    """Asked of git itself, in a scratch repository with this .gitignore."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    shutil.copy(REPO / ".gitignore", tmp_path / ".gitignore")
    out = subprocess.run(["git", "-C", str(tmp_path), "check-ignore", "--no-index", *LEFTOVERS],
                         capture_output=True, text=True)
    assert out.stdout.split() == LEFTOVERS
    kept = subprocess.run(["git", "-C", str(tmp_path), "check-ignore", "--no-index", "debian/rules",
                           "debian/control", "profiles/wan.conf"], capture_output=True, text=True)
    assert kept.stdout == ""
