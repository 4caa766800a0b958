"""The drop-reason tracer: the kernel's own reason for each dropped packet, read from the skb:kfree_skb
tracepoint through tracefs (no compiler, no BPF), in a trace instance of our own.

    from guestcheck.trace.session import DropTrace
    with DropTrace(roots) as trace:
        ...  # the window (doctor's counter sample)
    drops = trace.result()  # guestcheck.facts.DropReasons, available=False with a one-line reason

This package imports only neutral helpers (tests/unit/test_architecture.py): doctor, watch and the renderers use
it; it uses none of them. Its one writer is guestcheck.trace.tracefs.
"""
