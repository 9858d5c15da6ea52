"""CLI tests run `padlens` in-process with the `cli_run` fixture of tests/conftest.py."""
