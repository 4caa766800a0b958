"""Facts: plain, JSON-serialisable records of what the collectors saw.

The checks judge only these, so a saved `guestcheck facts --json` can be judged anywhere.
Optional fields are None when the machine did not say (not allowed, not supported, gone).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import sys
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from guestcheck.strictjson import text_from_json, text_to_json

FACTS_SCHEMA = "guestcheck.facts/1"
DENIED_PREFIX = "permission denied: "  # facts.problems entries for sources only root may read
FAILED_PREFIX = "could not collect "  # a collector that raised: the area it fills is left at its default

# Bounds for numbers read from a facts file: every counter the kernel has fits in 64 bits, and no rate,
# percentage or duration comes near 1e15. Beyond them a file is damaged (or hostile), not a measurement.
INT_MIN, INT_MAX = -(2**63), 2**64 - 1
FLOAT_MAX = 1e15


@dataclass(frozen=True)
class Problem:
    """One thing the collection could not see, typed so that no renderer parses strings apart:
    "denied" (a source only root may read: `source` is its path), "failed" (a collector raised: `source` is
    its area) or "note" (anything else; `source` is empty). In facts/1 a problem is its string, str(problem)."""

    kind: str  # "denied" | "failed" | "note"
    source: str
    text: str

    def __str__(self) -> str:
        if self.kind == "denied":
            return f"{DENIED_PREFIX}{self.source} ({self.text})"
        if self.kind == "failed":
            return f"{FAILED_PREFIX}{self.source}: {self.text}"
        return self.text

    @classmethod
    def note(cls, text: str) -> Problem:
        return cls("note", "", text)

    @classmethod
    def parse(cls, text: str | Problem) -> Problem:
        """A problem from its facts/1 string (files saved by any guestcheck version); a Problem is kept."""
        if isinstance(text, Problem):
            return text
        if text.startswith(DENIED_PREFIX) and text.endswith(")") and " (" in text:
            source, _, why = text[len(DENIED_PREFIX):-1].partition(" (")
            return cls("denied", source, why)
        if text.startswith(FAILED_PREFIX) and ": " in text:
            source, _, why = text[len(FAILED_PREFIX):].partition(": ")
            if source.isidentifier():
                return cls("failed", source, why)
        return cls.note(text)


@dataclass
class Evidence:
    """One observation that argues for (or against) a verdict."""

    source: str  # dmi, smbios, cpuid, acpi, hypervisor-sysfs, device-tree, clocksource, bus, cpuinfo, marker, ...
    detail: str  # the file or call that was read
    value: str  # what it said, raw (the forms are documented in guestcheck/judge/virt.py)
    points_to: Optional[str] = None  # set by the judge: the verdict it supports ("kvm", "docker"), None if neutral
    strength: str = "strong"  # set by the judge: strong | medium | weak
    used: bool = True  # set by the judge: False when it weighed the row and set it aside
    note: str = ""  # set by the judge: why
    error: str = ""  # the source exists but could not be read ("permission denied"); value is "" then


@dataclass
class Virt:
    """The platform. Collected, it holds only `evidence` (raw rows); the verdict fields are the judge's
    (guestcheck/judge/virt.py), in Judged.virt and in facts/1, where `with_verdicts` merges them in."""

    hypervisor: Optional[str] = None  # kvm, qemu, xen, hyperv, vmware, virtualbox, firecracker, ..., None
    product: Optional[str] = None  # the DMI product, when there is one
    cloud: Optional[str] = None  # amazon, google, microsoft, oracle, ...
    container: Optional[str] = None  # openvz, lxc, docker, podman, systemd-nspawn, wsl, ..., None
    evidence: List[Evidence] = field(default_factory=list)
    caveats: List[str] = field(default_factory=list)  # how the verdict could change with root ("run as root to ...")
    # the denied sources (evidence details) that could change a verdict the other evidence has not decided:
    # while one is listed, doctor's status is at best unknown
    undecided: List[str] = field(default_factory=list)


@dataclass
class Feature:
    """One ETHTOOL_GFEATURES bit, by the kernel's name. `on` and `fixed` are what `ethtool -k` shows; the
    four words the kernel answers are kept too, so the checks can tell "off" from "off [requested on]"."""

    on: bool  # the "active" word: the feature is in use
    fixed: bool  # ethtool's [fixed]: not in "available", or in "never_changed"
    requested: Optional[bool] = None  # asked for (ethtool -K); None in facts from before guestcheck records it
    available: Optional[bool] = None  # the driver lets it be changed
    never_changed: Optional[bool] = None  # the kernel never changes it


@dataclass
class Channels:
    """A NIC's channels (`ethtool -l`): the maxima the device allows and the counts in use."""

    max_rx: int = 0
    max_tx: int = 0
    max_other: int = 0
    max_combined: int = 0
    rx: int = 0
    tx: int = 0
    other: int = 0
    combined: int = 0


@dataclass
class Rings:
    """ETHTOOL_GRINGPARAM: descriptors per ring, the device's maximum and what is set now."""

    rx_max: int = 0
    rx_mini_max: int = 0
    rx_jumbo_max: int = 0
    tx_max: int = 0
    rx: int = 0
    rx_mini: int = 0
    rx_jumbo: int = 0
    tx: int = 0


@dataclass
class Nic:
    """One network interface as the collectors saw it: identity, driver, offloads, queues, rings."""

    name: str
    ifindex: Optional[int] = None
    # kind, kind_reason and software_type are the judge's verdicts (guestcheck/judge/nic.py): a collected Nic
    # leaves them unset; facts/1 shows them (with_verdicts), and an older facts file's are read as its evidence
    kind: str = "unknown"  # paravirtual | sriov-vf | emulated | software | physical | unknown
    kind_reason: str = ""
    driver: Optional[str] = None  # the best answer: sysfs first, then the ioctl
    driver_sysfs: Optional[str] = None
    driver_ethtool: Optional[str] = None
    driver_version: Optional[str] = None
    firmware: Optional[str] = None
    bus: str = "none"  # pci | virtio | vmbus | xen | platform | usb | none
    bus_info: Optional[str] = None
    pci_id: Optional[str] = None  # "8086:100e" of the PCI function (a virtio device's parent)
    pci_subsystem_id: Optional[str] = None
    software_type: Optional[str] = None  # veth, bridge, bond, vlan, tun, macvlan, ... for software NICs
    mac: Optional[str] = None
    mtu: Optional[int] = None
    operstate: Optional[str] = None
    carrier: Optional[bool] = None
    admin_up: Optional[bool] = None
    speed_mbps: Optional[int] = None
    duplex: Optional[str] = None
    link_type: Optional[int] = None  # ARPHRD_*
    rx_queues: Optional[int] = None  # sysfs queues/rx-*
    tx_queues: Optional[int] = None
    channels: Optional[Channels] = None  # ETHTOOL_GCHANNELS
    rings: Optional[Rings] = None  # ETHTOOL_GRINGPARAM
    driver_stats: Optional[Dict[str, int]] = None  # ETHTOOL_GSTATS by the driver's names (`ethtool -S`), since boot
    features: Optional[Dict[str, Feature]] = None  # ETHTOOL_GFEATURES by kernel name
    unknown: Dict[str, str] = field(default_factory=dict)  # what could not be read, and why
    # From udev's database (/run/udev/data/nIFINDEX); None where udev has no entry (no udevd, a container)
    model: Optional[str] = None  # hwdb's ID_MODEL_FROM_DATABASE: "82540EM Gigabit Ethernet Controller"
    vendor: Optional[str] = None  # hwdb's ID_VENDOR_FROM_DATABASE: "Intel Corporation"
    udev_names: Optional[Dict[str, str]] = None  # ID_NET_NAME, ID_NET_NAME_PATH/SLOT/ONBOARD/MAC: udev's names
    # Raw sysfs answers the judging step decides `kind`, `kind_reason` and `software_type` from. None: not
    # recorded (a facts file from an older guestcheck); the judging step then keeps what that file says.
    has_device: Optional[bool] = None  # sysfs class/net/IFACE/device exists: hardware (or virtio) behind it
    has_physfn: Optional[bool] = None  # device/physfn exists: an SR-IOV virtual function of a local PF
    devtype: Optional[str] = None  # DEVTYPE= in class/net/IFACE/uevent ("" when there is none)
    markers: Optional[List[str]] = None  # type markers present in class/net/IFACE: bridge, bonding, tun_flags
    lowers: Optional[List[str]] = None  # the lower_* links: devices this one is stacked on (macvlan, vlan, ports)
    master: Optional[str] = None  # the master link: the bridge or bond this one is a port of


@dataclass
class Host:
    """The machine itself: kernel, OS (os-release), host name, root or not, CPUs."""

    kernel: str = ""
    os: str = ""  # os-release's PRETTY_NAME
    os_id: str = ""  # os-release's ID as the distro library normalises it: "debian", "fedora", "rhel", ...
    os_like: List[str] = field(default_factory=list)  # ID_LIKE
    os_version: str = ""  # VERSION_ID
    hostname: str = ""
    is_root: bool = False
    vcpus: int = 1


@dataclass
class Balloon:
    """A way for the host to take memory back (or add removable memory), and how far it has gone."""

    kind: str  # virtio-balloon | virtio-mem | hv-balloon | xen-balloon | vmw-balloon
    bound: bool  # the driver serves the device: the host's requests are obeyed
    device: str = ""  # virtio0, a vmbus GUID, xen_memory0, the module name
    inflated_bytes: Optional[int] = None  # memory the host holds now, where the kernel shows it
    inflated_source: str = ""  # the file that said so
    target_bytes: Optional[int] = None  # what the host asks the guest to have (Xen, VMware)
    current_bytes: Optional[int] = None
    added_bytes: Optional[int] = None  # hot-added by the host (Hyper-V Dynamic Memory)
    deflate_on_oom: Optional[bool] = None  # virtio feature bit 2: the guest takes memory back under pressure
    detail: str = ""


@dataclass
class Beancounter:
    """One row of OpenVZ/Virtuozzo /proc/user_beancounters (pages or bytes, as the kernel counts it)."""

    resource: str
    held: int
    maxheld: int
    barrier: int
    limit: int
    failcnt: int


@dataclass
class Memory:
    """What memory the guest was given and has now: meminfo, firmware map, balloon, cgroup limit."""

    total_bytes: Optional[int] = None  # MemTotal: what the kernel manages now
    available_bytes: Optional[int] = None
    firmware_bytes: Optional[int] = None  # "System RAM" in /sys/firmware/memmap: what the VM was given
    swap_total_bytes: Optional[int] = None
    swap_free_bytes: Optional[int] = None
    committed_bytes: Optional[int] = None  # Committed_AS
    commit_limit_bytes: Optional[int] = None  # CommitLimit
    overcommit_memory: Optional[int] = None  # vm.overcommit_memory: 0 heuristic, 1 always, 2 never
    overcommit_ratio: Optional[int] = None
    balloon_bytes: Optional[int] = None  # meminfo "Balloon:" (newer kernels), all balloon drivers together
    vmstat_balloon_inflate: Optional[int] = None  # pages, cumulative since boot
    vmstat_balloon_deflate: Optional[int] = None
    balloons: List[Balloon] = field(default_factory=list)
    beancounters_uid: Optional[str] = None
    beancounters: Optional[List[Beancounter]] = None  # None: no /proc/user_beancounters
    cgroup_limit_bytes: Optional[int] = None  # the tightest limit over the whole system or container
    cgroup_usage_bytes: Optional[int] = None
    cgroup_limit_source: str = ""  # the file that set it
    unknown: Dict[str, str] = field(default_factory=dict)  # what could not be read, and why


@dataclass
class CpuSteal:
    """Time the hypervisor ran something else while a vCPU wanted to run, over the sample."""

    seconds: float = 0.0
    percent: Optional[float] = None  # over the CPUs seen in both readings; None when not measurable
    per_cpu: Dict[str, float] = field(default_factory=dict)  # "cpu0": percent
    since_boot_percent: Optional[float] = None  # the last reading's totals, for context
    changed_cpus: List[str] = field(default_factory=list)  # went offline or came online between readings
    notes: List[str] = field(default_factory=list)  # counters that went backwards, and such


@dataclass
class Facts:
    """Everything one collection saw, area by area: what the checks judge, and facts/1 on disk."""

    schema: str = FACTS_SCHEMA
    guestcheck_version: str = ""
    collected_at: str = ""
    host: Host = field(default_factory=Host)
    virt: Virt = field(default_factory=Virt)
    nics: List[Nic] = field(default_factory=list)
    memory: Optional[Memory] = None
    cpu_steal: Optional[CpuSteal] = None
    softirq: Optional[Softirq] = None
    path: Optional[Path] = None
    bridges: List[Bridge] = field(default_factory=list)
    vlans: List[Vlan] = field(default_factory=list)
    conntrack: Optional[Conntrack] = None
    congestion: Optional[Congestion] = None  # TCP's congestion control (None in files from before it)
    tunnels: List[Tunnel] = field(default_factory=list)
    pci_network: List[PciFunction] = field(default_factory=list)  # network-class PCI functions, bound or not
    agents: Optional[OtherAgents] = None  # irqbalance, TuneD, Google's agents, NetworkManager, cloud-init
    nic_counters: List[NicCounters] = field(default_factory=list)  # drop and limit counters, sampled
    ledger: Optional[Ledger] = None  # qdiscs, IP/UDP/TCP counters, listeners: sampled (None in files from before)
    drops: Optional[DropReasons] = None  # the kernel's drop reasons over the sample: only with doctor --drops
    flows: Optional[Flows] = None  # live TCP connections over the sample, tcp_info (None in files from before)
    sample_seconds: float = 0.0  # how long the counters (steal, softnet, softirqs) were sampled
    complete: bool = True  # False when a whole area could not be read
    problems: List[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return plain(self)

    def nic(self, name: str) -> Optional[Nic]:
        return next((n for n in self.nics if n.name == name), None)


_FIELD_NAMES: Dict[type, tuple] = {}


def plain(value: Any) -> Any:
    """What dataclasses.asdict gives for facts (dataclasses, lists, dicts and plain values), without its deep
    copy of every leaf: a facts document of 500 interfaces converts in a third of the time. Strings are in
    their JSON form (text_to_json), which facts_from_dict reads back."""
    cls = type(value)
    if cls is str:
        return text_to_json(value)  # undecodable bytes of kernel text as \\xHH: see guestcheck/strictjson.py
    if cls is Problem:
        return text_to_json(str(value))  # facts/1 keeps a problem as its one line
    if cls in (int, float, bool) or value is None:
        return value
    names = _FIELD_NAMES.get(cls)
    if names is None and dataclasses.is_dataclass(cls):
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    if names is not None:
        return {name: plain(getattr(value, name)) for name in names}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    return copy.deepcopy(value)


class FactsError(ValueError):
    """A facts file that is not ours, or is damaged."""


def facts_from_dict(data: Any) -> Facts:
    """Rebuild Facts from JSON; a foreign or damaged document raises FactsError with the reason."""
    if not isinstance(data, dict):
        raise FactsError("not a guestcheck facts document (expected a JSON object)")
    if data.get("schema") == "guestcheck.doctor/1" and isinstance(data.get("facts"), dict):
        data = data["facts"]  # a saved doctor report carries its facts: accept it too
    schema = data.get("schema")
    if schema != FACTS_SCHEMA:
        raise FactsError(f"unsupported schema {schema!r} (expected {FACTS_SCHEMA!r})")
    try:
        return _converter(Facts)(data)
    except _Refused as e:
        raise FactsError(f"facts{''.join(reversed(e.where))}: {e}") from None
    except RecursionError:
        raise FactsError("nested too deeply") from None
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise FactsError(str(e)) from None


# Counts the checks loop over or build masks from: no kernel has more CPUs or queues than this.
_COUNT = (0, 65536)
_FIELD_RANGES = {("Host", "vcpus"): _COUNT, ("Nic", "rx_queues"): _COUNT, ("Nic", "tx_queues"): _COUNT,
                 ("NicSteering", "rx_queues"): _COUNT, ("NicSteering", "tx_queues"): _COUNT,
                 ("SoftnetCpu", "cpu"): _COUNT}
# A lone surrogate U+DC80-U+DCFF is what surrogateescape makes of an undecodable byte: it is read as that byte
# (guestcheck before 0.x wrote names that way). Any other lone surrogate stands for no byte: refused.
_NOT_A_BYTE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


class _Refused(Exception):
    """A value of the wrong shape; `where` collects its path on the way out (".nics", "[0]"), so a good file
    never pays for building paths."""

    def __init__(self, message: str, *where: str) -> None:
        super().__init__(message)
        self.where = list(where)


Converter = Callable[[Any], Any]
_CONVERTERS: Dict[Any, Converter] = {}
_FIELDS: Dict[type, Dict[str, Tuple[Converter, Optional[Tuple[int, int]]]]] = {}


def _converter(tp: Any) -> Converter:
    """The function that checks JSON against the annotated type and converts it, made once per type: a file of
    a million empty counters took 40 s when every nested object looked its class's type hints up again."""
    convert = _CONVERTERS.get(tp)
    if convert is None:
        convert = _CONVERTERS[tp] = _make_converter(tp)
    return convert


def _fields_of(tp: type) -> Dict[str, Tuple[Converter, Optional[Tuple[int, int]]]]:
    """name -> (converter, range) of each field of a dataclass, on first use (the hints resolve lazily)."""
    fields = _FIELDS.get(tp)
    if fields is None:
        hints = typing.get_type_hints(tp, vars(sys.modules[tp.__module__]))
        fields = _FIELDS[tp] = {f.name: (_converter(hints[f.name]), _FIELD_RANGES.get((tp.__name__, f.name)))
                                for f in dataclasses.fields(tp)}
    return fields


def _located(convert: Converter, items: Any, where: Callable[[Any], str]) -> _Refused:
    """The first item that `convert` refuses, with its place: looked for only once something was refused."""
    for key, item in items:
        try:
            convert(item)
        except _Refused as e:
            e.where.append(where(key))
            return e
    return _Refused("refused")  # cannot happen: the same items were refused a moment ago


def _plain_texts(texts: Any) -> bool:
    """All strings, and all ASCII without a backslash: taken as they are (every key of a real facts file)."""
    if not all(map(str.__instancecheck__, texts)):
        return False
    joined = "".join(texts)
    return joined.isascii() and "\\" not in joined


def _bulk_int(values: list) -> Optional[list]:
    if not values:
        return values
    if set(map(type, values)) != {int} or min(values) < INT_MIN or max(values) > INT_MAX:
        return None
    return values


def _bulk_float(values: list) -> Optional[list]:
    if not set(map(type, values)) <= {int, float}:
        return None
    if any(map(int.__instancecheck__, values)) and (min(values) < INT_MIN or max(values) > INT_MAX):
        return None
    numbers = list(map(float, values))
    return numbers if all(map(FLOAT_MAX.__ge__, map(abs, numbers))) else None  # NaN compares false: refused


def _bulk_bool(values: list) -> Optional[list]:
    return values if all(map(bool.__instancecheck__, values)) else None


def _bulk_str(values: list) -> Optional[list]:
    return values if _plain_texts(values) else None


# Lists and objects of plain values (counters, notes, per-CPU figures: most of a big file) are checked and
# converted whole, in C loops; None sends them the slow way, item by item, which names the first bad item.
_BULK: Dict[Any, Callable[[list], Optional[list]]] = {int: _bulk_int, float: _bulk_float, bool: _bulk_bool,
                                                      str: _bulk_str}


def _make_converter(tp: Any) -> Converter:
    """Strict on shapes, tolerant of missing optional fields."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return lambda value: value
    if tp is Problem:
        text = _converter(str)
        return lambda value: Problem.parse(text(value))
    if origin is typing.Union:
        nullable = type(None) in args
        inner = _converter(next(a for a in args if a is not type(None)))
        return lambda value: None if value is None and nullable else inner(value)
    if dataclasses.is_dataclass(tp):
        def build_object(value: Any) -> Any:
            if not isinstance(value, dict):
                raise _Refused(f"expected an object, got {type(value).__name__}")
            kwargs = {}
            fields = _fields_of(tp)
            for name, item in value.items():  # the keys it has: an interface has 38 fields, most often unset
                known = fields.get(name)
                if known is None:
                    continue  # a field this version does not know (a newer guestcheck's): ignored
                try:
                    built = kwargs[name] = known[0](item)
                except _Refused as e:
                    e.where.append(f".{name}")
                    raise
                bounds = known[1]
                if bounds and built is not None and not bounds[0] <= built <= bounds[1]:
                    raise _Refused(f"{built} is out of range ({bounds[0]} to {bounds[1]})", f".{name}")
            return tp(**kwargs)
        return build_object
    if origin in (list, List):
        item, bulk = _converter(args[0]), _BULK.get(args[0])

        def build_list(value: Any) -> Any:
            if not isinstance(value, list):
                raise _Refused("expected a list")
            if bulk is not None:
                built = bulk(value)
                if built is not None:
                    return built
            try:
                return [item(v) for v in value]
            except _Refused:
                raise _located(item, enumerate(value), lambda i: f"[{i}]") from None
        return build_list
    if origin in (dict, Dict):
        key, item, bulk = _converter(args[0]), _converter(args[1]), _BULK.get(args[1])

        def build_dict(value: Any) -> Any:
            if not isinstance(value, dict):
                raise _Refused("expected an object")
            if bulk is not None and args[0] is str and _plain_texts(value):
                built = bulk(list(value.values()))
                if built is not None:
                    return dict(zip(value, built))
            try:
                return {key(k): item(v) for k, v in value.items()}
            except _Refused:
                for k in value:  # a bad key is reported at the object itself
                    try:
                        key(k)
                    except _Refused as e:
                        raise e from None
                raise _located(item, value.items(), lambda k: f".{k}") from None
        return build_dict
    if tp is bool:
        def build_bool(value: Any) -> bool:
            if not isinstance(value, bool):
                raise _Refused("expected true/false")
            return value
        return build_bool
    if tp is int:
        def build_int(value: Any) -> int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise _Refused("expected an integer")
            if not INT_MIN <= value <= INT_MAX:
                raise _Refused("integer out of range (more than 64 bits)")
            return value
        return build_int
    if tp is float:
        def build_float(value: Any) -> float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _Refused("expected a number")
            if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
                raise _Refused("number out of range")
            number = float(value)
            if not (math.isfinite(number) and abs(number) <= FLOAT_MAX):
                raise _Refused("number out of range")
            return number
        return build_float
    if tp is str:
        def build_str(value: Any) -> str:
            if not isinstance(value, str):
                raise _Refused("expected a string")
            if value.isascii():  # no surrogate in it: the common case in one test
                return value if "\\" not in value else text_from_json(value)
            if _NOT_A_BYTE.search(value):
                raise _Refused("not valid Unicode text (a lone surrogate)")
            return text_from_json(value)
        return build_str

    def cannot_read(value: Any) -> Any:
        raise _Refused(f"cannot read type {tp!r}")
    return cannot_read


# --- SoftIRQ health, the network path, bridges and VLANs (defined after Facts: hints resolve lazily) ---


@dataclass
class SoftnetCpu:
    """One CPU's receive softirq work over the sample (/proc/net/softnet_stat and /proc/softirqs)."""

    cpu: int
    processed_per_s: float = 0.0  # packets taken off the backlog / NAPI
    dropped_per_s: float = 0.0  # backlog full (net.core.netdev_max_backlog)
    squeezed_per_s: float = 0.0  # net_rx_action ran out of budget with work left
    dropped: int = 0  # in the sample
    squeezed: int = 0
    dropped_since_boot: int = 0  # the last reading; 32-bit counters, so they may have wrapped
    squeezed_since_boot: int = 0
    net_rx_per_s: Optional[float] = None  # NET_RX softirqs (None when /proc/softirqs lacks this CPU)
    flow_limit: int = 0  # column 10 (flow_limit_count): dropped by net.core.flow_limit_cpu_bitmap, in the sample
    flow_limit_since_boot: int = 0


@dataclass
class NicIrq:
    """One interrupt line of a NIC's queues, as /proc/interrupts names it, and where it may run."""

    irq: str
    name: str  # virtio0-input.0, eth0-TxRx-0, ens3, ...
    per_s: Optional[float] = None  # interrupts per second over the sample
    affinity: Optional[str] = None  # /proc/irq/N/smp_affinity_list: where it may run
    effective: Optional[str] = None  # effective_affinity_list: where it runs (newer kernels)


@dataclass
class NicSteering:
    """How one NIC's receive and transmit work is spread over the CPUs."""

    nic: str
    rx_queues: int = 0
    tx_queues: int = 0
    rps_cpus: Dict[str, str] = field(default_factory=dict)  # "rx-0": hex CPU mask ("0": RPS off)
    xps_cpus: Dict[str, str] = field(default_factory=dict)  # "tx-0": hex CPU mask
    irqs: List[NicIrq] = field(default_factory=list)


@dataclass
class Softirq:
    """Softirq and steering over the sample: per-CPU softnet rows, each NIC's IRQs and RPS."""

    cpus: List[SoftnetCpu] = field(default_factory=list)  # CPUs seen in both readings
    cpus_went_offline: List[int] = field(default_factory=list)  # in the first reading only
    cpus_came_online: List[int] = field(default_factory=list)  # in the second reading only
    row_mapping: str = ""  # "cpu-column" (kernel >= 5.10) or "online-order" (older kernels)
    nics: List[NicSteering] = field(default_factory=list)
    irqbalance: Optional[bool] = None  # a process named irqbalance runs; None when /proc cannot tell
    netdev_budget: Optional[int] = None
    netdev_budget_usecs: Optional[int] = None
    netdev_max_backlog: Optional[int] = None
    notes: List[str] = field(default_factory=list)


@dataclass
class Route:
    """A default route and what carries it."""

    family: str  # ipv4 | ipv6
    dev: Optional[str] = None
    gateway: Optional[str] = None  # None: the route points at the link itself (point-to-point, tun)
    metric: Optional[int] = None
    table: str = "main"
    source: str = "procfs"  # procfs (/proc/net/route, ipv6_route) | netlink (policy routing, via pyroute2)
    networks: List[str] = field(default_factory=list)  # the connected networks on dev, CIDR
    src_address: Optional[str] = None  # the address the kernel picks for traffic on this route
    mtu: Optional[int] = None  # the route's MTU as the kernel applies it (route metric, else the link's)
    dev_mtu: Optional[int] = None
    gateway_mac: Optional[str] = None  # the gateway's link-layer address in the neighbour table, once resolved
    # the gateway's neighbour state on dev, as `ip neigh` names it (reachable, stale, failed, ...); None when it
    # has no entry (no traffic tried it lately) or the table was not read (a saved or fake tree)
    gateway_state: Optional[str] = None


@dataclass
class Path:
    """The way out: default routes, their notes, and the name servers."""

    routes: List[Route] = field(default_factory=list)  # the default route of each family that has one
    notes: List[str] = field(default_factory=list)
    nameservers: List[str] = field(default_factory=list)  # resolv.conf (systemd-resolved's upstreams behind its stub)

    def route(self, family: str) -> Optional[Route]:
        return next((r for r in self.routes if r.family == family), None)


@dataclass
class BridgePort:
    """One port of a bridge and its STP state."""

    name: str
    state: Optional[str] = None  # disabled | listening | learning | forwarding | blocking


@dataclass
class Bridge:
    """A Linux bridge (hosts and nested hypervisors run guestcheck too)."""

    name: str
    stp_state: Optional[int] = None  # 0 off, 1 kernel STP, 2 user-space STP (mstpd)
    forward_delay_s: Optional[float] = None  # sysfs gives USER_HZ ticks (centiseconds)
    ports: List[BridgePort] = field(default_factory=list)


@dataclass
class Vlan:
    """An 802.1Q VLAN interface."""

    name: str
    vlan_id: Optional[int] = None
    lower: Optional[str] = None  # the device it tags frames on
    source: str = "procfs"  # procfs (/proc/net/vlan/config) | sysfs (id unknown)


# --- Connection tracking and tunnels (issue 11) ---


@dataclass
class Conntrack:
    """The netfilter connection tracking table: how full it is, and what it dropped.

    `since_boot` and `in_sample` sum the per-CPU rows of /proc/net/stat/nf_conntrack (32-bit counters, so
    since-boot figures may have wrapped); only the judged columns are kept (drop, early_drop, insert_failed).
    """

    loaded: bool = False  # /proc/sys/net/netfilter/nf_conntrack_max exists
    count: Optional[int] = None  # nf_conntrack_count: entries now (per network namespace)
    max: Optional[int] = None  # nf_conntrack_max (the host's, read-only, in a child namespace)
    buckets: Optional[int] = None  # nf_conntrack_buckets: the hash table's size
    columns: List[str] = field(default_factory=list)  # the stat file's header, as this kernel names it
    since_boot: Dict[str, int] = field(default_factory=dict)  # "drop": n, summed over CPUs (last reading)
    in_sample: Dict[str, int] = field(default_factory=dict)  # the rise over the sample, summed over CPUs
    per_cpu_in_sample: Dict[str, Dict[str, int]] = field(default_factory=dict)  # "cpu1": {"drop": 3}, rises only
    notes: List[str] = field(default_factory=list)


@dataclass
class Congestion:
    """TCP's congestion control: what new connections use (per network namespace since 4.15), what this kernel
    offers (a control that is not built in appears once its module is loaded), and which of those a network
    namespace other than the host's may choose (the host's default and those its admin allowed)."""

    control: Optional[str] = None  # net.ipv4.tcp_congestion_control; None when it could not be read
    available: List[str] = field(default_factory=list)  # net.ipv4.tcp_available_congestion_control
    allowed: List[str] = field(default_factory=list)  # net.ipv4.tcp_allowed_congestion_control


@dataclass
class Tunnel:
    """An overlay or tunnel device, what carries it, and what its encapsulation costs."""

    name: str
    kind: str  # vxlan | geneve | gre | gretap | ip6gre | ip6gretap | ipip | sit | ip6tnl | wireguard
    mtu: Optional[int] = None
    admin_up: Optional[bool] = None
    family: Optional[str] = None  # ipv4 | ipv6: the outer header's; None when nothing says
    remote: Optional[str] = None
    local: Optional[str] = None
    lower: Optional[str] = None  # the device the encapsulated packets leave by
    lower_mtu: Optional[int] = None  # its MTU (or the route's, where the route sets one)
    lower_source: str = ""  # link (the tunnel's own dev/link) | sysfs (lower_*) | route (the route to remote)
    route_mtu: Optional[int] = None  # the MTU a route toward the remote sets, where it is below the device's
    overhead: Optional[int] = None  # bytes the encapsulation adds to each inner packet
    overhead_detail: str = ""  # "20 IPv4 + 8 UDP + 8 VXLAN + 14 Ethernet"
    source: str = "sysfs"  # sysfs | netlink
    notes: List[str] = field(default_factory=list)


# --- The fast path and other agents (issue 11, items 3 and 7) ---


@dataclass
class PciFunction:
    """A PCI function of the network class (0x02xxxx) from /sys/bus/pci/devices, driver or not: a device no
    driver took never shows up in /sys/class/net, so the NIC list alone cannot tell it is there."""

    address: str  # 0000:00:05.0
    class_code: str  # "0x020000" as sysfs gives it
    pci_id: Optional[str] = None  # "1414:00ba"
    pci_subsystem_id: Optional[str] = None
    driver: Optional[str] = None  # the bound driver; None: nothing serves the device
    has_physfn: bool = False  # an SR-IOV virtual function of a local physical function
    interfaces: List[str] = field(default_factory=list)  # its net/ entries: the interfaces it became


@dataclass
class OtherAgents:
    """Other software that manages what guestcheck judges or tunes, so a finding can name it and `tune` can
    warn (or refuse) before they fight. Raw observations; which agent owns what is decided in the checks."""

    irqbalance: Optional[bool] = None  # a process named irqbalance runs; None when /proc cannot tell
    tuned_running: Optional[bool] = None  # a process named tuned runs
    tuned_profiles: List[str] = field(default_factory=list)  # /etc/tuned/active_profile (several: merged)
    tuned_sysctl: Dict[str, str] = field(default_factory=dict)  # key -> value its profile sets (includes resolved)
    tuned_sysctl_files: Dict[str, str] = field(default_factory=dict)  # key -> the tuned.conf that set it last
    tuned_sections: List[str] = field(default_factory=list)  # the plugins the profile uses: net, irqbalance, ...
    google_multiqueue: Optional[str] = None  # the google_set_multiqueue script, where installed
    google_agents: List[str] = field(default_factory=list)  # running Google guest agent processes
    networkmanager_running: Optional[bool] = None
    networkmanager_managed: Dict[str, bool] = field(default_factory=dict)  # iface -> managed (run state)
    cloud_init_mtu: Dict[str, int] = field(default_factory=dict)  # iface (or its netplan id) -> MTU cloud-init writes
    cloud_init_file: str = ""  # the file that said so
    notes: List[str] = field(default_factory=list)


# --- Drop and limit counters of each NIC, sampled (issue 11) ---


@dataclass
class CounterRate:
    """One cumulative counter: its value at the end of the sample and how far it rose during it."""

    total: int = 0  # since the interface appeared (boot, for a NIC), at the end of the sample
    rise: Optional[int] = None  # during the sample; None when not sampled (--sample 0) or the counter was reset
    per_s: Optional[float] = None  # rise / seconds


@dataclass
class NicCounters:
    """A NIC's drop and error counters (sysfs statistics) and the driver counters guestcheck knows by name
    (guestcheck/drivercounters.py), read at the start and the end of the sample."""

    nic: str
    sampled: bool = False  # two readings; False with --sample 0 (one reading: totals only)
    seconds: float = 0.0  # between this NIC's two readings
    interface: Dict[str, CounterRate] = field(default_factory=dict)  # rx_dropped, rx_missed_errors, ...
    driver: Dict[str, CounterRate] = field(default_factory=dict)  # by the driver's name, as `ethtool -S` prints
    gauges: Dict[str, int] = field(default_factory=dict)  # conntrack_allowance_available: a level, not a count
    notes: List[str] = field(default_factory=list)  # what could not be read, and why


# --- The loss ledger: qdiscs and the IP, UDP and TCP counters, sampled (issue 21) ---


@dataclass
class Qdisc:
    """A qdisc, a class or a police action on one device (what `tc -s qdisc`, `tc -s class` show), with its
    counters over the sample. drops, overlimits and requeues are the kernel's 32-bit counters."""

    device: str
    kind: str  # tbf, htb, fq_codel, pfifo_fast, ingress, police, ...
    handle: str  # "8001:", a class's "1:10"; a police action's index
    parent: str  # root | ingress | "1:" (the qdisc or class it hangs from)
    is_class: bool = False
    rate_bytes_per_s: Optional[int] = None  # a shaper's rate: tbf rate, htb ceil, hfsc upper limit, cake, police
    limit: Optional[int] = None  # the queue's limit, in limit_unit (pfifo_fast: the device's txqueuelen)
    limit_unit: str = ""  # packets | bytes
    burst_bytes: Optional[int] = None  # tbf's bucket, as `tc ... burst` took it
    counters: Dict[str, CounterRate] = field(default_factory=dict)  # packets, bytes, drops, overlimits, requeues
    backlog_bytes: int = 0  # queued at the end of the sample
    backlog_packets: int = 0
    backlog_bytes_peak: int = 0  # the larger of the two readings
    ingress_of: List[str] = field(default_factory=list)  # an ifb's: the devices whose ingress is redirected here


@dataclass
class Listener:
    """A listening TCP socket whose accept queue held connections (sock_diag: rqueue against the backlog)."""

    family: str  # ipv4 | ipv6
    address: str
    port: int
    queued: int  # connections waiting for accept(): the larger of the two readings
    backlog: int  # the queue's limit: listen()'s backlog, capped at net.core.somaxconn


@dataclass
class Ledger:
    """Where packets are dropped or queued between the NIC and the socket, in this network namespace: every
    qdisc and class with its counters, the IP/UDP/TCP counters of /proc/net/snmp, netstat and snmp6 (by their
    nstat names), listening sockets with a queue, and the settings the findings name. Counters are read at both
    ends of the sample, like the softnet counters; NIC, softnet and conntrack counters stay in their own areas."""

    netns: str = ""  # "net:[4026531840]": whose counters these are
    netns_is_initial: Optional[bool] = None  # the host's own namespace (None when it cannot be told)
    sampled: bool = False  # two readings; False with --sample 0 (totals only)
    seconds: float = 0.0
    qdiscs: List[Qdisc] = field(default_factory=list)
    counters: Dict[str, CounterRate] = field(default_factory=dict)  # "UdpRcvbufErrors", "TcpExtListenOverflows"...
    listeners: List[Listener] = field(default_factory=list)  # only those with connections queued
    listeners_total: Optional[int] = None  # listening sockets seen; None when sock_diag could not be read
    settings: Dict[str, str] = field(default_factory=dict)  # sysctls the findings name: net.core.rmem_max ...
    qdisc_kinds: Dict[str, bool] = field(default_factory=dict)  # "fq_codel": whether this kernel has it
    notes: List[str] = field(default_factory=list)


# --- The kernel's drop reasons, sampled from the skb:kfree_skb tracepoint with doctor --drops (issue 22) ---

NOISE_REASONS = ("NOT_SPECIFIED",)  # the kernel's "no reason given": kept in the data, never a finding by itself


@dataclass
class DropRow:
    """Packets freed with one reason, of one protocol, at one kernel function, during the window."""

    reason: str  # the kernel's name, as printed ("NO_SOCKET"); an unknown value as printed ("0x10002")
    protocol: str  # the ethertype: "ipv4", "ipv6", "arp" or "other 0x88cc"
    location: str  # the function that freed it, offset dropped ("__udp4_lib_rcv", "nft_do_chain [nf_tables]");
    # "?" when the kernel prints the location as a hashed pointer (before %pS, e.g. 6.1)
    count: int
    known: bool = True  # the reason is in this kernel's own list (the tracepoint's format file)
    noise: bool = False  # NOT_SPECIFIED: counted, never reported on its own


@dataclass
class DropReasons:
    """The skb:kfree_skb tracepoint sampled over a window, in a trace instance of our own.

    `machine_wide` is always true: the tracepoint sees every network namespace of the kernel, so these drops are
    not this namespace's alone."""

    available: bool = False
    reason_unavailable: str = ""  # one line, when not available ("kernel 5.10 is older than 5.17: ...")
    seconds: float = 0.0
    machine_wide: bool = True
    capped: bool = False  # more events than cap_per_second in some second: the excess is in events_not_counted
    cap_per_second: int = 0
    events_seen: int = 0  # event lines read from the instance's trace_pipe
    events_counted: int = 0  # of those, parsed into rows
    events_not_counted: int = 0  # read past the per-second cap, not parsed
    events_lost: int = 0  # the kernel's own "[LOST N EVENTS]": the ring buffer overflowed before we read
    lines_malformed: int = 0  # lines that were not a kfree_skb event of a known shape (too long, cut, unknown)
    location_symbolic: bool = True  # false where the kernel prints `location` as a hashed pointer (%p)
    reasons_known: int = 0  # how many reasons this kernel's format file names
    rows: List[DropRow] = field(default_factory=list)  # by count, largest first

    def by_reason(self) -> Dict[str, int]:
        """reason -> packets, over all protocols and locations (for a ledger row or a metric)."""
        out: Dict[str, int] = {}
        for row in self.rows:
            out[row.reason] = out.get(row.reason, 0) + row.count
        return out


# --- Live TCP connections over the window, from tcp_info and SKMEMINFO (issue 23) ---


@dataclass
class FlowReading:
    """One TCP connection over the window (sock_diag, two readings): the kernel's raw figures, nothing judged.
    Counts are rises over `seconds` (since the connection began when not sampled); times are microseconds;
    levels (rtt, cwnd, buffers, notsent) are the second reading's. judge/flows.py gives the verdict."""

    family: str  # ipv4 | ipv6 (an IPv4 peer of an IPv6 socket: ::ffff:a.b.c.d)
    local: str
    local_port: int
    remote: str
    remote_port: int
    state: int = 1  # TCP_ESTABLISHED ...
    cong: str = ""  # the congestion control (cubic, bbr, ...)
    seconds: float = 0.0  # the window; 0 when not sampled (counts since the connection began)
    bytes_acked: int = 0  # sent and acknowledged during the window (tcpi_bytes_acked)
    bytes_received: int = 0  # received during the window (tcpi_bytes_received)
    bytes_sent: Optional[int] = None  # sent, retransmissions included (tcpi_bytes_sent, 4.19)
    bytes_retrans: Optional[int] = None  # retransmitted (tcpi_bytes_retrans, 4.19)
    total_retrans: int = 0  # segments retransmitted (tcpi_total_retrans)
    busy_us: Optional[int] = None  # tcpi_busy_time: time with data in flight (4.10)
    rwnd_limited_us: Optional[int] = None  # of it, limited by the peer's receive window
    sndbuf_limited_us: Optional[int] = None  # of it, limited by this socket's send buffer
    rtt_us: Optional[int] = None
    rttvar_us: Optional[int] = None
    min_rtt_us: Optional[int] = None
    rcv_rtt_us: Optional[int] = None  # the receiver's own RTT estimate (its tcpi_rtt is near 0)
    rcv_space: Optional[int] = None  # bytes the receiver reckons it needs per RTT (its autotuning)
    snd_cwnd: Optional[int] = None  # segments
    snd_mss: Optional[int] = None
    snd_wnd: Optional[int] = None  # the peer's advertised window, bytes (5.4)
    delivery_rate: Optional[int] = None  # bytes/s, the kernel's last sample
    app_limited: Optional[bool] = None  # that sample was taken with less to send than the window allowed
    notsent_bytes: Optional[int] = None  # written by the application, not yet sent
    rqueue: int = 0  # received, not yet read by the application
    rmem_alloc: Optional[int] = None  # SKMEMINFO: the receive queue's memory ...
    rcvbuf: Optional[int] = None  # ... against its limit
    wmem_queued: Optional[int] = None  # queued for sending (sent-unacked and not yet sent) ...
    sndbuf: Optional[int] = None  # ... against its limit
    wmem_queued_peak: Optional[int] = None  # the larger of the two readings
    sk_drops: Optional[int] = None  # SKMEMINFO drops over the window


@dataclass
class Flows:
    """The TCP connections of this network namespace over the window: those that moved data, busiest first."""

    available: bool = False
    reason_unavailable: str = ""  # one line, when sock_diag could not be read
    sampled: bool = False  # two readings; False with --sample 0 (counts since each connection began)
    seconds: float = 0.0
    connections: int = 0  # connections seen (every state with a full socket)
    flows: List[FlowReading] = field(default_factory=list)  # those that moved data, by bytes, largest first
    capped: int = 0  # more flows moved data than are kept: how many were left out (the smallest)
    notes: List[str] = field(default_factory=list)
