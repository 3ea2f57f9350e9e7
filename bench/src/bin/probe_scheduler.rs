//! Scheduler bench: 1,000 HTTP targets on loopback, each probed every 10 s.
//!
//! The targets are served by one child process (this binary re-run with `--serve`), one
//! listener per target, hand-written HTTP/1.1 with keep-alive. This process only probes, so
//! its own `/proc/self/stat` CPU time is medic's cost. Prints the scheduling lag (actual start
//! minus planned start) percentiles and medic's CPU share of one core.
//!
//! ```text
//! cargo run --release -p medic-bench --bin probe_scheduler -- [--targets 1000] [--seconds 60] [--every 10]
//! ```

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use medic_collect::probe::Prober;
use medic_collect::procfs::{self, SysConf};
use medic_collect::scheduler::{ScheduledProbe, Scheduler, SchedulerConfig, default_spec};
use medic_core::{Clock, ProbeLevel, SystemClock, TargetId};
use medic_policy::Check;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Opts {
    targets: usize,
    seconds: u64,
    every: u64,
    serve: bool,
}

fn opts() -> Opts {
    let mut o = Opts {
        targets: 1000,
        seconds: 60,
        every: 10,
        serve: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = || args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match args[i].as_str() {
            "--serve" => o.serve = true,
            "--targets" => o.targets = value().expect("--targets N") as usize,
            "--seconds" => o.seconds = value().expect("--seconds N"),
            "--every" => o.every = value().expect("--every SECONDS"),
            other => panic!("unknown argument {other}"),
        }
        if args[i] != "--serve" {
            i += 1;
        }
        i += 1;
    }
    o
}

fn main() {
    let o = opts();
    if o.serve {
        serve(o.targets);
    } else {
        probe(&o);
    }
}

/// The target side: `n` listeners; prints their ports, one per line, then "ready".
fn serve(n: usize) {
    // One worker thread serves every target; the main thread waits for the parent to close
    // our stdin.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut out = std::io::stdout().lock();
        for _ in 0..n {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            writeln!(out, "{}", listener.local_addr().unwrap().port()).unwrap();
            tokio::spawn(async move {
                while let Ok((conn, _)) = listener.accept().await {
                    tokio::spawn(answer(conn));
                }
            });
        }
        writeln!(out, "ready").unwrap();
        out.flush().unwrap();
    });
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
}

async fn answer(mut conn: tokio::net::TcpStream) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.clear();
        let reply = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n";
        if conn.write_all(reply).await.is_err() {
            return;
        }
    }
}

fn cpu_seconds(pid: u32, sys: SysConf) -> f64 {
    procfs::read_stat(pid)
        .map(|s| s.cpu_ticks() as f64 / sys.ticks_per_sec as f64)
        .unwrap_or(f64::NAN)
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn probe(o: &Opts) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--serve", "--targets", &o.targets.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the target server");
    let mut ports = Vec::with_capacity(o.targets);
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "ready" {
            break;
        }
        ports.push(line.parse::<u16>().unwrap());
    }
    assert_eq!(ports.len(), o.targets, "server did not start every target");

    let every = Duration::from_secs(o.every);
    let probes: Vec<ScheduledProbe> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let mut spec = default_spec(
                ProbeLevel::Liveness,
                Check::Http {
                    url: format!("http://127.0.0.1:{port}/health"),
                    status_min: 200,
                    status_max: 399,
                    body_contains: Some("ok".into()),
                    max_latency: None,
                },
            );
            spec.every = every;
            ScheduledProbe {
                target: TargetId::new(format!("target-{i:04}")),
                target_idx: i,
                slot: 0,
                spec,
            }
        })
        .collect();

    // Two workers: the machine has two cores and medic shares them with its targets.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sys = SysConf::get();
    let me = std::process::id();
    let clock = SystemClock;
    let (lags, n_ok, n_failed, started, cpu0, t0, t1, cpu1, skipped) = rt.block_on(async {
        let prober = Prober::with_defaults().unwrap();
        let scheduler = Scheduler::new(
            probes,
            SchedulerConfig {
                max_concurrent: 256,
                seed: 1,
            },
            prober,
            Arc::new(SystemClock),
        );
        let stats = scheduler.stats();
        let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
        let cpu0 = cpu_seconds(me, sys);
        let t0 = clock.now();
        let seconds = o.seconds;
        let run = tokio::spawn(scheduler.run(tx, async move {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
        }));
        let mut lags = Vec::with_capacity(o.targets * (o.seconds / o.every + 1) as usize);
        let (mut n_ok, mut n_failed) = (0u64, 0u64);
        while let Some(report) = rx.recv().await {
            lags.push(u64::try_from(report.lag().as_millis()).unwrap_or(u64::MAX));
            if report.result.outcome.is_ok() {
                n_ok += 1;
            } else {
                n_failed += 1;
                if n_failed <= 5 {
                    eprintln!("failed: {:?}", report.result);
                }
            }
        }
        run.await.unwrap();
        let t1 = clock.now();
        let cpu1 = cpu_seconds(me, sys);
        let started = stats.started.load(std::sync::atomic::Ordering::Relaxed);
        let skipped = stats
            .skipped_overlapping
            .load(std::sync::atomic::Ordering::Relaxed);
        (lags, n_ok, n_failed, started, cpu0, t0, t1, cpu1, skipped)
    });
    let server_cpu = cpu_seconds(child.id(), sys);
    drop(child.stdin.take());
    let _ = child.wait();

    let mut sorted = lags;
    sorted.sort_unstable();
    let wall = t1.since(t0).as_secs_f64();
    let cpu = cpu1 - cpu0;
    println!(
        "targets {} every {}s for {}s: {} probes started, {} ok, {} failed, {} skipped (overlap)",
        o.targets, o.every, o.seconds, started, n_ok, n_failed, skipped
    );
    println!(
        "scheduling lag ms: p50 {} p90 {} p99 {} max {}   (goal: p99 < 100)",
        percentile(&sorted, 0.50),
        percentile(&sorted, 0.90),
        percentile(&sorted, 0.99),
        sorted.last().copied().unwrap_or(0)
    );
    println!(
        "medic cpu: {cpu:.2} s over {wall:.1} s wall = {:.2} % of one core   (goal: < 10 %); \
         target server: {server_cpu:.2} s",
        100.0 * cpu / wall
    );
}
