"""Renderers only format: human text, JSON, Prometheus textfile."""
