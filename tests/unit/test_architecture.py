"""The architecture's contract (issue 20), checked on the import graph that `ast` builds from guestcheck/.

The layers, the imports each may not make, and the modules allowed to write to the system are written down below
as data (NEUTRAL, CONTRACT, WRITERS), each with its reason. The tests read every module under guestcheck/ (package
`__init__` modules included), resolve relative imports, and count every import wherever it is written: at the top,
inside a function (a lazy import is still a dependency) and under `if TYPE_CHECKING:` (a type is a dependency too).
`importlib.import_module("literal")` counts; a name computed at run time (the CLI's lazy command table, the checks'
registry) cannot be seen, and is not counted. Importing `a.b.c` from outside package `a.b` also runs `a/__init__` and
`a/b/__init__`, so those count as imported too.

When a test fails it prints each offending import chain, hop by hop with file and line. To change the contract,
edit the data here, with the reason, in the same commit as the code that needs it.

`/usr/bin/python3 -m tests.unit.test_architecture` prints the layers as they are: each package, the packages it
imports, and each module's (for a closing note's before/after).
"""

from __future__ import annotations

import ast
import fnmatch
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "guestcheck"

# ---------------------------------------------------------------------------------------------------------------
# THE CONTRACT
# ---------------------------------------------------------------------------------------------------------------
# Patterns: "a.b" is that module only; "a.b.*" is package a.b (its __init__) and everything below it. Third-party
# and standard-library modules are named the same way ("click.*").

# Neutral helpers: shared by many layers, importing nothing of guestcheck but other neutral helpers. A new one is
# added here (and CONTRACT's first rule keeps it neutral).
NEUTRAL: Dict[str, str] = {
    "guestcheck": "the package itself: only __version__",
    "guestcheck.quantities": "integers, rates, durations and sizes from outside: the one parser of each",
    "guestcheck.regularfile": "the one bounded regular-file reader",
    "guestcheck.text": "the one escaper (escape_control) and shell quoting",
    "guestcheck.strictjson": "the one strict JSON reader",
    "guestcheck.roots": "where /sys, /proc, /etc are: the real machine or a fake tree",
    "guestcheck.atomicfile": "the one atomic writer (it is a writer: see WRITERS; neutral in what it imports)",
    "guestcheck.cpus": "CPU lists and hex masks, parsed and formatted",
    "guestcheck.kernelversion": "a kernel release as numbers",
    "guestcheck.netaddr": "address arithmetic without the ipaddress module",
    "guestcheck.rtnetlink": "netlink framing with the standard library",
    "guestcheck.sockdiag": "the one decoder of NETLINK_SOCK_DIAG answers (listeners, connections with tcp_info)",
    "guestcheck.tcpinfo": "the one decoder of struct tcp_info and SKMEMINFO (sock_diag's payloads, loaded lazily)",
    "guestcheck.nicdb": "what each NIC driver is (tables)",
    "guestcheck.drivercounters": "the driver counters known by name (one table for collector, checks, renderer)",
    "guestcheck.distros": "commands that differ between distributions (tables)",
    "guestcheck.waiting": "the 'waiting for the sample' line on a terminal",
    "guestcheck.output": "the printing gate: every stream through text's escaper",
    "guestcheck.uevent": "the one parser of uevent properties (sysfs uevent files, udev database E: lines)",
    "guestcheck.ini": "the one lenient INI reader (.link files, TuneD, NetworkManager keyfiles)",
    "guestcheck.names": "the one place that says which interface and profile names are safe",
    "guestcheck.sysctlnames": "the one normaliser of sysctl names (dotted or slashed)",
    "guestcheck.exits": "how a process ends: exit codes, a closed pipe, never a traceback",
    "guestcheck.mountinfo": "the one parser of /proc/PID/mountinfo",
}

GUESTCHECK_APPS = ("guestcheck.cli", "guestcheck.entry", "guestcheck.firstboot.*", "guestcheck.fleet",
                   "guestcheck.refresh")


@dataclass(frozen=True)
class Only:
    """Modules matching `sources` import, from guestcheck, only what `allowed` matches (themselves included)."""

    name: str
    sources: Tuple[str, ...]
    allowed: Tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class Forbidden:
    """No module matching `sources` (but not `exempt`) imports what `forbidden` matches: directly, and with
    `indirect` through any chain of other modules (import-linter's forbidden contract)."""

    name: str
    sources: Tuple[str, ...]
    forbidden: Tuple[str, ...]
    indirect: bool
    reason: str
    exempt: Tuple[str, ...] = ()


@dataclass(frozen=True)
class PrivateStaysHome:
    """No module takes another module's private name (`from m import _x`, `m._x`)."""

    name: str
    reason: str


CONTRACT: Tuple[object, ...] = (  # Only, Forbidden, PrivateStaysHome
    Only("neutral helpers stay neutral", tuple(NEUTRAL), tuple(NEUTRAL),
         "anything may import them, so they import nothing that could import back (no layer, no cycle)"),
    Only("facts are data", ("guestcheck.facts",), tuple(NEUTRAL),
         "Facts are what collect writes and everything else reads: they depend on no side"),
    Only("collect reads the machine into Facts, nothing else", ("guestcheck.collect.*",),
         ("guestcheck.collect.*", "guestcheck.facts", *NEUTRAL),
         "a collector observes; verdicts, profiles, tuning and output are other layers (issue 20: collect -> "
         "facts and helpers only). Third-party readers (pyroute2, distro) are allowed"),
    Only("the tracer stands alone", ("guestcheck.trace.*",), ("guestcheck.trace.*", "guestcheck.facts", *NEUTRAL),
         "the drop-reason tracer writes its own trace instance: doctor and watch call it, it calls no layer; what "
         "it saw is a Facts record (facts.DropReasons)"),
    Forbidden("judge and checks are pure", ("guestcheck.judge.*", "guestcheck.checks.*"),
              ("guestcheck.collect.*", "guestcheck.tune.*", "guestcheck.render.*", "guestcheck.selftest.*",
               "guestcheck.watch.*", *GUESTCHECK_APPS, "click.*", "pyroute2.*", "pyudev.*", "psutil.*", "distro.*"),
              True,
              "they are functions of Facts (a saved facts file is judged the same offline): nothing that reads the "
              "machine, changes it, shows it or parses a command line; indirect chains count, or a helper would "
              "carry the dependency in"),
    Forbidden("judge does not use checks", ("guestcheck.judge.*",), ("guestcheck.checks.*", "guestcheck.report"),
              True,
              "checks take (facts, judged): the arrow points from checks to judge, and a verdict made in judge is "
              "never taken back from a check"),
    Forbidden("renderers only format", ("guestcheck.render.*",), ("guestcheck.checks.*", "guestcheck.collect.*"),
              True,
              "a renderer gets a finished report (facts, verdicts, findings); through any chain, reaching checks "
              "or collect means it can judge or read the machine itself"),
    Forbidden("tune takes verdicts from judge", ("guestcheck.tune.*",), ("guestcheck.checks.*",), True,
              "tune needs verdicts (memory guarantee, NIC kind, owners, offload plan), never findings, so it reaches "
              "the checks through no chain at all (not through the doctor pipeline, guestcheck/doctor.py, either)"),
    Forbidden("watch, first boot and fleet take verdicts from judge",
              ("guestcheck.watch.*", "guestcheck.firstboot.*", "guestcheck.fleet", "guestcheck.refresh"),
              ("guestcheck.checks.*",), False,
              "a verdict comes from judge, never from a check module. Direct imports only: first boot, refresh and "
              "fleet write doctor's report and watch shows live findings, so they may run the checks through the "
              "one pipeline that runs them all (what reaches the checks is that pipeline, not a check module)"),
    Forbidden("flows takes verdicts from judge", ("guestcheck.flows.*",), ("guestcheck.checks.*",), True,
              "`guestcheck flows` judges each connection in judge/flows.py: through no chain does it reach the "
              "checks (doctor's FLOW-* findings are made from the same verdicts, not the other way round)"),
    Forbidden("commands do not import each other", ("guestcheck.*",), ("guestcheck.cli", "guestcheck.*.cli"), False,
              "what two commands share (a click type, a rate parser) is a neutral helper, not one command's click "
              "code (issue 20 point 4: watch/cli.py imports selftest/cli); only the executable and the command "
              "group reach the commands", exempt=("guestcheck.__main__", "guestcheck.entry", "guestcheck.cli")),
    PrivateStaysHome("private names stay in their module",
                     "a leading underscore says 'not an interface': a helper others need is made public in the "
                     "right module (issue 20 point 4: refresh takes first boot's private _textfile_dir)"),
)

# Modules that write to the system, with what they write. A module that calls a writer (see `writes_in`) and is
# not here fails test_only_named_modules_write; one here that no longer writes fails test_writers_list_is_true.
WRITERS: Dict[str, str] = {
    "guestcheck.atomicfile": "itself: write_atomic / write_output (temp file, fsync, rename), for every writer "
                             "below",
    "guestcheck.tune.units.sysctl": "kernel settings (/proc/sys), written and read back",
    "guestcheck.tune.persist": "the persist file (/etc/sysctl.d/90-guestcheck.conf), the .link and udev rule "
                               "files, each atomically, and their removal on rollback",
    "guestcheck.tune.journal": "the journal (/var/lib/guestcheck/tune-state.json) and its lock",
    "guestcheck.tune.units.rps": "RPS masks (/sys/class/net/IFACE/queues/rx-N/rps_cpus)",
    "guestcheck.tune.ethtool_set": "NIC settings through the ethtool SET ioctls (features, channels, rings)",
    "guestcheck.firstboot": "first boot's report and stamp (/var/lib/guestcheck)",
    "guestcheck.fleet": "the fleet outputs: the Ansible fact and the textfile metrics",
    "guestcheck.render.prometheus": "doctor --textfile-dir DIR/guestcheck.prom",
    "guestcheck.render": "doctor -o FILE (render.write_report, for every format)",
    "guestcheck.selftest.document": "selftest --save FILE (the selftest/1 document's renderer)",
    "guestcheck.trace.tracefs": "the drop-reason tracer's own tracefs instance (instances/guestcheck-PID: mkdir, "
                                "its events/skb/kfree_skb/enable, rmdir, and a dead PID's leftover of that name), "
                                "and a tracefs mount at /sys/kernel/tracing only where tracefs was mounted nowhere "
                                "(mount(2)/umount2(2) through ctypes, which this detector does not see); never the "
                                "global trace or another instance",
}
# Reserved, not yet written: allowed to appear, not required to exist.
RESERVED_WRITERS: Dict[str, str] = {}
# Where a writer may live at all (issue 20: "the modules that write to the system are named in the contract").
WRITER_AREAS: Dict[str, str] = {
    "guestcheck.atomicfile": "the one atomic writer",
    "guestcheck.tune.*": "tune changes kernel settings and their persistence",
    "guestcheck.firstboot.*": "first boot writes its report, facts and metrics",
    "guestcheck.refresh": "refresh writes first boot's outputs again",
    "guestcheck.fleet": "the fleet outputs",
    "guestcheck.render.*": "the renderers write -o, --save and --textfile-dir files",
    "guestcheck.selftest.document": "selftest's renderer of its document writes --save",
    "guestcheck.trace.*": "the drop-reason tracer's own trace instance and the tracefs mount it made",
}


# ---------------------------------------------------------------------------------------------------------------
# The import graph
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool
    tree: ast.Module


def module_name(path: Path, top: Path) -> Tuple[str, bool]:
    parts = list(path.relative_to(top.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def load_modules(top: Path = PACKAGE) -> Dict[str, Module]:
    out = {}
    for path in sorted(top.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        name, is_package = module_name(path, top)
        out[name] = Module(name, path, is_package, ast.parse(path.read_bytes(), str(path)))
    return out


def _resolve(module: Module, level: int, target: Optional[str]) -> str:
    """The absolute name of `from .target import ...` written in `module`."""
    if level == 0:
        return target or ""
    package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    base = package[:len(package) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _ancestors(name: str) -> List[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


Edge = Tuple[int, bool]  # the line of the first import, and whether it is implicit (a package run on the way)
Graph = Dict[str, Dict[str, Edge]]


def imports_of(module: Module, known: Iterable[str]) -> Dict[str, Edge]:
    """Every module `module` imports: guestcheck modules by their full name, with the packages Python runs on the
    way (implicit), others by their dotted name as written."""
    known = set(known)
    explicit: Dict[str, int] = {}
    implicit: Dict[str, int] = {}

    def add(name: str, line: int) -> None:
        if not name or name == module.name:
            return
        explicit.setdefault(name, line)
        own = set(_ancestors(module.name)) | ({module.name} if module.is_package else set())
        for parent in _ancestors(name):  # Python runs each package's __init__ on the way
            if parent in known and parent not in own:
                implicit.setdefault(parent, line)

    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node.level, node.module)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                add(full if full in known else base, node.lineno)
        elif (isinstance(node, ast.Call)
              and _called(node) in ("importlib.import_module", "import_module", "__import__")
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            add(node.args[0].value, node.lineno)
    found = {name: (line, True) for name, line in implicit.items() if name not in explicit}
    found.update({name: (line, False) for name, line in explicit.items()})
    return found


def build_graph(modules: Dict[str, Module]) -> Graph:
    return {name: imports_of(m, modules) for name, m in modules.items()}


def covers(pattern: str, name: str) -> bool:
    """"a.b.*": a.b and all below it; otherwise the name itself, where "*" may stand for any part ("a.*.cli")."""
    if pattern.endswith(".*"):
        base = pattern[:-2]
        return name == base or name.startswith(base + ".")
    return fnmatch.fnmatchcase(name, pattern)


def covered(patterns: Iterable[str], name: str) -> bool:
    return any(covers(p, name) for p in patterns)


def hop(modules: Dict[str, Module], graph: Graph, a: str, b: str) -> str:
    line, implicit = graph[a][b]
    path = modules[a].path.relative_to(REPO) if modules[a].path.is_relative_to(REPO) else modules[a].path
    how = ", its __init__ runs on the way to a module inside" if implicit else ""
    return f"{a} -> {b}  ({path}:{line}{how})"


def chain_text(modules: Dict[str, Module], graph: Graph, chain: List[str]) -> str:
    return "\n      ".join(hop(modules, graph, a, b) for a, b in zip(chain, chain[1:]))


def _next(graph: Graph, here: str) -> List[str]:
    """Where `here` leads, explicit imports first (a chain names the module imported, not its package)."""
    return sorted(graph.get(here, {}), key=lambda t: (graph[here][t][1], t))


def shortest_chain(graph: Graph, start: str, goal: Iterable[str]) -> Optional[List[str]]:
    """The shortest import chain from `start` to a module matching `goal` (a goal module is not gone through)."""
    goal = tuple(goal)
    came: Dict[str, Optional[str]] = {start: None}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        for there in _next(graph, here):
            if there in came:
                continue
            came[there] = here
            if covered(goal, there):
                chain = [there]
                while came[chain[-1]] is not None:
                    chain.append(came[chain[-1]])  # type: ignore[arg-type]
                return chain[::-1]
            if there in graph:
                queue.append(there)
    return None


def violations(rule: object, modules: Dict[str, Module], graph: Graph) -> List[str]:
    """One line (with its chain) per offending module; a module that only inherits another source's violation
    through that source is left out, so each root cause is shown once."""
    out = []
    if isinstance(rule, PrivateStaysHome):
        for name in sorted(modules):
            for line, what in private_uses(modules[name], modules):
                out.append(f"  {name} takes {what}  ({modules[name].path.relative_to(REPO)}:{line})")
        return out
    if isinstance(rule, Only):
        for name in sorted(n for n in graph if covered(rule.sources, n)):
            for target in _next(graph, name):
                if target in modules and not graph[name][target][1] and not covered(rule.allowed, target):
                    out.append(f"  {hop(modules, graph, name, target)}")
        return out
    assert isinstance(rule, Forbidden)
    sources = sorted(n for n in graph if covered(rule.sources, n) and not covered(rule.exempt, n))
    for name in sources:
        direct = [t for t in _next(graph, name) if not graph[name][t][1] and covered(rule.forbidden, t)]
        out += [f"  {hop(modules, graph, name, target)}" for target in direct]
        if rule.indirect and not direct:
            chain = shortest_chain(graph, name, rule.forbidden)
            if chain and not (len(chain) > 2 and covered(rule.sources, chain[1])):
                out.append(f"  {name} reaches {chain[-1]}:\n      {chain_text(modules, graph, chain)}")
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(module: Module, modules: Dict[str, Module]) -> List[Tuple[int, str]]:
    """(line, "m._x") for each private name `module` takes from another guestcheck module."""
    out = []
    aliases: Dict[str, str] = {}  # local name -> the guestcheck module it is
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom):
            base = _resolve(module, node.level, node.module)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in modules:
                    aliases[alias.asname or alias.name] = full
                elif _private(alias.name) and base in modules and base != module.name:
                    out.append((node.lineno, full))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in modules:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(module.tree):
        if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                and aliases.get(node.value.id, module.name) != module.name):
            out.append((node.lineno, f"{aliases[node.value.id]}.{node.attr}"))
    return sorted(set(out))


def cycles(graph: Graph) -> List[List[str]]:
    """Each strongly connected component of two or more modules (or a module importing itself), as one cycle
    through its first member, then the members."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    found: List[List[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan; the graph is ~120 modules, recursion is fine
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in _next(graph, v):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def cycle_through(graph: Graph, members: List[str]) -> List[str]:
    """A shortest cycle from the component's first member back to it, inside the component."""
    inside = {m: {t: e for t, e in graph[m].items() if t in members} for m in members}
    start = members[0]
    for first in sorted(inside[start]):
        if first == start:
            return [start, start]
    best: Optional[List[str]] = None
    for first in sorted(inside[start]):
        rest = shortest_chain(inside, first, [start]) if first != start else [start]
        if rest and (best is None or len(rest) + 1 < len(best)):
            best = [start, *rest]
    assert best is not None
    return best


# ---------------------------------------------------------------------------------------------------------------
# Who writes
# ---------------------------------------------------------------------------------------------------------------

# Calls that change files or devices. By the dotted name as written (os.replace, not str.replace).
WRITING_CALLS = {
    "write_atomic", "write_output", "atomicfile.write_atomic", "atomicfile.write_output",
    "os.replace", "os.rename", "os.renames", "os.unlink", "os.remove", "os.removedirs", "os.rmdir", "os.mkdir",
    "os.makedirs", "os.mknod", "os.mkfifo", "os.symlink", "os.link", "os.truncate", "os.ftruncate", "os.chmod",
    "os.fchmod", "os.lchmod", "os.chown", "os.fchown", "os.lchown", "os.utime", "os.write", "os.pwrite",
    "os.writev", "os.sendfile", "os.posix_fallocate",
    "shutil.copy", "shutil.copy2", "shutil.copyfile", "shutil.copyfileobj", "shutil.copytree", "shutil.move",
    "shutil.rmtree", "shutil.chown", "shutil.copymode", "shutil.copystat",
    "tempfile.mkstemp", "tempfile.mkdtemp", "tempfile.NamedTemporaryFile", "tempfile.TemporaryFile",
    "tempfile.TemporaryDirectory", "tempfile.SpooledTemporaryFile",
}
# Methods only pathlib.Path has, that write.
WRITING_METHODS = {"write_text", "write_bytes", "touch", "symlink_to", "hardlink_to", "link_to", "mkdir",
                   "rmdir", "unlink", "chmod", "lchmod", "rename"}
# os.open flags that ask to write.
WRITING_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND", "O_TMPFILE"}
ETHTOOL_SET = re.compile(r"^ETHTOOL_S[A-Z]+$")  # the SET commands of SIOCETHTOOL (the GET ones are ETHTOOL_G*)


def _called(node: ast.Call) -> str:
    """The dotted name a call is written with ("os.replace"), "" when it is not a plain name."""
    return _dotted(node.func)


def _mode(node: ast.Call, position: int) -> Optional[ast.expr]:
    for kw in node.keywords:
        if kw.arg == "mode":
            return kw.value
    return node.args[position] if len(node.args) > position else None


def _names_in(node: ast.AST) -> Set[str]:
    return {n.attr if isinstance(n, ast.Attribute) else n.id for n in ast.walk(node)
            if isinstance(n, (ast.Attribute, ast.Name))}


def writes_in(tree: ast.AST) -> List[Tuple[int, str]]:
    """(line, what) for each place the code writes to the system."""
    out: List[Tuple[int, str]] = []
    exempt: Set[int] = set()  # ids of nodes inside os.open(os.devnull, ...): a closed stream's stand-in
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _called(node)
        if name in ("os.open", "open", "io.open", "os.fdopen"):
            first = node.args[0] if node.args else None
            if first is not None and _dotted(first) == "os.devnull":
                exempt.update(id(n) for n in ast.walk(node))
                continue
        if name in WRITING_CALLS:
            out.append((node.lineno, name))
        elif isinstance(node.func, ast.Attribute) and node.func.attr in WRITING_METHODS:
            out.append((node.lineno, f".{node.func.attr}()"))
        elif name in ("open", "io.open", "os.fdopen", "builtins.open") or (
                isinstance(node.func, ast.Attribute) and node.func.attr == "open" and name != "os.open"
                and not name.startswith(("gzip.", "tarfile.", "zipfile."))):
            mode = _mode(node, 1 if name in ("open", "io.open", "os.fdopen", "builtins.open") else 0)
            if mode is None:
                continue
            if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
                if set(mode.value) & set("wax+"):
                    out.append((node.lineno, f"{name}(mode {mode.value!r})"))
            else:
                out.append((node.lineno, f"{name}(mode computed at run time)"))
    for node in ast.walk(tree):
        if id(node) in exempt:
            continue
        if isinstance(node, ast.Attribute) and node.attr in WRITING_FLAGS:
            out.append((node.lineno, f"os.{node.attr}"))
        elif isinstance(node, ast.Name) and ETHTOOL_SET.match(node.id):
            out.append((node.lineno, f"{node.id} ioctl"))
    return sorted(set(out))


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


# ---------------------------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def modules() -> Dict[str, Module]:
    return load_modules()


@pytest.fixture(scope="module")
def graph(modules: Dict[str, Module]) -> Graph:
    return build_graph(modules)


def test_the_graph_has_every_module_and_package(modules, graph):
    files = [p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts]
    assert len(modules) == len(files) and "guestcheck" in modules and "guestcheck.collect" in modules
    assert "guestcheck.strictjson" in graph["guestcheck.facts"]


@pytest.mark.parametrize("rule", CONTRACT, ids=[r.name for r in CONTRACT])  # type: ignore[attr-defined]
def test_contract(rule, modules, graph):
    found = violations(rule, modules, graph)
    if found:
        pytest.fail(f"contract '{rule.name}' broken ({rule.reason}):\n" + "\n".join(found), pytrace=False)


def test_no_import_cycles(modules, graph):
    found = cycles(graph)
    lines = [f"  cycle: {' -> '.join(cycle_through(graph, c))}\n      "
             + chain_text(modules, graph, cycle_through(graph, c))
             + (f"\n      (component of {len(c)}: {', '.join(c)})" if len(c) > 2 else "") for c in found]
    if found:
        pytest.fail(f"{len(found)} import cycle(s) in guestcheck/:\n" + "\n".join(lines), pytrace=False)


def test_only_named_modules_write(modules):
    unnamed = []
    for name, m in sorted(modules.items()):
        where = writes_in(m.tree)
        if where and name not in WRITERS and not covered(RESERVED_WRITERS, name):
            spots = ", ".join(f"{m.path.relative_to(REPO)}:{line} {what}" for line, what in where)
            unnamed.append(f"  {name}: {spots}")
    if unnamed:
        pytest.fail("modules that write to the system but are not in WRITERS (move the write to a writer, or name "
                    "the module with what it writes):\n" + "\n".join(unnamed), pytrace=False)


def test_writers_list_is_true(modules):
    stale = [name for name in WRITERS if name not in modules or not writes_in(modules[name].tree)]
    assert not stale, f"WRITERS names modules that do not write (any more): {stale}"
    outside = [name for name in [*WRITERS, *RESERVED_WRITERS]
               if not covered(WRITER_AREAS, name[:-2] if name.endswith(".*") else name)]
    assert not outside, f"WRITERS names modules outside the areas allowed to write (WRITER_AREAS): {outside}"


# -- the detectors themselves, on small sources --------------------------------------------------------------------

def _module(name: str, source: str, is_package: bool = False) -> Module:
    return Module(name, Path(f"/x/{name}.py"), is_package, ast.parse(source))


def test_imports_are_resolved_and_counted_wherever_written():
    known = {"guestcheck", "guestcheck.tune", "guestcheck.tune.apply", "guestcheck.tune.units",
             "guestcheck.tune.units.nic", "guestcheck.collect", "guestcheck.collect.fs", "guestcheck.checks"}
    nic = _module("guestcheck.tune.units.nic", "from .. import apply\nfrom . import base\n"
                  "def f():\n    from guestcheck.collect.fs import cat\n"
                  "if TYPE_CHECKING:\n    from guestcheck.checks import Owner\n"
                  "import importlib\nimportlib.import_module('guestcheck.collect')\n")
    found = imports_of(nic, known)
    assert {"guestcheck.tune.apply", "guestcheck.tune.units", "guestcheck.collect.fs", "guestcheck.collect",
            "guestcheck.checks", "importlib"} <= set(found)
    assert found["guestcheck.collect.fs"] == (4, False) and found["guestcheck.collect"] == (8, False)
    assert "guestcheck.tune" not in found  # its own package: already loaded
    init = _module("guestcheck.tune", "from .apply import x\nfrom . import apply\n", is_package=True)
    assert set(imports_of(init, known)) == {"guestcheck.tune.apply"}


def test_the_writer_detector():
    def what(source: str) -> List[str]:
        return [w for _, w in writes_in(ast.parse(source))]

    assert what("s.replace('a', 'b')\nopen(p)\nopen(p, 'rb')\nos.open(p, os.O_RDONLY)\n") == []
    assert what("fd = os.open(os.devnull, os.O_WRONLY)\n") == []
    assert what("os.replace(a, b)") == ["os.replace"]
    assert what("open(p, 'w')") == ["open(mode 'w')"]
    assert what("open(p, mode)") == ["open(mode computed at run time)"]
    assert what("with path.open('a') as f: pass") == ["path.open(mode 'a')"]
    assert what("Path(p).write_text('x')") == [".write_text()"]
    assert what("os.open(p, os.O_WRONLY | os.O_TRUNC)") == ["os.O_TRUNC", "os.O_WRONLY"]
    assert what("write_atomic(p, b'')") == ["write_atomic"]
    assert what("ETHTOOL_SFEATURES = 0x3B\nETHTOOL_GFEATURES = 0x3A") == ["ETHTOOL_SFEATURES ioctl"]


def test_the_chain_and_cycle_finders():
    g = {"a": {"b": (1, False)}, "b": {"c": (2, False)}, "c": {"a": (3, False), "x": (4, False)},
         "d": {"d": (5, False)}, "e": {"a": (6, False)}}
    assert shortest_chain(g, "a", ["x"]) == ["a", "b", "c", "x"]
    assert cycles(g) == [["a", "b", "c"], ["d"]]
    assert cycle_through(g, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert cycle_through(g, ["d"]) == ["d", "d"]
    rule = Forbidden("t", ("a", "b"), ("x",), True, "")
    mods = {n: Module(n, REPO / f"{n}.py", False, ast.parse("")) for n in g}
    found = violations(rule, mods, g)
    assert len(found) == 1 and found[0].startswith("  b reaches x")  # a only inherits b's chain
    g["a"]["x"] = (7, False)
    assert violations(rule, mods, g)[0] == "  a -> x  (a.py:7)"  # a direct import is shown as it is


def test_private_names_are_seen():
    mods = {n: _module(n, "") for n in ("guestcheck.firstboot", "guestcheck.tune", "guestcheck.tune.apply")}
    refresh = _module("guestcheck.refresh", "from guestcheck.firstboot import _textfile_dir, load\n"
                      "from guestcheck.tune import apply\nimport guestcheck.tune.apply as ap\n"
                      "apply._locked()\nap._save()\napply.__name__\n_mine()\n")
    assert private_uses(refresh, mods) == [(1, "guestcheck.firstboot._textfile_dir"),
                                           (4, "guestcheck.tune.apply._locked"), (5, "guestcheck.tune.apply._save")]


# -- the layers as text ------------------------------------------------------------------------------------------

def area(name: str) -> str:
    """The layer a module belongs to: its first package under guestcheck, or the top-level module itself."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "guestcheck"


def _alone(area_name: str, names: List[str]) -> bool:
    """A top-level module (or the package's own __init__), not a package of several modules."""
    return names in ([f"guestcheck.{area_name}"], ["guestcheck"])


def layer_listing(modules: Optional[Dict[str, Module]] = None) -> str:
    modules = modules or load_modules()
    graph = build_graph(modules)
    by_area: Dict[str, List[str]] = {}
    for name in sorted(modules):
        by_area.setdefault(area(name), []).append(name)
    lines = ["Packages (top-level modules stand alone) and the guestcheck packages each imports:"]
    for a, names in sorted(by_area.items()):
        uses = sorted({area(t) for n in names for t, (_, implicit) in graph[n].items()
                       if t in modules and not implicit and area(t) != a})
        lines.append(f"  {a:<15} -> {', '.join(uses) or '-'}")
    lines.append("")
    lines.append("Modules, by package: module -> the guestcheck packages it imports (own package in brackets: "
                 "the modules of its own package it imports)")
    for a, names in sorted(by_area.items()):
        if _alone(a, names):
            continue
        lines.append(f"  [{a}]")
        for n in names:
            targets = [t for t, (_, implicit) in graph[n].items() if t in modules and not implicit]
            own = sorted(t.split(".", 2)[-1] for t in targets if area(t) == a and t != f"guestcheck.{a}")
            other = sorted({area(t) for t in targets if area(t) != a})
            text = " ".join(filter(None, [", ".join(other), f"[{', '.join(own)}]" if own else ""]))
            lines.append(f"    {n.split('.', 1)[-1] if '.' in n else n:<28} -> {text or '-'}")
    single = [n for a, names in sorted(by_area.items()) for n in names if _alone(a, names)]
    lines.append("  [top-level modules]")
    for n in single:
        targets = sorted({area(t) for t, (_, implicit) in graph[n].items() if t in modules and not implicit})
        lines.append(f"    {n.split('.', 1)[-1] if '.' in n else n:<28} -> {', '.join(targets) or '-'}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(layer_listing())
