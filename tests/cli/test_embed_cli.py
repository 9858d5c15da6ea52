"""`padlens embed`: a .npy of sentence embeddings, or `Error:` and exit 2."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def honest(zoo, tmp_path_factory):
    from tests.inspector.audit import toys

    return toys.make("honest", tmp_path_factory.mktemp("cli-embed") / "honest", zoo("padlens"))


def test_embed_writes_one_normalized_row_per_text(cli_run, honest, tmp_path):
    texts = tmp_path / "t.txt"
    texts.write_text("the cat sat\na dog\n\nthis is a sample sentence\n")
    code, out, err = cli_run("embed", str(honest), "--texts", str(texts), "-o", str(tmp_path / "e.npy"),
                         "--pooling", "cls", "--normalize", "--batch-size", "2")
    assert code == 0, err
    e = np.load(tmp_path / "e.npy")
    assert e.shape[0] == 3 and np.allclose(np.linalg.norm(e, axis=1), 1)
    assert "3 x 8" in out and "cls pooling" in out


def test_missing_texts_file_exits_2(cli_run, honest, tmp_path):
    code, _, err = cli_run("embed", str(honest), "--texts", str(tmp_path / "no.txt"), "-o", str(tmp_path / "e.npy"))
    assert code == 2 and err.startswith("Error:") and not (tmp_path / "e.npy").exists()


def test_bad_pooling_exits_2(cli_run, honest, tmp_path):
    code, _, err = cli_run("embed", str(honest), "--texts", "x", "-o", "e.npy", "--pooling", "sum")
    assert code == 2 and err.startswith("Error:")


def test_help_has_examples(cli_run):
    code, out, _ = cli_run("embed", "--help")
    assert code == 0 and "Examples:" in out and "--pooling" in out
