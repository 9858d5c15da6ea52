"""The attention maps' in-graph statistics alone: their reductions on random [B, heads, T, T] maps.

    .venv/bin/python benchmarks/attention_stats.py --batch 32 --heads 12 --length 128 --reps 20

Two one-op-chain graphs over the same maps, run interleaved in one process (medians): ``sum_first``
(heads summed, then @ key groups: ``padlens.inspector.stats.ingraph._attention``) and ``matmul_first``
(the map @ key groups, then heads summed: reads the map once, but a MatMul with 4 output columns per
head is slow in ONNX Runtime: 13x slower at 32 x 12 x 128 x 128, one smoke run), same results checked.
Per model, multiply by its number of layers; ``production_size.py --inspect`` measures the
statistics' cost inside a whole run (``inspect`` against ``inspect_hidden``). Prints JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from onnx import TensorProto, helper


def graph(matmul_first: bool) -> bytes:
    probs = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["B", "h", "T", "T"])
    keys = helper.make_tensor_value_info("keys", TensorProto.FLOAT, ["B", "T", 4])
    out = helper.make_tensor_value_info("masses", TensorProto.FLOAT, None)
    one = helper.make_tensor("one", TensorProto.INT64, [1], [1])
    if matmul_first:
        nodes = [helper.make_node("Unsqueeze", ["keys", "one"], ["keys4"]),
                 helper.make_node("MatMul", ["probs", "keys4"], ["per_head"]),
                 helper.make_node("ReduceSum", ["per_head", "one"], ["masses"], keepdims=0)]
    else:
        nodes = [helper.make_node("ReduceSum", ["probs", "one"], ["summed"], keepdims=0),
                 helper.make_node("MatMul", ["summed", "keys"], ["masses"])]
    model = helper.make_model(helper.make_graph(nodes, "attention", [probs, keys], [out], [one]),
                              opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def main() -> None:
    from padlens.inspector.runtime.session import SessionOptions, create_session

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    probs = rng.random((args.batch, args.heads, args.length, args.length), dtype=np.float32)
    keys = (rng.random((args.batch, args.length, 4)) < 0.5).astype(np.float32)
    sessions = {name: create_session(graph(name == "matmul_first"), SessionOptions(threads=args.threads))
                for name in ("sum_first", "matmul_first")}
    feeds = {"probs": probs, "keys": keys}
    outs = {name: s.run(["masses"], feeds, name)[0] for name, s in sessions.items()}
    np.testing.assert_allclose(outs["sum_first"], outs["matmul_first"], rtol=1e-4, atol=1e-3)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for rep in range(args.reps):
        for name in list(sessions)[rep % 2:] + list(sessions)[:rep % 2]:
            start = time.perf_counter()
            sessions[name].run(["masses"], feeds, name)
            times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(json.dumps({"args": vars(args), "median_s": med, "matmul_first_speedup": med["sum_first"] / med["matmul_first"]},
                     indent=2))


if __name__ == "__main__":
    main()
