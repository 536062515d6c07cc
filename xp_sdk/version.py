"""The package version, importable without importing the whole SDK."""

__version__ = "0.1.0"
