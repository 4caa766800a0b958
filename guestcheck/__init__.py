"""guestcheck: why is this VM's network slow, and what can be fixed from inside."""

__version__ = "0.1.0"
