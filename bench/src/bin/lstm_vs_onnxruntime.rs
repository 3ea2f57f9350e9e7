//! The failure-prediction LSTM through tract (medic's `Predictor`) against onnxruntime (Python,
//! one thread), same ONNX file and same inputs, side by side in one run.
//!
//! Prints single-window latency (p50/p99, batch-1 plan), per-sample time at each batch size
//! (batch plans fixed at that size), tract/onnxruntime ratios (< 1 = tract faster), and the
//! largest absolute difference of the two runtimes' outputs over all windows (and, for the
//! generated model, against the plain-Rust reference forward pass). The Python side also runs
//! `onnx.checker` on the file.
//!
//! usage: `cargo run --release -p medic-bench --bin lstm_vs_onnxruntime -- [MODEL.onnx]
//! [--windows N] [--single-runs N] [--batches 64,1024] [--plan-batch P] [--malloc-retain]
//! [--threads N [--split]] [--batch-runs R] [--lowering folded|tract] [--profile] [--describe]` (run from the repository root).
//! `--profile` also prints where one run of the largest call's plan spends its time, node by
//! node (a `Scan` is one LSTM layer's whole loop over the 20 steps). Batch figures are
//! the best of R timed calls (default 5) on each side: on a shared machine the best of more
//! runs finds both runtimes' uncontended moments. `--describe` prints the optimised plan of
//! the largest call, node by node (scan bodies indented; a matrix product with its m, k, n and
//! the kernel tract picked).
//!
//! The tract configurations (each printed in the header, so a figure always names its own):
//! - `--plan-batch P`: a call of B > P windows runs on a plan of batch P, in chunks (what
//!   [`Predictor::predict_into`] does with `PredictorOptions { batch: P }`); default: a plan of
//!   exactly B. onnxruntime always runs the B windows in one call.
//! - `--lowering folded|tract`: how the predictor lowers the LSTM layers
//!   ([`LstmLowering`]); default `folded`, the predictor's default (one product per step of
//!   `[x_t, h]` with `[W | R]`), `tract` is tract's own lowering (input projection hoisted out
//!   of the loop).
//! - `--malloc-retain`: glibc keeps freed memory (`mallopt`: no heap trimming, no mmap below
//!   32 MB). tract allocates its intermediate tensors on every run; with glibc's defaults the
//!   heap top is given back to the kernel after a run and faulted in again on the next one.
//!   onnxruntime has its own arena and never sees this.
//! - `--threads N`: onnxruntime with N intra-op threads; tract with tract-linalg's rayon
//!   executor for its matrix products, or with `--split` the windows of a call cut in N equal
//!   parts, each run by its own forked predictor on its own thread.
//!
//! The largest call is also timed in two fresh child processes (single thread only), with
//! glibc's defaults and retaining freed memory: whether glibc trims depends on what the process
//! freed before, and this one has built and freed a simulated history, a daemon has not.
//!
//! Without MODEL a model of the architecture (LSTM 128 → 64 → 32, dense 16, sigmoid;
//! 20 steps × 10 features) is written from seeded random weights. Needs `pip install
//! onnxruntime onnx`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use medic_detect::predict::card::PredictorCard;
use medic_detect::predict::{
    LstmLowering, LstmWeights, Predictor, PredictorOptions, reference, write_model,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Args {
    model: Option<PathBuf>,
    windows: usize,
    single_runs: usize,
    batch_runs: usize,
    batches: Vec<usize>,
    threads: usize,
    plan_batch: Option<usize>,
    malloc_retain: bool,
    split: bool,
    profile: bool,
    describe: bool,
    lowering: LstmLowering,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        model: None,
        windows: 2048,
        single_runs: 2000,
        batch_runs: 5,
        batches: vec![64, 1024],
        threads: 1,
        plan_batch: None,
        malloc_retain: false,
        split: false,
        profile: false,
        describe: false,
        lowering: LstmLowering::Folded,
    };
    let mut it = std::env::args().skip(1);
    while let Some(s) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match s.as_str() {
            "--windows" => a.windows = val("--windows")?.parse().map_err(|e| format!("{e}"))?,
            "--batch-runs" => {
                a.batch_runs = val("--batch-runs")?.parse().map_err(|e| format!("{e}"))?
            }
            "--single-runs" => {
                a.single_runs = val("--single-runs")?.parse().map_err(|e| format!("{e}"))?
            }
            "--batches" => {
                a.batches = val("--batches")?
                    .split(',')
                    .map(|b| b.parse().map_err(|e| format!("{e}")))
                    .collect::<Result<_, _>>()?
            }
            "--threads" => a.threads = val("--threads")?.parse().map_err(|e| format!("{e}"))?,
            "--plan-batch" => {
                a.plan_batch = Some(val("--plan-batch")?.parse().map_err(|e| format!("{e}"))?)
            }
            "--malloc-retain" => a.malloc_retain = true,
            "--split" => a.split = true,
            "--profile" => a.profile = true,
            "--describe" => a.describe = true,
            "--lowering" => {
                a.lowering = parse_lowering(&val("--lowering")?)?;
            }
            _ if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => a.model = Some(PathBuf::from(s)),
        }
    }
    if a.batches.is_empty()
        || a.batches.contains(&0)
        || a.windows == 0
        || a.threads == 0
        || a.batch_runs == 0
        || a.plan_batch == Some(0)
    {
        return Err("batches, plan batch, windows and threads must be positive".into());
    }
    if a.split && a.threads < 2 {
        return Err("--split needs --threads 2 or more".into());
    }
    let max_b = *a.batches.iter().max().unwrap_or(&1);
    a.windows = a.windows.max(max_b);
    Ok(a)
}

fn parse_lowering(s: &str) -> Result<LstmLowering, String> {
    match s {
        "folded" => Ok(LstmLowering::Folded),
        "tract" => Ok(LstmLowering::Tract),
        _ => Err(format!("--lowering {s}: expected folded or tract")),
    }
}

fn lowering_name(l: LstmLowering) -> &'static str {
    match l {
        LstmLowering::Folded => "folded",
        LstmLowering::Tract => "tract",
    }
}

fn generated_model(dir: &Path) -> Result<(PathBuf, LstmWeights), String> {
    let w = LstmWeights::random(20, 10, &[128, 64, 32], &[16], 7);
    let card = PredictorCard::untrained(&[128, 64, 32], &[16]);
    let path = dir.join("bench_lstm.onnx");
    write_model(&w, &card, &path).map_err(|e| e.to_string())?;
    Ok((path, w))
}

/// The hidden first argument that makes this binary the fresh-process timer.
const FRESH_CHILD: &str = "--fresh-child";

/// Child mode: `--fresh-child MODEL WINDOWS.f32 B PLAN RETAIN(0|1) LOWERING`. A process that only loads
/// the predictor and times calls of B windows, as a daemon does, and prints µs per window.
/// glibc's trimming depends on what the process freed before: the parent has built and freed
/// a simulated history (large blocks raise glibc's dynamic thresholds), a daemon has not.
// Measuring elapsed wall time is the point of a bench.
#[allow(clippy::disallowed_methods)]
fn fresh_child() -> Result<(), String> {
    let a: Vec<String> = std::env::args().skip(2).collect();
    let [model, input, b, plan, retain, lowering] = a.as_slice() else {
        return Err("--fresh-child MODEL WINDOWS B PLAN RETAIN LOWERING".into());
    };
    let num = |s: &str| s.parse::<usize>().map_err(|e| format!("{s}: {e}"));
    let (b, plan) = (num(b)?, num(plan)?);
    if retain == "1" {
        retain_freed_memory()?;
    }
    let opts = PredictorOptions { batch: plan };
    let mut pred = Predictor::load_lowered(Path::new(model), opts, parse_lowering(lowering)?)
        .map_err(|e| e.to_string())?;
    let wl = pred.window_len();
    let x: Vec<f32> = std::fs::read(input)
        .map_err(|e| e.to_string())?
        .chunks_exact(4)
        .take(b * wl)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if x.len() != b * wl {
        return Err(format!("{input} holds fewer than {b} windows"));
    }
    let mut out = vec![0.0f32; b];
    pred.predict_into(&x, &mut out).map_err(|e| e.to_string())?;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t0 = Instant::now();
        pred.predict_into(&x, &mut out).map_err(|e| e.to_string())?;
        best = best.min(t0.elapsed().as_secs_f64());
    }
    println!("{}", best / b as f64 * 1e6);
    Ok(())
}

/// Per-window µs of `b` windows on a plan of `plan` in a fresh child process.
fn time_fresh(
    model: &Path,
    input: &Path,
    b: usize,
    plan: usize,
    retain: bool,
    lowering: LstmLowering,
) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .arg(FRESH_CHILD)
        .arg(model)
        .arg(input)
        .args([b.to_string(), plan.to_string()])
        .arg(if retain { "1" } else { "0" })
        .arg(lowering_name(lowering))
        .output()
        .map_err(|e| format!("fresh child: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().map_err(|_| {
        format!(
            "fresh child failed ({}): {}{}",
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Runs `windows` into `out` on `preds`: one predictor runs the whole call; several run
/// consecutive equal parts, each on its own thread.
fn run_call(preds: &mut [Predictor], windows: &[f32], out: &mut [f32]) -> Result<(), String> {
    if let [p] = preds {
        return p.predict_into(windows, out).map_err(|e| e.to_string());
    }
    let wl = windows.len() / out.len();
    let part = out.len().div_ceil(preds.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = preds
            .iter_mut()
            .zip(windows.chunks(part * wl).zip(out.chunks_mut(part)))
            .map(|(p, (w, o))| s.spawn(move || p.predict_into(w, o)))
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| "a predictor thread panicked".to_string())?
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

/// `--malloc-retain`: glibc keeps what tract frees between runs instead of trimming the heap
/// top (and mapping large blocks afresh), so a run does not fault its pages in again.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn retain_freed_memory() -> Result<(), String> {
    // SAFETY: mallopt only sets glibc's allocation thresholds; no other thread runs yet.
    let ok = unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
            && libc::mallopt(libc::M_TOP_PAD, 64 << 20) == 1
            && libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1
    };
    if ok {
        Ok(())
    } else {
        Err("mallopt refused the thresholds".into())
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn retain_freed_memory() -> Result<(), String> {
    Err("--malloc-retain needs glibc".into())
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() -> ExitCode {
    let result = if std::env::args().nth(1).as_deref() == Some(FRESH_CHILD) {
        fresh_child()
    } else {
        run()
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lstm_vs_onnxruntime: {e}");
            ExitCode::from(2)
        }
    }
}

/// `n` windows of a simulated history (seed 1001, never a training seed of the shipped model),
/// built from raw columns by the predictor's own feature path, every 7th step of each agent.
fn sim_windows(p: &mut Predictor, n: usize) -> Result<Vec<f32>, String> {
    let h = medic_sim::generate(&medic_sim::HistoryConfig::new(1001, 4, 1.0));
    let series = medic_detect::predict::AgentSeries::from_sim(&h);
    let names = p.raw_series();
    let (wl, need) = (p.window_len(), p.raw_rows());
    let mut x = Vec::with_capacity(n * wl);
    let mut w = vec![0.0f32; wl];
    'outer: loop {
        for s in &series {
            let times: Vec<f64> = (0..s.len()).map(|i| s.time(i).as_secs_f64()).collect();
            let cols: Vec<Vec<f64>> = names
                .iter()
                .map(|name| {
                    s.column(name)
                        .map(|c| c.iter().map(|&v| f64::from(v)).collect())
                        .ok_or(format!("the simulator has no series {name}"))
                })
                .collect::<Result<_, _>>()?;
            for e in (need..=s.len()).step_by(7) {
                let c: Vec<&[f64]> = cols.iter().map(|c| &c[..e]).collect();
                p.window_from_raw(&times[..e], &c, &mut w)
                    .map_err(|e| e.to_string())?;
                x.extend_from_slice(&w);
                if x.len() == n * wl {
                    break 'outer;
                }
            }
        }
    }
    Ok(x)
}

// Measuring elapsed wall time is the point of a bench.
#[allow(clippy::disallowed_methods)]
fn run() -> Result<(), String> {
    let args = parse_args()?;
    if args.malloc_retain {
        retain_freed_memory()?;
    }
    if args.threads > 1 && !args.split {
        // tract's matrix products on a rayon pool of this size (tract-linalg `multithread-mm`);
        // onnxruntime gets as many intra-op threads.
        tract_linalg::multithread::set_default_executor(
            tract_linalg::multithread::Executor::multithread(args.threads),
        );
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (model, weights) = match &args.model {
        Some(p) => (p.clone(), None),
        None => {
            let (p, w) = generated_model(dir.path())?;
            (p, Some(w))
        }
    };
    let mut single = Predictor::load_lowered(&model, PredictorOptions { batch: 1 }, args.lowering)
        .map_err(|e| format!("{e}"))?;
    let (seq, feat) = (single.seq_len(), single.n_features());
    let wl = single.window_len();
    let n = args.windows;
    // A trained model sees real windows (a fresh simulated history through the card's feature
    // path and scaler), so its outputs spread over [0, 1] instead of saturating; the generated
    // model gets random ones.
    let (x, kind) = if weights.is_none() {
        (sim_windows(&mut single, n)?, "simulated (seed 1001)")
    } else {
        let mut rng = ChaCha8Rng::seed_from_u64(2026);
        let x: Vec<f32> = (0..n * wl).map(|_| rng.random_range(-2.0..2.0)).collect();
        (x, "random")
    };
    let input = dir.path().join("x.f32");
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&input, bytes).map_err(|e| e.to_string())?;
    println!(
        "model {} ({} steps × {} features), {} {kind} windows; tract 0.23.9 vs onnxruntime, \
         {} thread(s) each",
        model.display(),
        seq,
        feat,
        n,
        args.threads
    );
    // The batch-1 plan always keeps tract's lowering: the count is the batch plans'.
    let folded = Predictor::load_lowered(
        &model,
        PredictorOptions {
            batch: args.plan_batch.unwrap_or(2).max(2),
        },
        args.lowering,
    )
    .map_err(|e| format!("{e}"))?
    .folded_layers();
    println!(
        "tract: plan batch {}, threads {}, glibc malloc {}, LSTM lowering {} ({} layers folded in the batch plans)",
        args.plan_batch
            .map_or("= call size".to_string(), |p| p.to_string()),
        match (args.threads, args.split) {
            (1, _) => "1".to_string(),
            (t, false) => format!("{t} (tract-linalg executor for matrix products)"),
            (t, true) => format!("{t} (call split in {t}, one forked predictor per thread)"),
        },
        if args.malloc_retain {
            "retaining freed memory"
        } else {
            "defaults"
        },
        lowering_name(args.lowering),
        folded
    );

    // tract: single-window latency on the batch-1 plan.
    let mut p = [0.0f32];
    for i in 0..20 {
        single
            .predict_into(&x[i * wl..(i + 1) * wl], &mut p)
            .map_err(|e| e.to_string())?;
    }
    let mut tract_single = Vec::with_capacity(args.single_runs);
    for i in 0..args.single_runs {
        let w = &x[(i % n) * wl..(i % n + 1) * wl];
        let t0 = Instant::now();
        single.predict_into(w, &mut p).map_err(|e| e.to_string())?;
        tract_single.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    // tract: per-sample time per call size, on the configured plan (see the module docs).
    let mut tract_batch = Vec::new();
    let mut tract_out = vec![0.0f32; n];
    let max_b = *args.batches.iter().max().unwrap_or(&1);
    for &b in &args.batches {
        let parts = if args.split { args.threads } else { 1 };
        let part = b.div_ceil(parts);
        let plan = args.plan_batch.map_or(part, |p| p.min(part));
        let first =
            Predictor::load_lowered(&model, PredictorOptions { batch: plan }, args.lowering)
                .map_err(|e| e.to_string())?;
        let mut preds = vec![first];
        for _ in 1..parts {
            preds.push(preds[0].fork().map_err(|e| e.to_string())?);
        }
        let mut out = vec![0.0f32; b];
        run_call(&mut preds, &x[..b * wl], &mut out)?;
        let mut best = f64::INFINITY;
        for _ in 0..args.batch_runs {
            let t0 = Instant::now();
            run_call(&mut preds, &x[..b * wl], &mut out)?;
            best = best.min(t0.elapsed().as_secs_f64());
        }
        tract_batch.push((b, plan, best / b as f64 * 1e6));
        if b == max_b {
            run_call(&mut preds, &x, &mut tract_out)?;
        }
    }

    // The largest call again in fresh processes (single thread only): glibc defaults, then
    // retaining freed memory.
    let mut fresh = Vec::new();
    if args.threads == 1 {
        let plan = args.plan_batch.map_or(max_b, |p| p.min(max_b));
        for retain in [false, true] {
            fresh.push((
                retain,
                time_fresh(&model, &input, max_b, plan, retain, args.lowering)?,
            ));
        }
    }

    // onnxruntime in Python.
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/lstm_ort.py");
    let ort_out = dir.path().join("ort.f32");
    let batches: Vec<String> = args.batches.iter().map(|b| b.to_string()).collect();
    let out = Command::new("python3")
        .arg(&script)
        .arg(&model)
        .arg(&input)
        .args([n.to_string(), seq.to_string(), feat.to_string()])
        .arg(&ort_out)
        .args(["--single-runs", &args.single_runs.to_string()])
        .args(["--batch-runs", &args.batch_runs.to_string()])
        .args(["--batches", &batches.join(",")])
        .args(["--threads", &args.threads.to_string()])
        .env("OMP_NUM_THREADS", args.threads.to_string())
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).map_err(|_| {
        format!(
            "reference script failed ({}); needs `pip install onnxruntime onnx`:\n{}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    if let Some(e) = v.get("error") {
        return Err(format!("reference script: {e}"));
    }
    let mut ort_single: Vec<f64> = v["single_us"]
        .as_array()
        .ok_or("no single_us")?
        .iter()
        .filter_map(|x| x.as_f64())
        .collect();
    let ort_probs: Vec<f32> = std::fs::read(&ort_out)
        .map_err(|e| e.to_string())?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if ort_probs.len() != n {
        return Err(format!(
            "onnxruntime gave {} outputs for {n}",
            ort_probs.len()
        ));
    }
    let diff = tract_out
        .iter()
        .zip(&ort_probs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);

    println!(
        "onnx.checker: {}; onnxruntime {}",
        v["checker"].as_str().unwrap_or("?"),
        v["ort_version"].as_str().unwrap_or("?")
    );
    let (t50, t99) = (
        quantile(&mut tract_single, 0.5),
        quantile(&mut tract_single, 0.99),
    );
    let (o50, o99) = (
        quantile(&mut ort_single, 0.5),
        quantile(&mut ort_single, 0.99),
    );
    println!(
        "{:<28} {:>12} {:>14} {:>10}",
        "", "tract", "onnxruntime", "tract/ort"
    );
    println!(
        "{:<28} {:>12.1} {:>14.1} {:>9.2}×",
        "batch 1 latency p50 (µs)",
        t50,
        o50,
        t50 / o50
    );
    println!(
        "{:<28} {:>12.1} {:>14.1} {:>9.2}×",
        "batch 1 latency p99 (µs)",
        t99,
        o99,
        t99 / o99
    );
    for (b, plan, t) in &tract_batch {
        let o = v["batch"][b.to_string()]["per_sample_us"]
            .as_f64()
            .ok_or("missing batch figure")?;
        let label = if plan == b {
            format!("batch {b}: µs per sample")
        } else {
            format!("batch {b} (plan {plan}): µs/sample")
        };
        println!("{:<28} {:>12.2} {:>14.2} {:>9.2}×", label, t, o, t / o);
    }
    let o = v["batch"][max_b.to_string()]["per_sample_us"]
        .as_f64()
        .ok_or("missing batch figure")?;
    for (retain, t) in &fresh {
        let label = if *retain {
            "  fresh process, retain"
        } else {
            "  fresh process, glibc dflt"
        };
        println!("{label:<28} {t:>12.2} {o:>14.2} {:>9.2}×", t / o);
    }
    println!("outputs: max |tract − onnxruntime| over {n} windows = {diff:.2e}");
    let mut spread: Vec<f64> = tract_out.iter().map(|&v| f64::from(v)).collect();
    println!(
        "outputs spread: p10 {:.3e}  median {:.3e}  p90 {:.3e}  max {:.3e}",
        quantile(&mut spread, 0.1),
        quantile(&mut spread, 0.5),
        quantile(&mut spread, 0.9),
        quantile(&mut spread, 1.0)
    );
    if let Some(w) = &weights {
        let r = x
            .chunks(wl)
            .zip(&tract_out)
            .map(|(c, t)| (reference::forward(w, c) - t).abs())
            .fold(0.0f32, f32::max);
        println!("outputs: max |tract − plain-Rust reference| = {r:.2e}");
    }
    if args.profile || args.describe {
        let plan = args.plan_batch.map_or(max_b, |p| p.min(max_b));
        let mut pred =
            Predictor::load_lowered(&model, PredictorOptions { batch: plan }, args.lowering)
                .map_err(|e| e.to_string())?;
        if args.describe {
            println!("tract optimised plan, batch {plan}:");
            for line in pred.describe_batch_plan() {
                println!("  {line}");
            }
        }
        if !args.profile {
            return Ok(());
        }
        let w = &x[..plan * wl];
        pred.profile_batch(w, 1).map_err(|e| e.to_string())?;
        let runs = (2048 / plan).clamp(3, 64);
        let nodes = pred.profile_batch(w, runs).map_err(|e| e.to_string())?;
        let total: f64 = nodes.iter().map(|n| n.micros).sum();
        for (scan, body) in pred.profile_scan_bodies(200).map_err(|e| e.to_string())? {
            let step: f64 = body.iter().map(|n| n.micros).sum();
            println!("  scan {scan}: one step of its body alone {step:.1} µs");
            for n in body.iter().filter(|n| n.micros >= 0.1) {
                println!("    {:>8.2} µs  {:<14} {}", n.micros, n.op, n.name);
            }
        }
        println!(
            "tract profile, plan {plan}, mean of {runs} runs: {total:.0} µs per run, {:.2} µs \
             per window",
            total / plan as f64
        );
        for n in nodes.iter().filter(|n| n.micros >= 0.005 * total) {
            println!(
                "  {:>10.1} µs {:>5.1} %  {:<14} {}",
                n.micros,
                100.0 * n.micros / total,
                n.op,
                n.name
            );
        }
    }
    Ok(())
}
