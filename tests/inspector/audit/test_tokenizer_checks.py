"""Audit checks on the tokenizer settings a folder ships (tokenizer.json padding/truncation, tokenizer_config.json)."""
from __future__ import annotations

import json
import shutil

import pytest

TEXTS = ("--text", "a short text", "--text", "the cat sat on the mat")
SHIPPED = ("shipped_padding_length", "shipped_truncation_length", "shipped_padding_side")


def audit(cli_run, folder, tmp_path) -> dict:
    code, _, err = cli_run("audit", folder, *TEXTS, "--json", tmp_path / "a.json")
    assert code in (0, 1), err
    checks = json.loads((tmp_path / "a.json").read_text())["checks"]
    return {c["name"]: c for c in checks if c["name"] in SHIPPED}


def shipped(src, tmp_path, padding=None, truncation=None, config=None):
    folder = tmp_path / "model"
    shutil.copytree(src, folder)
    raw = json.loads((folder / "tokenizer.json").read_text())
    raw["padding"], raw["truncation"] = padding, truncation
    (folder / "tokenizer.json").write_text(json.dumps(raw))
    if config:
        doc = json.loads((folder / "tokenizer_config.json").read_text())
        (folder / "tokenizer_config.json").write_text(json.dumps({**doc, **config}))
    return folder


def padding_block(fixed: int | None, side: str = "Right") -> dict:
    return {"strategy": {"Fixed": fixed} if fixed else "BatchLongest", "direction": side, "pad_to_multiple_of": None,
            "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"}


def truncation_block(length: int) -> dict:
    return {"direction": "Right", "max_length": length, "strategy": "LongestFirst", "stride": 0}


def test_a_fixed_padding_shorter_than_the_truncation_and_a_truncation_past_the_table_fail_with_their_numbers(
        zoo, tmp_path, cli_run):
    folder = shipped(zoo("padlens"), tmp_path, padding_block(16), truncation_block(512))
    checks = audit(cli_run, folder, tmp_path)
    length, cut = checks["shipped_padding_length"], checks["shipped_truncation_length"]
    assert not length["passed"] and (length["value"], length["threshold"]) == (16, 512)
    assert "texts of 17 to 512 tokens" in length["detail"]
    assert not cut["passed"] and (cut["value"], cut["threshold"]) == (512, 64)
    assert length["severity"] == cut["severity"] == "warning"


def test_settings_that_fit_pass(zoo, tmp_path, cli_run):
    checks = audit(cli_run, shipped(zoo("padlens"), tmp_path, padding_block(64), truncation_block(64)), tmp_path)
    assert checks["shipped_padding_length"]["passed"] and checks["shipped_truncation_length"]["passed"]


def test_a_folder_without_such_settings_makes_them_not_applicable_with_the_reason(zoo, tmp_path, cli_run):
    checks = audit(cli_run, shipped(zoo("padlens"), tmp_path), tmp_path)
    for name in ("shipped_padding_length", "shipped_padding_side"):
        assert checks[name]["applicable"] is False and checks[name]["passed"]
    assert "no padding block" in checks["shipped_padding_length"]["detail"]
    # without a truncation block, tokenizer_config.json's model_max_length (64) is the shipped length
    cut = checks["shipped_truncation_length"]
    assert cut["applicable"] and cut["passed"] and "model_max_length 64" in cut["detail"]


@pytest.mark.parametrize("side, passed", [("left", False), ("right", True)])
def test_the_shipped_padding_side_of_a_last_token_model_is_read_with_the_naive_index(zoo, tmp_path, cli_run,
                                                                                     side, passed):
    folder = zoo("qwen3-kv-community")
    copy = shipped(folder, tmp_path, config={"padding_side": side})
    check = audit(cli_run, copy / "onnx" / "model.onnx", tmp_path)["shipped_padding_side"]
    assert check["applicable"] and check["passed"] is passed
    assert ("is not the last real token in 2 of 2 padded texts" in check["detail"]) is not passed
