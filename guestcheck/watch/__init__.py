"""`guestcheck watch`: a live view of the network's counters, one frame per interval.

One job per module: links (read per-interface and per-queue counters), frame (rates between two readings, and
what the doctor's checks would flag in them), events (NIC add/remove from udev or rtnetlink), view (a screen
for a terminal, one line per interval for a pipe), cli (the click command and the loop).
"""
