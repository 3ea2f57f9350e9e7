#!/usr/bin/env python3
"""Reference isolation forests for bench/src/bin/iforest_vs_sklearn.rs.

Reads datasets, fits and scores scikit-learn's IsolationForest and isotree's IsolationForest with
the same t and psi over seeds 0..N-1, and prints one JSON line per (library, dataset):
{"lib","dataset","rows","cols","auc_mean","auc_std","fit_ms","score_us_per_row"}.
Run single-threaded: the caller sets OMP_NUM_THREADS=1 etc.; both libraries get n_jobs/nthreads=1.

Datasets: ODDS CSVs (header f0..fN,label) and raw files NAME.f64 (little-endian float64, row-major,
the last column being the 0/1 label) with their shape given as NAME.f64:ROWS:COLS.

usage: iforest_ref.py --trees 100 --samples 256 --seeds 5 [--libs sklearn,isotree] DATASET...
"""
import argparse
import json
import os
import sys
import time

import numpy as np


def load(spec):
    if spec.endswith(".csv"):
        data = np.loadtxt(spec, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
        name = os.path.splitext(os.path.basename(spec))[0]
    else:
        path, rows, cols = spec.rsplit(":", 2)
        data = np.fromfile(path, dtype="<f8").reshape(int(rows), int(cols))
        name = os.path.splitext(os.path.basename(path))[0]
    x = np.ascontiguousarray(data[:, :-1])
    y = data[:, -1] != 0
    return name, x, y


def run_sklearn(x, seed, trees, samples):
    from sklearn.ensemble import IsolationForest

    model = IsolationForest(n_estimators=trees, max_samples=samples, n_jobs=1, random_state=seed)
    t0 = time.perf_counter()
    model.fit(x)
    t1 = time.perf_counter()
    # score_samples: the opposite of the paper's score; negate so higher = more anomalous.
    s = -model.score_samples(x)
    t2 = time.perf_counter()
    return s, t1 - t0, t2 - t1


def run_isotree(x, seed, trees, samples):
    from isotree import IsolationForest

    model = IsolationForest(ntrees=trees, sample_size=min(samples, x.shape[0]), ndim=1, nthreads=1,
                            random_seed=seed)
    t0 = time.perf_counter()
    model.fit(x)
    t1 = time.perf_counter()
    s = model.predict(x)  # standardized outlier score, higher = more anomalous
    t2 = time.perf_counter()
    return s, t1 - t0, t2 - t1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--libs", default="sklearn,isotree")
    ap.add_argument("datasets", nargs="+")
    a = ap.parse_args()
    from sklearn.metrics import roc_auc_score

    runners = {"sklearn": run_sklearn, "isotree": run_isotree}
    libs = [l for l in a.libs.split(",") if l]
    try:
        from threadpoolctl import threadpool_info

        pools = [(p.get("internal_api"), p.get("num_threads")) for p in threadpool_info()]
        print(json.dumps({"threadpools": pools}), flush=True)
    except Exception as e:  # informational only
        print(json.dumps({"threadpools": str(e)}), flush=True)
    for spec in a.datasets:
        name, x, y = load(spec)
        for lib in libs:
            aucs, fits, scores = [], [], []
            for seed in range(a.seeds):
                s, fit_s, score_s = runners[lib](x, seed, a.trees, a.samples)
                aucs.append(roc_auc_score(y, s))
                fits.append(fit_s * 1e3)
                scores.append(score_s * 1e6 / x.shape[0])
            print(json.dumps({
                "lib": lib, "dataset": name, "rows": int(x.shape[0]), "cols": int(x.shape[1]),
                "auc_mean": float(np.mean(aucs)), "auc_std": float(np.std(aucs)),
                "fit_ms": float(np.mean(fits)), "score_us_per_row": float(np.mean(scores)),
            }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
