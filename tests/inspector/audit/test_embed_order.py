"""embed's length-sorted batches: rows keep input order and equal the file-order path; few pads fed."""
from __future__ import annotations

import random

import numpy as np
import pytest

from padlens.inspector import embed as E
from padlens.inspector.inputs.resolve import resolve_models
from padlens.inspector.inputs.texts import batches_of
from padlens.inspector.runtime.embed_model import EmbedModel
from padlens.inspector.stats.pooling import l2_normalize, pool

WORDS = "the cat sat on a mat while rain fell over quiet hills and rivers ran to sea".split()


def mixed_texts(n: int = 240, seed: int = 0) -> list[str]:
    """``n`` texts of 1 to 30 words, in random order of length."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 30))) for _ in range(n)]


def _write(tmp_path, texts):
    f = tmp_path / "texts.txt"
    f.write_text("\n".join(texts) + "\n")
    return f


def file_order_rows(folder, texts, batch_size: int, normalize: bool):
    """The unsorted path: batches in file order, each padded to its longest text."""
    runner = EmbedModel(resolve_models([folder])[0])
    rows, fed = [], 0
    for chunk in batches_of(texts, batch_size):
        batch = runner.tokenizer.encode(chunk, max_length=64, padding="longest", side="right")
        emb = pool(runner.run(batch), batch.attention_mask, "mean")
        rows.append(l2_normalize(emb) if normalize else emb)
        fed += batch.input_ids.size
    return np.concatenate(rows), fed


@pytest.mark.parametrize("window", [1, 3, E.WINDOW_BATCHES])
def test_sorted_batches_keep_input_order_and_the_file_order_rows(toy, tmp_path, monkeypatch, window):
    monkeypatch.setattr(E, "WINDOW_BATCHES", window)
    texts = mixed_texts()
    out = tmp_path / "e.npy"
    seen = []
    result = E.embed(toy("honest"), _write(tmp_path, texts), out, normalize=True, batch_size=8,
                     max_length=64, progress=seen.append)
    expected, _ = file_order_rows(toy("honest"), texts, 8, normalize=True)
    got = np.load(out)
    assert got.shape == expected.shape and result.rows == len(texts)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert seen == sorted(seen) and seen[-1] == len(texts)


def test_tokens_fed_stay_within_1_15_of_the_real_tokens_on_mixed_lengths(toy, tmp_path):
    texts = mixed_texts()
    result = E.embed(toy("honest"), _write(tmp_path, texts), tmp_path / "e.npy", batch_size=8, max_length=64)
    runner = EmbedModel(resolve_models([toy("honest")])[0])
    real = int(runner.tokenizer.encode(texts, max_length=64, padding="longest").lengths.sum())
    _, file_order_fed = file_order_rows(toy("honest"), texts, 8, normalize=False)
    assert result.tokens == real
    assert result.tokens_fed <= 1.15 * real
    assert file_order_fed > 1.3 * real  # the corpus is mixed: unsorted batches would feed far more pads


def test_each_sorted_batch_is_padded_to_its_own_longest_row_and_covers_the_window_once(toy):
    runner = EmbedModel(resolve_models([toy("honest")])[0])
    window = runner.tokenizer.encode(mixed_texts(50), max_length=64, padding="longest")
    seen = []
    for rows, batch in E.sorted_batches(window, 8):
        assert batch.shape == (len(rows), int(window.lengths[rows].max()))
        np.testing.assert_array_equal(batch.input_ids, window.input_ids[rows, :batch.shape[1]])
        seen.extend(rows.tolist())
    assert sorted(seen) == list(range(50))
    lengths = window.lengths[seen]
    assert (np.diff(lengths) <= 0).all()  # longest first
