"""`guestcheck selftest`: measure the path to a peer with the real iperf3 and say how far below line rate it is.

One job per module: rate (parse and print rates and durations), peer (validate and resolve the peer),
iperf3 (run the binary and read its JSON), probe (a TCP connect round-trip sample), route (which NIC
carries the path), verdict (pure: ratio -> near / below / far below, findings -> likely causes),
session (the sequence of runs), document (the guestcheck.selftest/1 JSON, save and compare),
render (the human report), serve (the peer side), cli (the click command). errors holds the exit codes.
The latency phase (issue 24): rttprobe (probes on their own port: a closed TCP port's RST, or the echo), echo
(`--serve`'s capped UDP echo), backlog (every qdisc's backlog beside each run), measure (the phase's sequence),
latency (pure: percentiles, added latency, verdict, causes).
"""
