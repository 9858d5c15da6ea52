"""A decoder embedder whose pad id has a zero embedding row (nn.Embedding(padding_idx=...) as
initialised), padded on the left: every pad state is exactly zero at every layer. padlens reports
it as a finding (pad_norm 0, the reason said once), never as missing pads or failed sequences."""
from __future__ import annotations

import json

import pytest

ZERO_NOTE = "pad states are exactly zero at layers"


@pytest.fixture(scope="module")
def zero_pad(zoo):
    return zoo("qwen3-zero-pad")


def _inspect(cli_run, folder, tmp_path, *extra) -> dict:
    out = tmp_path / "r.json"
    code, _, err = cli_run("inspect", folder / "model.onnx", "--tokenizer", folder, "--max-length", "24",
                           "--json", out, *extra)
    assert code == 0, err
    return json.loads(out.read_text())


def test_left_padded_zero_pads_report_pad_norm_zero_with_real_metrics_and_one_note(zero_pad, cli_run, tmp_path):
    result = _inspect(cli_run, zero_pad, tmp_path)
    run = result["runs"][0]
    assert result["padding_side"] == "left" and run["n_pad_tokens"] > 0
    for layer in run["layers"]:
        assert layer["pad_norm"] == 0.0 and layer["real_norm"] > 0
        assert layer["failed"] == 0 and layer["zero_pads"] == layer["pads"] > 0
        assert layer["pad_pad_cos"] is None and layer["pad_real_cos"] is None  # no direction: undefined
    assert run["pooling"]["masked_unmasked_cos"] is not None
    notes = [w for w in run["warnings"] if ZERO_NOTE in w]
    assert notes == [f"{ZERO_NOTE} 0-{len(run['layers']) - 1}: norm 0 (in pad_norm), no direction "
                     "(left out of the pad cosines)"]
    assert not any("no text has pads" in w or "were left out" in w for w in run["warnings"])


def test_right_padded_the_same_model_has_zero_pads_at_the_embeddings_only(zero_pad, cli_run, tmp_path):
    run = _inspect(cli_run, zero_pad, tmp_path, "--padding-side", "right")["runs"][0]
    first, *rest = run["layers"]
    assert first["zero_pads"] == first["pads"] > 0 and first["pad_norm"] == 0.0
    assert all(layer["zero_pads"] == 0 and layer["pad_norm"] > 0 and layer["pad_pad_cos"] is not None
               for layer in rest)
    assert [w for w in run["warnings"] if ZERO_NOTE in w] == [
        f"{ZERO_NOTE} 0: norm 0 (in pad_norm), no direction (left out of the pad cosines)"]


def test_audit_says_the_naive_last_token_index_lands_on_a_zero_pad(zero_pad, cli_run, tmp_path):
    out = tmp_path / "a.json"
    code, _, err = cli_run("audit", zero_pad / "model.onnx", "--tokenizer", zero_pad, "--max-length", "24",
                           "--padding-side", "left", "--json", out)
    assert code in (0, 1), err
    check = next(c for c in json.loads(out.read_text())["checks"] if c["name"] == "last_token_pooling")
    assert check["applicable"] and check["passed"] is False
    assert "left padding" in check["detail"] and "the naive index lands on a pad in" in check["detail"]
    assert "exactly zero pad states" in check["detail"]
