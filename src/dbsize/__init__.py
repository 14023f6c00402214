"""dbsize: database-capacity statistics service."""

__version__ = "0.1.0"
