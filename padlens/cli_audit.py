"""CLI commands for audit (filled in by its issue)."""
from __future__ import annotations

COMMANDS: list = []
