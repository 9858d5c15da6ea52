"""Ray Data gives the same numbers as in-process: inspect's JSON, embed's vectors, even after a fault."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from padlens.errors import BadInput
from padlens.inspector.embed import embed
from padlens.inspector.inputs.options import EngineOptions, RunOptions
from padlens.inspector.inspect import inspect
from padlens.inspector.ray import embed_job, inspect_job
from padlens.inspector.ray.embed_job import embed_ray
from padlens.inspector.ray.inspect_job import inspect_ray

from .conftest import BATCH, MAX_LEN, assert_same_json

RAY = EngineOptions("ray", workers=2)  # two actors; Ray's progress bars off
SMALL = 300  # texts for the tests that need no cap
EMBED_BATCH = 4  # embed runs windows of 64 batches: 256 texts, so SMALL texts make two blocks


@pytest.fixture(scope="module")
def local_json(tiny, txt_corpus):
    return inspect([str(tiny)], texts_file=str(txt_corpus), max_length=MAX_LEN, batch_size=BATCH).to_dict()


@pytest.fixture(scope="module")
def parquet_folder(tmp_path_factory, texts):
    """texts[:SMALL] as two Parquet files in a folder, small row groups, with a null and a blank row."""
    folder = tmp_path_factory.mktemp("pq") / "corpus"
    folder.mkdir()
    first = texts[:120]
    rows = first[:50] + [None, "   "] + first[50:]
    pq.write_table(pa.table({"id": list(range(len(rows))), "body": rows}), folder / "a.parquet", row_group_size=37)
    pq.write_table(pa.table({"body": texts[120:SMALL]}), folder / "b.parquet", row_group_size=64)
    (folder / "_SUCCESS").write_text("")  # marker files (Spark, Ray) are not texts
    return folder


def small_txt(tmp_path, texts):
    path = tmp_path / "small.txt"
    path.write_text("\n".join(texts[:SMALL]) + "\n", encoding="utf-8")
    return path


@pytest.mark.slow  # Ray jobs end to end
def test_inspect_on_ray_gives_the_same_json_as_in_process(ray_local, tiny, txt_corpus, local_json):
    options = RunOptions(texts_file=str(txt_corpus), max_length=MAX_LEN, batch_size=BATCH, engine=RAY)
    remote = inspect_ray([str(tiny)], options).to_dict()
    assert remote["texts_count"] == local_json["texts_count"] == 2100
    assert remote["runs"][0]["pooling"]["texts_compared"] == 2000  # the first 2,000, as in-process
    assert_same_json(local_json, remote)


@pytest.mark.slow  # Ray jobs end to end
def test_inspect_reads_a_parquet_folder_with_a_text_column(ray_local, tiny, nan_model, tmp_path, texts,
                                                            parquet_folder):
    models = [str(tiny), str(nan_model)]  # two runs on the same batches, in the order asked
    local = inspect(models, texts_file=str(small_txt(tmp_path, texts)), max_length=MAX_LEN,
                    batch_size=BATCH, padding="longest").to_dict()
    options = RunOptions(texts_file=str(parquet_folder), text_column="body", max_length=MAX_LEN, batch_size=BATCH,
                         padding="longest", engine=RAY)
    remote = inspect_ray(models, options).to_dict()
    assert remote["texts_count"] == SMALL and [r["model"] for r in remote["runs"]] == [str(Path(m) / "model.onnx")
                                                                                      for m in models]
    assert_same_json(local, remote)


@pytest.mark.slow  # Ray jobs end to end
def test_a_worker_that_dies_mid_run_is_retried_and_changes_nothing(ray_local, tiny, tmp_path, texts,
                                                                      worker_dies_once):
    path = small_txt(tmp_path, texts)
    local = inspect([str(tiny)], texts_file=str(path), max_length=MAX_LEN, batch_size=BATCH).to_dict()
    marker = worker_dies_once(inspect_job, "InspectWorker", SMALL // 2)
    options = RunOptions(texts_file=str(path), max_length=MAX_LEN, batch_size=BATCH, engine=RAY)
    remote = inspect_ray([str(tiny)], options).to_dict()
    assert marker.is_file(), "the injected fault never fired"
    assert_same_json(local, remote)


@pytest.mark.slow  # Ray jobs end to end
def test_embed_writes_a_parquet_dataset_that_reads_back_in_input_order(ray_local, tiny, tmp_path, texts,
                                                                        parquet_folder):
    local = tmp_path / "local.npy"
    embed(str(tiny), str(small_txt(tmp_path, texts)), str(local), batch_size=EMBED_BATCH, max_length=MAX_LEN)
    out = tmp_path / "emb"
    options = RunOptions(texts_file=str(parquet_folder), text_column="body", batch_size=EMBED_BATCH,
                         max_length=MAX_LEN, engine=RAY)
    result = embed_ray(str(tiny), options, str(out), keep_text=True)
    table = pq.read_table(out)
    assert result.rows == table.num_rows == SMALL
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), result.dim)
    np.testing.assert_array_equal(table.column("index").to_numpy(), np.arange(SMALL))
    assert table.column("text").to_pylist() == texts[:SMALL]
    vectors = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
    np.testing.assert_array_equal(vectors, np.load(local))  # the same bits


@pytest.mark.slow  # Ray jobs end to end
def test_embed_to_npy_on_ray_is_the_in_process_array(ray_local, tiny, tmp_path, texts, worker_dies_once):
    path = small_txt(tmp_path, texts)
    embed(str(tiny), str(path), str(tmp_path / "local.npy"), batch_size=EMBED_BATCH, max_length=MAX_LEN)
    marker = worker_dies_once(embed_job, "EmbedWorker", SMALL - 1)
    options = RunOptions(texts_file=str(path), batch_size=EMBED_BATCH, max_length=MAX_LEN, engine=RAY)
    embed_ray(str(tiny), options, str(tmp_path / "ray.npy"))
    assert marker.is_file()
    np.testing.assert_array_equal(np.load(tmp_path / "ray.npy"), np.load(tmp_path / "local.npy"))


@pytest.mark.parametrize("make, column, message", [
    (lambda d: pq.write_table(pa.table({"body": ["a"]}), d / "x.parquet"), None,
     'no "text" column in .*x.parquet \\(columns found: \'body\'\\): pass text_column'),
    (lambda d: pq.write_table(pa.table({"text": [1, 2]}), d / "x.parquet"), None,
     'column "text" of .*x.parquet holds int64, not strings'),
    (lambda d: None, None, "no texts: folder .* holds no .txt, .jsonl, .csv, .parquet, .pq files"),
    (lambda d: pq.write_table(pa.table({"text": [None, " "]}), d / "x.parquet"), None, "no texts: .* is empty"),
])
def test_bad_corpora_are_refused_before_ray_starts_work(tiny, tmp_path, make, column, message):
    folder = tmp_path / "in"
    folder.mkdir()
    make(folder)
    with pytest.raises(BadInput, match=message):
        inspect_ray([str(tiny)], RunOptions(texts_file=str(folder), text_column=column, engine=RAY))


@pytest.fixture(scope="module")
def nan_model(tiny, tmp_path_factory):
    """Layer 1 = Log(embedding): NaN states on every text holding "cat" (tests/hardening/tiny.py)."""
    import json

    from tests.hardening import tiny as builders

    vocab = json.loads((tiny / "tokenizer.json").read_text())["model"]["vocab"]
    folder = tmp_path_factory.mktemp("nan")
    builders.copy_tokenizer(tiny, folder)
    builders.nan_rows(folder / "model.onnx", max(vocab.values()) + 1, vocab["cat"])
    return folder


@pytest.mark.slow  # Ray jobs end to end
def test_failed_texts_leave_the_same_faults_and_the_same_first_2000_texts(ray_local, nan_model, txt_corpus,
                                                                          texts):
    local = inspect([str(nan_model)], texts_file=str(txt_corpus), max_length=MAX_LEN, batch_size=BATCH).to_dict()
    options = RunOptions(texts_file=str(txt_corpus), max_length=MAX_LEN, batch_size=BATCH, engine=RAY)
    remote = inspect_ray([str(nan_model)], options).to_dict()
    run = remote["runs"][0]
    assert run["layers"][1]["failed"] > 100 and len(run["faults"]) == 10
    failed = run["layers"][1]["failed"]
    assert run["pooling"]["texts_compared"] == len(texts) - failed  # so kept texts reach past text 2,000
    assert_same_json(local, remote)
