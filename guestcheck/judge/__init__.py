"""Judging steps that turn raw facts into verdicts, pure and re-run on every judging.

Collectors record what the machine said; these modules decide what it means, so `doctor --facts FILE`
judges a facts file written by an older guestcheck with today's tables.
"""
