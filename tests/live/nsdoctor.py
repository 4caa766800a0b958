"""`guestcheck doctor --json` inside a namespace, its findings picked by id prefix, and a finding's fix run
verbatim there, as a user would paste it."""

from __future__ import annotations

import json
import os
import re
import shlex
import tempfile

from tests.netns import Netns, guestcheck_in


def doctor(ns: Netns) -> dict:
    out = guestcheck_in(ns, "doctor", "--json", "--sample", "0")
    assert "Traceback" not in out.stderr, out.stderr
    return json.loads(out.stdout)


def findings(doc: dict, prefix: str) -> dict:
    return {f["id"]: f for f in doc["findings"] if f["id"].startswith(prefix)}


# A private /etc for the fix (ip netns exec gives each command its own mount namespace, slave to the host's).
PRIVATE_ETC = ('mount -t tmpfs gc-fix-etc /etc && mkdir -p /etc/udev/rules.d /etc/sysctl.d && sh -c "$1" '
               '&& for f in /etc/udev/rules.d/* /etc/sysctl.d/*; do [ -f "$f" ] && echo "== $f" && cat "$f"; done; '
               'exit 0')


# A pasted `guestcheck ...` command (`guestcheck tune rps IFACE`): the `guestcheck` on PATH is this checkout's, run
# by Debian's interpreter, and a private tmpfs goes over /etc and /var/lib, so the udev rule it writes and its
# journal stay in that one command's mount namespace. Nothing is made for it: it creates what it needs.
PRIVATE_TUNER = ('mount -t tmpfs gc-fix-etc /etc && mount -t tmpfs gc-fix-var /var/lib && PATH="$2:$PATH" sh -c "$1" '
                 '|| exit 1; for f in /etc/udev/rules.d/* /etc/systemd/network/* /var/lib/guestcheck/*.json; do '
                 '[ -f "$f" ] && echo "== $f" && cat "$f"; done; exit 0')
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def commands(fix: str) -> list[str]:
    """The fix split into commands: one per line, a heredoc (`<<'EOF'` to its `EOF` line) as one."""
    lines, out, i = fix.splitlines(), [], 0
    while i < len(lines):
        marker = re.search(r"<<'(\w+)'$", lines[i])
        if marker:
            end = lines.index(marker.group(1), i + 1)
            out.append("\n".join(lines[i:end + 1]))
            i = end + 1
        else:
            out.append(lines[i])
            i += 1
    return out


def run_fix(ns: Netns, finding: dict) -> list[str]:
    """Every command of the finding's fix, verbatim, in order; returns what the commands wrote to /etc."""
    assert finding["fix_on"] == "guest", finding
    written = []
    for command in commands(finding["fix"]):
        if "<<'" in command:
            out = ns.run(["sh", "-c", PRIVATE_ETC, "fix", command], check=False)
            assert out.returncode == 0 and "== /etc/" in out.stdout, (command, out.stdout, out.stderr)
            written.append(out.stdout)
            # the fix's effect on the kernel was made by the lines before; the heredoc only keeps it
            continue
        if command.startswith("guestcheck "):
            written.append(run_guestcheck(ns, command))
            continue
        out = ns.run(["sh", "-c", command], check=False)
        assert out.returncode == 0, (command, out.stdout, out.stderr)
    return written


def run_guestcheck(ns: Netns, command: str) -> str:
    """A fix that is a guestcheck command, pasted as it is: `guestcheck` resolves to a wrapper for this
    checkout; returns its output and the files it wrote (in the private /etc and /var/lib)."""
    with tempfile.TemporaryDirectory(prefix="gc-fix-bin-") as bindir:
        wrapper = os.path.join(bindir, "guestcheck")
        with open(wrapper, "w") as f:
            f.write(f'#!/bin/sh\nPYTHONPATH={shlex.quote(REPO)} exec /usr/bin/python3 -m guestcheck "$@"\n')
        os.chmod(wrapper, 0o755)
        out = ns.run(["sh", "-c", PRIVATE_TUNER, "fix", command, bindir], check=False)
    assert out.returncode == 0 and "Traceback" not in out.stderr, (command, out.stdout, out.stderr)
    return out.stdout
