"""`python -m padlens` runs the command-line tool."""
from __future__ import annotations

from padlens.cli import main

if __name__ == "__main__":
    main()
