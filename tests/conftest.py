"""Shared pytest setup: markers are declared in pyproject.toml."""
