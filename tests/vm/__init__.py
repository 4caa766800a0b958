"""QEMU test-guest harness (see guest.py); a package so its test modules can import it."""
