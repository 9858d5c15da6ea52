"""CLI commands for demo (filled in by its issue)."""
from __future__ import annotations

COMMANDS: list = []
