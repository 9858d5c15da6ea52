"""The steps of an inspection: a batch's sums are added on the metrics thread while the next batch runs."""
from __future__ import annotations

import threading

import pytest

from padlens.inspector import steps
from padlens.inspector.inputs.resolve import resolve_models
from padlens.inspector.inputs.texts import default_corpus
from padlens.inspector.inspect import inspect
from padlens.inspector.runtime.encoder import Encoder

KWARGS = {"max_length": 24, "batch_size": 8}


def _runs(folder, n: int = 2) -> list[steps.Run]:
    ref = resolve_models([str(folder)])[0]
    enc = Encoder.open(ref, keep_model=False, stats=True, check_exposure=True)
    assert enc.uses_stats
    return [steps.new_run(ref, "cpu", enc, 0.0, 24) for _ in range(n)]


def _without_timings(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "timings"}


def test_sums_added_beside_the_next_batch_give_the_same_result_as_added_at_once(zoo):
    texts = default_corpus()[:40]
    deferred, direct = _runs(zoo("padlens"))
    for i in range(0, len(texts), 8):
        for run, defer in ((deferred, True), (direct, False)):
            steps.measure_chunk([run], texts[i:i + 8], 24, "max_length", "right", first=i == 0, defer=defer)
    assert deferred.pending is not None  # the last batch is still on the metrics thread, or just done
    a, b = steps.finish(deferred).to_dict(), steps.finish(direct).to_dict()
    assert deferred.pending is None and a["n_texts"] == b["n_texts"] == 40
    assert _without_timings(a) == _without_timings(b)


def test_a_batches_sums_are_added_while_the_next_batch_runs(zoo, monkeypatch):
    """The first batch's accumulation waits until the second batch's run has started: it completes
    only if it runs beside that run (in the caller's thread it would wait for a run that never comes)."""
    second_run = threading.Event()
    seen: list[tuple[str, bool]] = []
    run_stats, accumulate = Encoder.run_stats, steps._accumulate_sums

    def running(self, batch):
        if seen:
            second_run.set()
        seen.append(("run", threading.current_thread() is threading.main_thread()))
        return run_stats(self, batch)

    def adding(run, sums, mask):
        first = not any(what == "add" for what, _ in seen)
        seen.append(("add", threading.current_thread() is threading.main_thread()))
        if first:
            assert second_run.wait(60), "the next batch did not run while this one's sums were added"
        accumulate(run, sums, mask)

    monkeypatch.setattr(Encoder, "run_stats", running)
    monkeypatch.setattr(steps, "_accumulate_sums", adding)
    result = inspect([str(zoo("padlens"))], default_corpus()[:24], **KWARGS)
    assert result.runs[0].n_texts == 24 and result.runs[0].encoder.stats == "graph"
    assert [what for what, _ in seen].count("add") == 3
    assert all(main for what, main in seen if what == "run")
    assert not any(main for what, main in seen if what == "add")


def test_an_error_while_adding_a_batch_is_raised_by_the_inspection(zoo, monkeypatch):
    def broken(run, sums, mask):
        raise ValueError("injected accumulation failure")

    monkeypatch.setattr(steps, "_accumulate_sums", broken)
    with pytest.raises(ValueError, match="injected accumulation failure"):
        inspect([str(zoo("padlens"))], default_corpus()[:16], **KWARGS)
