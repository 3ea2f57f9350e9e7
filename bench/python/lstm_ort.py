#!/usr/bin/env python3
"""onnxruntime reference for bench/src/bin/lstm_vs_onnxruntime.rs.

Checks the model with onnx.checker, then runs it with onnxruntime on ONE thread
(intra_op_num_threads=1, inter_op_num_threads=1, sequential execution, all graph optimisations).
The file fixes batch 1; nothing in the graph depends on the batch size, so the input and output
batch dims are made symbolic here before the session is built (the only change to the model).

Input: a raw little-endian float32 file of N windows, shape [N, SEQ, FEAT].
Output (stdout): one JSON line {"checker": "ok", "ort_version", "single_us": [...],
"batch": {"B": {"per_sample_us": ...}}}; the probabilities of all N windows at the largest batch
are written to OUT (raw float32) for the agreement check.

usage: lstm_ort.py MODEL INPUT N SEQ FEAT OUT --single-runs R --batches 64,1024 --batch-runs R
"""
import argparse
import json
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("n", type=int)
    ap.add_argument("seq", type=int)
    ap.add_argument("feat", type=int)
    ap.add_argument("out")
    ap.add_argument("--single-runs", type=int, default=1000)
    ap.add_argument("--batches", default="64,1024")
    ap.add_argument("--batch-runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()

    model = onnx.load(a.model)
    onnx.checker.check_model(model, full_check=True)
    for vi in list(model.graph.input) + list(model.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_param = "batch"
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    x = np.fromfile(a.input, dtype="<f4").reshape(a.n, a.seq, a.feat)
    # Single-window latency.
    for i in range(20):
        sess.run(None, {name: x[i : i + 1]})
    single = []
    for i in range(a.single_runs):
        w = x[i % a.n : i % a.n + 1]
        t0 = time.perf_counter()
        sess.run(None, {name: w})
        single.append((time.perf_counter() - t0) * 1e6)
    # Batches.
    batches = {}
    outputs = None
    for b in [int(s) for s in a.batches.split(",")]:
        xb = x[:b]
        sess.run(None, {name: xb})
        times = []
        for _ in range(a.batch_runs):
            t0 = time.perf_counter()
            sess.run(None, {name: xb})
            times.append(time.perf_counter() - t0)
        batches[str(b)] = {"per_sample_us": min(times) / b * 1e6, "median_per_sample_us": float(np.median(times)) / b * 1e6}
    # Probabilities of every window, in chunks of the largest batch.
    big = max(int(s) for s in a.batches.split(","))
    outs = []
    for s in range(0, a.n, big):
        outs.append(sess.run(None, {name: x[s : s + big]})[0].reshape(-1))
    np.concatenate(outs).astype("<f4").tofile(a.out)
    print(json.dumps({
        "checker": "ok",
        "ort_version": ort.__version__,
        "single_us": single,
        "batch": batches,
    }))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # report, so the Rust side prints a clear reason
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        sys.exit(1)
