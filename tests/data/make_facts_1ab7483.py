"""How tests/data/facts-1ab7483-*.json were made: facts files saved by commit 1ab7483, judged by today's code.

`/usr/bin/python3 tests/data/make_facts_1ab7483.py OUTDIR` from a checkout of a later commit (it builds the fake
machines with that checkout's tests/fakemachine.py and tests/unit/test_golden.py), with 1ab7483's tree unpacked
somewhere (`git archive 1ab7483 | tar -x -C OLD`) and named by GUESTCHECK_OLD_TREE=OLD. Each machine is built at
/tmp/guestcheck-1ab7483-root and 1ab7483's own `guestcheck facts --json --sample 0` is run on it
(GUESTCHECK_ROOT), so the file is exactly what that version saves:
  facts-1ab7483-bridged.json              test_golden.bridged_machine: bridge, VLAN, tunnels, balloon, e1000
  facts-1ab7483-qemu-virtio_tap_mq.json   the reference capture qemu-virtio_tap_mq (tests/fakemachine.py)
tests/unit/test_golden.py judges them with `doctor --facts` and compares with recorded outputs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.getcwd())
from tests.fakemachine import from_snapshot
from tests.unit.test_golden import bridged_machine

ROOT = Path("/tmp/guestcheck-1ab7483-root")


def main(out: Path) -> None:
    old = os.environ["GUESTCHECK_OLD_TREE"]
    machines = {"bridged": bridged_machine,
                "qemu-virtio_tap_mq": lambda root: from_snapshot("qemu-virtio_tap_mq", root).write_ethtool()}
    for name, build in machines.items():
        shutil.rmtree(ROOT, ignore_errors=True)
        build(ROOT)
        done = subprocess.run([sys.executable, "-m", "guestcheck", "facts", "--json", "--sample", "0"],
                              capture_output=True, check=True, cwd=old,
                              env={"PATH": os.environ["PATH"], "PYTHONPATH": old, "GUESTCHECK_ROOT": str(ROOT),
                                   "LC_ALL": "C.UTF-8"})
        (out / f"facts-1ab7483-{name}.json").write_bytes(done.stdout)
    shutil.rmtree(ROOT, ignore_errors=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
