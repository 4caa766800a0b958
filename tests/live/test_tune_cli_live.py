"""`tune offloads/queues` run by a user who is not root, on a real veth in a namespace this test makes: the change
is refused for want of permission, nothing changes, and the one line suggests sudo as `tune apply` does."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from tests.netns import netns, requires_netns

pytestmark = [pytest.mark.root, requires_netns,
              pytest.mark.skipif(shutil.which("ethtool") is None, reason="needs ethtool")]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOBODY = "65534"


@pytest.mark.parametrize("command", ["offloads", "queues"])
def test_non_root_offloads_and_queues_suggest_sudo(tmp_path, command):
    if command == "queues" and (os.cpu_count() or 1) < 2:
        pytest.skip("a veth's channels only want raising with 2 vCPUs or more")
    tmp_path.chmod(0o755)  # --root: nothing of the machine's own /etc or /var/lib is in reach
    with netns("gchint") as ns:
        ns.ip("link", "add", "gch0", "type", "veth", "peer", "name", "gch1")
        ns.ip("link", "set", "gch0", "up")
        ns.run(["ethtool", "-K", "gch0", "rx", "off", "tx", "off"])  # offloads doctor flags as changeable
        before = (ns.run(["ethtool", "-k", "gch0"]).stdout, ns.run(["ethtool", "-l", "gch0"]).stdout)
        out = ns.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                      sys.executable, "-m", "guestcheck", "tune", "--root", str(tmp_path), command, "gch0"],
                     check=False, cwd="/", env={**os.environ, "PYTHONPATH": REPO, "PYTHONDONTWRITEBYTECODE": "1"})
        after = (ns.run(["ethtool", "-k", "gch0"]).stdout, ns.run(["ethtool", "-l", "gch0"]).stdout)
    assert out.returncode == 3, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Permission denied" in lines[0], out.stderr
    assert lines[0].endswith(f"(you are not root: try `sudo guestcheck tune {command} gch0`)")
    assert after == before and os.listdir(tmp_path) == []
