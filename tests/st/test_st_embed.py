"""`padlens embed` on sentence-transformers folders equals `SentenceTransformer(folder).encode`."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.st.conftest import min_row_cosine, reference

#: padlens embed vs sentence-transformers' encode: 1 - min row cosine at most this
COSINE_GAP = 1e-5
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _embed(cli_run, folder: Path, out: Path, *options) -> tuple[np.ndarray, str]:
    code, stdout, err = cli_run("embed", folder, "--texts", folder / "texts.txt", "-o", out, *options)
    assert code == 0, err
    return np.load(out), stdout


@pytest.mark.parametrize("kind, summary", [
    ("encoder", "encoder/onnx/model, mean pooling from"),     # 5.x folder, mean + Normalize
    ("decoder", "decoder/onnx/model, lasttoken pooling from"),  # Qwen3, last token, left-padding tokenizer
    ("legacy", "legacy/model, mean_sqrt_len_tokens pooling from"),  # old type names, ONNX at the top
])
def test_embed_on_a_folder_equals_sentence_transformers_encode(cli_run, st_models, tmp_path, kind, summary):
    folder = st_models[kind]
    got, stdout = _embed(cli_run, folder, tmp_path / "e.npy")
    want = reference(folder)
    assert got.shape == want.shape
    assert 1 - min_row_cosine(got, want) <= COSINE_GAP, (kind, 1 - min_row_cosine(got, want))
    np.testing.assert_allclose(got, want, atol=1e-5)  # the norms too (Normalize, or none)
    assert summary in stdout and "modules.json" in stdout


def test_the_folder_says_how_to_pool_normalize_and_truncate(cli_run, st_models, tmp_path):
    _, encoder = _embed(cli_run, st_models["encoder"], tmp_path / "e.npy")
    _, legacy = _embed(cli_run, st_models["legacy"], tmp_path / "l.npy")
    assert "normalized, max length 48" in encoder           # Normalize; 5.x: tokenizer_config.json
    assert "not normalized, max length 40" in legacy         # no Normalize; sentence_bert_config.json


def test_the_encoder_equals_sentence_transformers_own_onnx_backend(cli_run, st_models, tmp_path):
    folder = st_models["encoder"]
    got, _ = _embed(cli_run, folder, tmp_path / "e.npy")
    assert 1 - min_row_cosine(got, reference(folder, "onnx_backend")) <= COSINE_GAP


def test_a_file_of_the_folder_can_be_chosen_and_finds_the_tokenizer_above_it(cli_run, st_models, tmp_path):
    folder = st_models["encoder"]
    code, stdout, err = cli_run("embed", folder / "onnx" / "model_O3.onnx", "--texts", folder / "texts.txt",
                                "-o", tmp_path / "o3.npy")
    assert code == 0, err
    assert "encoder/onnx/model_O3, mean pooling" in stdout and "max length 48" in stdout
    assert 1 - min_row_cosine(np.load(tmp_path / "o3.npy"), reference(folder)) <= COSINE_GAP


@pytest.mark.parametrize("options, ref, said", [
    (["--pooling", "mean"], "auto", "mean pooling from option, normalized ("),    # Normalize still read
    (["--no-normalize"], "mean", "modules.json, not normalized (option)"),        # Pooling still read
    (["--pooling", "cls"], "cls", "cls pooling from option, normalized"),
    (["--pooling", "cls", "--normalize"], "cls", "cls pooling from option, normalized, max"),
])
def test_pooling_and_normalize_override_the_folder_independently(cli_run, st_models, tmp_path, options, ref, said):
    folder = st_models["encoder"]
    got, stdout = _embed(cli_run, folder, tmp_path / "e.npy", *options)
    want = reference(folder, ref)
    assert said in stdout
    assert 1 - min_row_cosine(got, want) <= COSINE_GAP
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), np.linalg.norm(want, axis=1), rtol=1e-5)


def test_no_normalize_really_leaves_rows_unnormalized(cli_run, st_models, tmp_path):
    got, stdout = _embed(cli_run, st_models["encoder"], tmp_path / "e.npy", "--no-normalize")
    assert "not normalized" in stdout
    assert not np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-3)


def test_embed_on_a_folder_never_imports_torch(st_models, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        f"import sys\nsys.path.insert(0, {str(FIXTURES)!r})\nimport noheavy\nnoheavy.install_from_env()\n")
    log, folder = tmp_path / "blocked.log", st_models["decoder"]
    env = {**os.environ, "PYTHONPATH": str(site), "PADLENS_BLOCK_LOG": str(log)}
    proc = subprocess.run([sys.executable, "-m", "padlens", "embed", str(folder), "--texts",
                           str(folder / "texts.txt"), "-o", str(tmp_path / "e.npy")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = log.read_text().splitlines()
    assert lines[0] == "installed"
    assert not any(line.startswith(("torch", "optimum", "sentence_transformers")) for line in lines[1:]), lines
    assert 1 - min_row_cosine(np.load(tmp_path / "e.npy"), reference(folder)) <= COSINE_GAP


def test_the_decoder_padded_on_the_left_as_its_tokenizer_says_still_equals_encode(st_models):
    """Left padding (sentence-transformers' own, from tokenizer_config.json) in one batch: position
    ids from the mask and the last real token give encode()'s rows; sum(mask) - 1 does not."""
    from padlens.inspector.inputs.resolve import resolve_models
    from padlens.inspector.inputs.texts import read_texts
    from padlens.inspector.runtime.embed_model import EmbedModel, pick_ref
    from padlens.inspector.stats.pooling import l2_normalize

    folder = st_models["decoder"]
    model = EmbedModel(pick_ref(resolve_models([folder])))
    assert model.tokenizer.padding_side == "left"
    batch = model.tokenizer.encode(read_texts(None, folder / "texts.txt"), max_length=64, padding="longest",
                                   side="left")
    assert (batch.attention_mask[:, 0] == 0).any()  # some rows really are padded on the left
    got = model.embed(batch, "lasttoken", True)
    assert 1 - min_row_cosine(got, reference(folder)) <= COSINE_GAP
    states = model.run(batch)
    naive = l2_normalize(states[np.arange(len(states)), batch.attention_mask.sum(1) - 1].astype(np.float64))
    padded = batch.attention_mask[:, 0] == 0
    assert np.abs(naive[padded] - reference(folder)[padded]).max(axis=1).min() > 0.01  # a pad's state, not the text's
