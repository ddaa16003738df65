"""The PAGI reference server."""

__version__ = "0.1.0"
