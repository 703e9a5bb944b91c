"""The `tenantgate` command line."""

from tenantgate.cli.main import main

__all__ = ["main"]
