"""`padlens probe`: the JSON contract, the HTML page, the table, and one Error line on bad input."""
from __future__ import annotations

import json

import pytest

PROBE_KEYS = {"target", "states", "metric", "score", "control", "baseline", "selectivity", "ci",
              "n_train", "n_test"}


@pytest.fixture(scope="module")
def tiny(zoo):
    return zoo("padlens")


@pytest.mark.slow  # probe fits, end to end
def test_json_follows_the_contract_and_the_html_page_is_written(cli, tiny, short_texts, tmp_path):
    out, page = tmp_path / "p.json", tmp_path / "p.html"
    code, stdout, err = cli("-q", "probe", tiny, "--texts", short_texts, "--labels", "topic",
                            "--max-length", 24, "--json", out, "--html", page)
    assert code == 0, err
    doc = json.loads(out.read_text())
    run = doc["runs"][0]
    assert {"model", "precision", "provider", "texts", "layers"} <= set(run)
    assert run["texts"] == 120 and len(run["layers"]) == 3  # embeddings + 2 blocks
    probes = [p for layer in run["layers"] for p in layer["probes"]]
    assert all(PROBE_KEYS <= set(p) for p in probes)
    assert {p["target"] for p in probes} == {"length", "distance", "content", "first_token", "label:topic"}
    assert {p["states"] for p in probes} == {"pad", "real"}
    assert {(p["target"], p["metric"]) for p in probes} >= {("length", "r2"), ("content", "cosine"),
                                                            ("first_token", "accuracy"),
                                                            ("label:topic", "accuracy")}
    ran = [p for p in probes if p["score"] is not None]
    assert len(ran) == len(probes)
    assert all(p["ci"][0] <= p["score"] <= p["ci"][1] and p["n_train"] > p["n_test"] > 0 for p in ran)
    html = page.read_text()
    assert html.count("data:image/png;base64,") == 1 and "<script" not in html
    assert "label:topic" in stdout and "first_token" in stdout


@pytest.mark.slow  # probe fits, end to end
def test_the_table_shows_each_target_by_layer_for_pads_and_real_tokens(cli, tiny, short_texts):
    code, stdout, _ = cli("-q", "probe", tiny, "--texts", short_texts, "--max-length", 24, "--limit", 60)
    assert code == 0
    lines = stdout.splitlines()
    assert sum(line.startswith("layer ") for line in lines) == 4  # length, distance, content, first_token
    rows = [line for line in lines if line.split()[:1] in (["0"], ["1"], ["2"])]
    assert len(rows) == 4 * 3 and all(len(line.split()) in (9, 10) for line in rows)
    assert max(len(line) for line in lines) <= 80


@pytest.mark.parametrize("args, message", [
    (["--labels", "colour"], "no 'colour' field"),
    (["--labels", "topic", "--text", "a b"], "a --text value has no label: pass only --texts FILE"),
    (["--per-text", "0"], "--per-text must be at least 1"),
    (["--max-length", "1"], "--max-length must be at least 2"),
])
def test_bad_input_is_one_error_line_exit_2_and_nothing_written(cli, tiny, short_texts, tmp_path, args, message):
    out = tmp_path / "p.json"
    code, stdout, err = cli("probe", tiny, "--texts", short_texts, *args, "--json", out)
    assert code == 2
    assert err.startswith("Error:") and err.count("\n") == 1 and message in err
    assert not out.exists() and stdout == ""


def test_without_scikit_learn_the_error_names_the_extra(cli, tiny, no_sklearn):
    code, _, err = cli("probe", tiny, "--text", "a b c")
    assert code == 2
    assert err.startswith("Error:") and "pip install 'padlens[probe]'" in err


def test_help_shows_examples(cli):
    code, stdout, _ = cli("probe", "--help")
    assert code == 0 and "Examples:" in stdout and "--labels COLUMN" in stdout
