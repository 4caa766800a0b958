"""Collectors: the only code that reads the machine. Each degrades to "unknown", never crashes."""
