"""Opening a model whose weights are external data (a few hundred MB) reads none of them into
Python, writes nothing to a temporary folder, and stays within a bound of the weights' size."""
from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from padlens.inspector.model.graph import save_model
from tests.hardening.tiny import copy_tokenizer

log = logging.getLogger(__name__)

ROWS = 2_000_000  # word-embedding rows: 2M x 32 float32 = 256 MB of external data

# run in a fresh process: its peak RSS is the open's own, and the spies see every Python read
OPEN = r"""
import builtins, io, json, os, resource, sys, tempfile
reads = []
real_open = builtins.open
def spy(file, *args, **kwargs):
    if str(file).endswith(".data"):
        reads.append(str(file))
    return real_open(file, *args, **kwargs)
builtins.open = io.open = spy
from padlens.inspector.inputs.resolve import resolve_models
from padlens.inspector.runtime.encoder import Encoder
from padlens.inspector.runtime.session import SessionOptions
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
tmp_before = sorted(os.listdir(tempfile.gettempdir()))
enc = Encoder.open(resolve_models([sys.argv[1]])[0], SessionOptions(threads=1), keep_model=False, stats=True,
                   check_exposure=True)
batch = enc.encode(["the cat sat on the mat"], 16)
enc.run_stats(batch)
delta = enc.verify_exposure(batch)
print(json.dumps({"reads": reads, "before": before, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "tmp": sorted(os.listdir(tempfile.gettempdir())), "tmp_before": tmp_before, "delta": delta, "stats": enc.stats_mode,
                  "external": enc.graph.external_data, "weights": enc.graph.weights}))
"""


@pytest.fixture(scope="module")
def big_external(zoo, tmp_path_factory):
    """The zoo's padlens export with a 2M-row word-embedding table, every weight in model.onnx.data."""
    folder = tmp_path_factory.mktemp("big") / "user"
    copy_tokenizer(zoo("padlens"), folder)
    model = onnx.load(str(zoo("padlens") / "model.onnx"))
    table = max((t for t in model.graph.initializer if len(t.dims) == 2), key=lambda t: t.dims[0])
    rows = np.random.default_rng(0).standard_normal((ROWS, table.dims[1]), dtype=np.float32)
    rows[:table.dims[0]] = numpy_helper.to_array(table)
    table.CopyFrom(numpy_helper.from_array(rows, table.name))
    del rows
    save_model(model, folder / "model.onnx", external_over=0)
    return folder / "model.onnx"


@pytest.mark.slow
def test_opening_an_external_data_model_reads_no_weights_into_python_and_writes_no_temporary_copy(
        big_external, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"TMPDIR": str(tmp), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", OPEN, str(big_external)], capture_output=True, text=True,
                          env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    weights = (big_external.parent / "model.onnx.data").stat().st_size
    assert weights > 250e6 and got["external"] and got["weights"] >= weights
    assert got["reads"] == []  # no Python open() of the weight file: ORT maps it itself
    assert got["tmp"] == got["tmp_before"]  # opening and running wrote no copy of the model
    assert sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file()) < 1e6
    assert got["stats"] == "graph"
    assert got["delta"] == 0.0  # the exposure check runs at every size (its session released first)
    # before: 2x the weights at least (loaded into the proto, then serialised for ORT);
    # now ORT's own copy of the weights and little else
    assert got["peak"] - got["before"] < 1.5 * weights, (got["peak"] - got["before"]) / weights


def test_attention_maps_are_measured_at_every_size_and_the_exposure_checked(zoo):
    """The 1 GB line of earlier versions (attention left out above it) is gone: the statistics read
    each map inside the graph, freed once measured (benchmarks/RESULTS.md, issue 33 at 0.6B)."""
    from padlens.inspector.inspect import inspect
    from padlens.inspector.runtime import encoder as encoder_mod

    assert not hasattr(encoder_mod, "ATTENTION_STATS_MAX")
    run = inspect([str(zoo("padlens") / "model.onnx")], texts=["the cat sat on the mat", "a dog"],
                  max_length=16).runs[0]
    assert run.exposure_max_abs_diff == 0.0 and run.encoder.stats == "graph"
    assert all(layer.attn_pad_to_content is not None for layer in run.layers[1:])
    assert not any("attention maps" in w for w in run.warnings)
