"""study() and `padlens study` on a tiny random model: the files, the rows, the errors (code only:
random weights prove nothing about meaning), and on all-MiniLM-L6-v2 the corpus's topics (slow)."""
from __future__ import annotations

import json

import pytest

from padlens.errors import BadInput
from padlens.inspector.inputs.options import RunOptions
from padlens.inspector.study.results import StudyOptions
from padlens.inspector.study.run import study, study_with


@pytest.fixture(scope="module")
def tiny(zoo):
    return zoo("padlens")


@pytest.fixture(scope="module")
def written(tiny, topic_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "study"
    return study([str(tiny)], out=out, corpus=str(topic_file), max_length=32, batch_size=8), out


@pytest.mark.slow  # a whole study (one module fixture)
def test_study_writes_markdown_json_and_html_with_both_answers(written):
    result, out = written
    assert sorted(p.name for p in out.iterdir()) == ["study.html", "study.json", "study.md"]
    md = (out / "study.md").read_text(encoding="utf-8")
    assert "## 1. What do the pad positions hold?" in md and "## 2. What do pads do to k-means clusters?" in md
    one = result.models[0]
    for sentence in one.pads + one.effects:
        assert f"- {sentence}" in md
    doc = json.loads((out / "study.json").read_text(encoding="utf-8"))
    assert doc["models"][0]["pads"] == one.pads and doc["corpus"]["topics"] == {"animals": 12, "text": 12, "model": 12}
    html = (out / "study.html").read_text(encoding="utf-8")
    assert html.index("id='answer-1'") < html.index("id='answer-2'") < html.index("<img")


@pytest.mark.slow  # a whole study (one module fixture)
def test_clusters_compare_pads_left_in_and_every_file_with_the_reference(written):
    one = written[0].models[0]
    assert [r.variant for r in one.clusters[:2]] == ["a", "b"]
    ref, pads_in = one.clusters[:2]
    assert ref.ari_reference is None and -0.5 <= ref.ari_topics <= 1.0
    assert 0.0 <= pads_in.moved <= 1.0 and pads_in.against == ref.name
    assert pads_in.pooled_cos_min < 0.999  # pads were averaged in: the embeddings moved
    assert [o.model for o in one.orders] == one.files and all(o.invariant for o in one.orders)


@pytest.mark.slow  # a whole study (one module fixture)
def test_geometry_and_probes_cover_every_layer_of_the_reference_file(written):
    one = written[0].models[0]
    assert [g.index for g in one.geometry] == [entry["index"] for entry in one.probe["layers"]]
    assert one.texts_with_pads == 36 and one.max_length == 32
    targets = {p["target"] for p in one.probe["layers"][1]["probes"]}
    assert {"length", "content", "first_token"} <= targets


def test_an_existing_folder_is_refused_before_any_work_and_left_as_it_was(tiny, topic_file, tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    (out / "mine.txt").write_text("keep", encoding="utf-8")
    with pytest.raises(BadInput, match="not empty"):
        study([str(tiny)], out=out, corpus=str(topic_file))
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_a_corpus_without_pads_is_a_clear_error(tiny, tmp_path):
    corpus = tmp_path / "long.tsv"
    long_text = " ".join(["the cat sat on the mat"] * 4)
    corpus.write_text("".join(f"{t}\t{long_text} {i}\n" for t in ("a", "b") for i in range(3)), encoding="utf-8")
    options = StudyOptions(run=RunOptions(max_length=8), corpus=str(corpus))
    with pytest.raises(BadInput, match="no text of the corpus has a pad at max_length 8"):
        study_with([str(tiny)], options)


@pytest.mark.slow  # a whole study
def test_the_command_prints_the_answers_and_bad_input_is_one_error_line(tiny, topic_file, tmp_path, cli_run):
    bad = tmp_path / "bad.tsv"
    bad.write_text("no tab\n", encoding="utf-8")
    code, out, err = cli_run("study", tiny, "-o", tmp_path / "s", "--corpus", bad)
    assert code == 2 and err.startswith("Error: corpus bad.tsv line 1") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()
    code, out, err = cli_run("-q", "study", tiny, "-o", tmp_path / "s", "--corpus", topic_file, "--max-length", "32")
    assert code == 0, err
    assert "## 1. What do the pad positions hold?" in out and "Masked mean pooling (the reference)" in out


def test_without_scikit_learn_the_study_says_which_extra_to_install(tiny, tmp_path, cli_run, monkeypatch):
    import sys

    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")] + ["sklearn"]:
        monkeypatch.setitem(sys.modules, name, None)
    for name in ("padlens.inspector.probe.fit", "padlens.inspector.study.cluster"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    code, out, err = cli_run("study", tiny, "-o", tmp_path / "s")
    assert code == 2 and "scikit-learn" in err and "padlens[probe]" in err and not (tmp_path / "s").exists()


@pytest.mark.slow
def test_the_topics_separate_under_masked_mean_pooling_on_minilm(minilm_export):
    """The bundled corpus's six topics under all-MiniLM-L6-v2's reference pooling (docs/study.md quotes it)."""
    result = study_with([str(minilm_export)], StudyOptions())
    ref = result.models[0].clusters[0]
    assert ref.variant == "a" and ref.ari_topics >= 0.9
