"""`guestcheck flows`: what holds each live TCP connection back (collect/flows.py reads, judge/flows.py judges,
render/flows.py shows)."""
