#!/bin/sh
# What an admin runs by hand for the facts `guestcheck doctor` gathers: the baseline for bench/doctor_startup.py.
# One command per kind of fact doctor reads; when doctor gains facts, this gains the tools for them.
systemd-detect-virt || true
systemd-detect-virt --container || true
cat /etc/os-release
for dev in /sys/class/net/*; do
    name=${dev##*/}
    ethtool -i "$name" || true     # driver
    ethtool -k "$name" || true     # offloads
    ethtool -l "$name" || true     # channels
    ethtool -g "$name" || true     # rings
    ethtool -S "$name" || true     # driver statistics
    udevadm info "$dev" || true    # hwdb model and vendor, predictable names
    tc -s class show dev "$name" || true   # shaping classes (htb), with drops and overlimits: per device only
done
ip -d link show                    # tunnels, bridges, VLANs
tc -s qdisc show                   # qdiscs on every interface (ifb too): drops, overlimits, backlog
nstat -asz                         # IP, UDP and TCP counters (-s: nstat's history file is left alone)
ip route get 192.0.2.1 || true     # the way out (a documentation address: nothing is sent)
cat /proc/sys/net/netfilter/nf_conntrack_count /proc/sys/net/netfilter/nf_conntrack_max 2>/dev/null || true
cat /proc/net/softnet_stat /proc/softirqs /proc/interrupts /proc/meminfo /proc/stat >/dev/null
sysctl -a
