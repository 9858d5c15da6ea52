"""Big corpora stream: texts are pulled batch by batch and memory does not grow with their number."""
from __future__ import annotations

import tracemalloc

import pytest

from padlens.inspector.inspect import inspect
from tests.conftest import run_padlens

from .conftest import corpus


def test_texts_are_pulled_one_batch_at_a_time(tiny_export):
    pulled = []

    def texts():
        for i, text in enumerate(corpus(200)):
            pulled.append(i)
            yield text

    seen = []
    inspect([str(tiny_export)], texts=texts(), max_length=16, batch_size=10,
            progress=lambda done: seen.append((done, len(pulled))))
    assert seen[0][0] == 10 and seen[0][1] <= 20  # the first batch, and at most the next one read
    assert all(read - done <= 10 for done, read in seen)
    assert seen[-1] == (200, 200)


def peak_bytes(export, path) -> int:
    tracemalloc.start()
    try:
        inspect([str(export)], texts_file=str(path), max_length=16, batch_size=64)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow  # thousands of texts
def test_peak_memory_does_not_grow_with_the_number_of_texts(tiny_export, tmp_path):
    small, big = tmp_path / "small.txt", tmp_path / "big.txt"
    small.write_text("\n".join(corpus(3_000, seed=1)) + "\n")
    big.write_text("\n".join(corpus(15_000, seed=2)) + "\n")
    peak_bytes(tiny_export, small)  # warm caches (tokenizer, imports) out of the comparison
    # the peak is the end of a run (before it: 4 MB): its three cross-text sides run at once, this thread
    # and two more, and how many of their 2,000 x 2,000 arrays are alive together depends on the threads'
    # timing (204-276 MB seen for the same 3k texts): the larger of two runs is the small corpus's peak
    a = max(peak_bytes(tiny_export, small) for _ in range(2))
    b = peak_bytes(tiny_export, big)
    assert b <= 1.2 * a + 256 * 1024, f"peak {a / 1e6:.1f} MB for 3k texts, {b / 1e6:.1f} MB for 15k"


padlens = run_padlens


def test_a_texts_file_runs_with_batch_size_threads_and_timings(tiny_export, tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(corpus(500)) + "\n")
    proc = padlens("-v", "inspect", tiny_export, "--texts", path, "--batch-size", "50", "--threads", "1",
                   "--max-length", "24", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "padlens inspect: 500 texts" in proc.stdout
    for stage in ("timing: tokenize", "timing: run", "timing: metrics"):
        assert stage in proc.stderr
    assert "tokens/s" in proc.stderr
    assert max(len(line) for line in proc.stdout.splitlines()) <= 80
    assert "\r" not in proc.stderr  # not a terminal: no progress bar


@pytest.mark.parametrize("flag", ["--batch-size", "--threads"])
def test_a_batch_size_or_thread_count_below_one_is_refused(tiny_export, tmp_path, flag):
    proc = padlens("inspect", tiny_export, "--text", "hi", flag, "0", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("Error:")
