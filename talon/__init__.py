"""Talon: a declarative, file-based scheduler for periodic batch work."""

__version__ = "0.1.0"
