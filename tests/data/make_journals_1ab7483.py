"""How tests/data/journal-1ab7483-*.json were made: run ONCE, as root, in a checkout at commit 1ab7483.

`/usr/bin/python3 tests/data/make_journals_1ab7483.py OUTDIR` (from the checkout's top). Everything happens in
network namespaces it makes and in scratch roots under OUTDIR (`tune --root`): nothing on the machine changes.
  journal-1ab7483-apply.json  `tune apply many-connections` over a 90-guestcheck.conf that held Latin-1 bytes
                              (journal-1ab7483-apply.orig-90-guestcheck.conf, mode 0640): surrogate escapes
  journal-1ab7483-nic.json    `tune offloads gc0` then `tune queues gc0` on a veth (sg, tso, gso off first), with
                              Latin-1 files already at the .link and rule paths (*.orig-*): no NIC identity
The *.applied-* files are what that version wrote at the persist, .link and rule paths. The 1ab7483 code is not
kept: this script is the record of how the files were made, not a test.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, os.getcwd())
from tests.netns import guestcheck_in, netns, veth_pair

DEFAULT_LINK = ("[Match]\nOriginalName=*\n\n[Link]\nNamePolicy=keep kernel database onboard slot path\n"
                "AlternativeNamesPolicy=database onboard slot path\nMACAddressPolicy=persistent\n")
PERSIST_ORIG = b"# r\xe9glages de l'admin (Latin-1, not UTF-8) \xff\xfe\nnet.ipv4.tcp_fin_timeout = 30\n"
LINK_ORIG = b"# an admin's own file at guestcheck's path, Latin-1: \xe9t\xe9 \xff\n[Match]\nOriginalName=nomatch0\n"
RULE_ORIG = b"# an admin's rule, Latin-1: caf\xe9 \x80\x81\n"


def tune(ns, root: Path, *args: str) -> None:  # type: ignore[no-untyped-def]
    out = guestcheck_in(ns, "tune", "--root", str(root), *args)
    print("$ guestcheck tune", *args, "->", out.returncode, out.stdout, out.stderr)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    ra = out / "rootA"
    (ra / "etc/sysctl.d").mkdir(parents=True)
    persist = ra / "etc/sysctl.d/90-guestcheck.conf"
    persist.write_bytes(PERSIST_ORIG)
    os.chmod(persist, 0o640)
    with netns() as ns:
        tune(ns, ra, "apply", "many-connections")
    shutil.copy(ra / "var/lib/guestcheck/tune-state.json", out / "journal-1ab7483-apply.json")
    shutil.copy(persist, out / "journal-1ab7483-apply.applied-90-guestcheck.conf")
    (out / "journal-1ab7483-apply.orig-90-guestcheck.conf").write_bytes(PERSIST_ORIG)

    rb = out / "rootB"
    (rb / "usr/lib/systemd/network").mkdir(parents=True)
    (rb / "usr/lib/systemd/network/99-default.link").write_text(DEFAULT_LINK)
    (rb / "etc/systemd/network").mkdir(parents=True)
    (rb / "etc/udev/rules.d").mkdir(parents=True)
    link = rb / "etc/systemd/network/50-guestcheck-gc0.link"
    link.write_bytes(LINK_ORIG)
    os.chmod(link, 0o600)
    rule = rb / "etc/udev/rules.d/90-guestcheck-gc0.rules"
    rule.write_bytes(RULE_ORIG)
    with netns() as a, netns() as b, veth_pair(a, b):
        a.run(["ethtool", "-K", "gc0", "sg", "off", "tso", "off", "gso", "off"])
        tune(a, rb, "offloads", "gc0")
        tune(a, rb, "queues", "gc0")
    shutil.copy(rb / "var/lib/guestcheck/tune-state.json", out / "journal-1ab7483-nic.json")
    shutil.copy(link, out / "journal-1ab7483-nic.applied-50-guestcheck-gc0.link")
    shutil.copy(rule, out / "journal-1ab7483-nic.applied-90-guestcheck-gc0.rules")
    (out / "journal-1ab7483-nic.orig-50-guestcheck-gc0.link").write_bytes(LINK_ORIG)
    (out / "journal-1ab7483-nic.orig-90-guestcheck-gc0.rules").write_bytes(RULE_ORIG)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
