//! `medic-demo-agent`: a small real HTTP service with realistic Prometheus metrics and faults
//! that can be injected by flag or over HTTP. `medic demo` supervises a fleet of them and the
//! end-to-end tests heal them.
//!
//! ## Running it
//!
//! ```text
//! medic-demo-agent --port 8101 --name worker-1 [--fault KIND]... [--leak-mb-per-s 10]
//!                  [--depends-on http://127.0.0.1:8100/health] [--state-dir DIR]
//! ```
//!
//! It binds `127.0.0.1` (`--host` to change), prints `listening on http://ADDR` as its first
//! line on stdout (with `--port 0` the OS picks a free port, so read it from there), and logs
//! to stderr. SIGTERM or SIGINT ends it at once with status 0.
//!
//! ## Endpoints
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /health` | 200 `ok`; 500 under the `errors` or `corrupt-state` fault |
//! | `GET /ready` | 200 `ready`; 503 when the dependency is down or the `dependency` fault is on |
//! | `GET /metrics` | Prometheus text format 0.0.4 (below) |
//! | `GET /` or `GET /work` | a simulated request: 5–30 ms of work plus latency creep; 500 under `errors` |
//! | `POST /fault/{kind}` | injects a fault: `crash`, `hang`, `leak`, `errors`, `slow`, `dependency`, `corrupt-state` |
//! | `POST /fault/clear` | clears `errors`, `slow`, `leak` (frees the memory) and `dependency` |
//! | `POST /admin/circuit/open` | opens the circuit: `/work` is refused with 503 at once (shed, not counted as a request or an error) until closed |
//! | `POST /admin/circuit/close` | closes the circuit: `/work` is served again |
//! | `GET /admin/circuit` | `open` or `closed` |
//!
//! ## Faults
//!
//! - `crash`: exits with status 1 right after answering the request that injected it
//!   (`--fault crash` exits at start-up: a crash loop under a supervisor).
//! - `hang`: every handler, `/health` included, waits forever; connections are accepted but
//!   never answered. Only a restart clears it.
//! - `leak`: really allocates and touches `--leak-mb-per-s` MiB per second (default 10), so RSS
//!   grows steadily, up to `--leak-limit-mb` (default 2048) to protect the machine. With
//!   `--oom-at-mb N` the agent plays the OOM killer: once its RSS reaches N MiB it exits with
//!   status 137, so a leak that is not healed in time ends in a crash.
//! - `errors`: `/work` and `/health` answer 500 and `demo_errors_total` rises.
//! - `slow`: latency creep; `/work` gets `--slow-ms-per-s` ms slower every second (default 25),
//!   up to `--slow-max-ms` (default 10000). The queue depth grows as requests overlap.
//! - `dependency`: `/ready` reports the dependency down. With `--depends-on URL` the agent also
//!   checks `URL` (default path `/health`) every second, and `/ready` fails while it does not
//!   answer 2xx.
//! - `corrupt-state`: writes a marker into `--state-dir` and behaves like `errors`; the marker
//!   survives restarts and `POST /fault/clear`, so only removing the state directory (the
//!   `reset` strategy) heals it.
//!
//! ## Circuit
//!
//! The circuit is how an operator (or medic's `circuit_break` action and its `close`) stops
//! sending work to the agent without stopping it: while it is open, `/work` answers 503
//! `circuit open` immediately, the background load keeps knocking but its refused requests
//! count only in `demo_shed_total`, so the error rate is not fed by them. `/health` and
//! `/ready` do not follow the circuit: they say whether the agent *could* serve, which is what
//! a half-open probe asks. The state is not persisted (a restarted agent starts closed).
//!
//! ## Metrics
//!
//! `demo_request_duration_seconds` (histogram of `/work` latency, buckets 5 ms … 10 s),
//! `demo_requests_total`, `demo_errors_total`, `demo_queue_depth` (requests in flight),
//! `demo_leaked_bytes`, `demo_version{name,version}` (always 1; `--app-version` sets the label),
//! `demo_dependency_up` (with `--depends-on`), `demo_circuit_open`, `demo_shed_total`,
//! `demo_starts` (with `--state-dir`: starts recorded there), `process_resident_memory_bytes`
//! (from `/proc/self/statm`),
//! `process_cpu_seconds_total`, `process_open_fds`, and `demo_fault_active{kind}`: the injected
//! faults, as ground truth for labelling recorded data; it is not a symptom and detectors must
//! not use it.
//!
//! ## Background load
//!
//! The agent sends itself `--load-rps` requests per second on `/work` (default 4; 0 disables),
//! each in its own task with a 30 s deadline and at most 64 in flight, so its metrics move
//! without any external client and overlapping slow requests show up as queue depth.

mod client;
mod fault;
mod metrics;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Parser;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::client::HttpUrl;
use crate::fault::{FaultKind, Faults};
use crate::metrics::{Exposition, Metrics};

const CORRUPT_MARKER: &str = "corrupt-state";
const STARTS_FILE: &str = "starts";

/// A small HTTP service with Prometheus metrics and injectable faults.
#[derive(Debug, Parser)]
#[command(name = "medic-demo-agent", version)]
pub struct Args {
    /// Address to bind.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub host: IpAddr,
    /// Port to bind; 0 lets the OS choose (the address is printed on stdout).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// The agent's name, shown in logs and in the `demo_version` metric.
    #[arg(long, default_value = "demo-agent")]
    pub name: String,
    /// The version label of the `demo_version` metric.
    #[arg(long, default_value = "1.0.0")]
    pub app_version: String,
    /// Start with this fault (repeatable).
    #[arg(long = "fault", value_enum)]
    pub faults: Vec<FaultKind>,
    /// MiB allocated per second while the leak fault is on.
    #[arg(long, default_value_t = 10.0)]
    pub leak_mb_per_s: f64,
    /// The leak stops growing at this many MiB.
    #[arg(long, default_value_t = 2048)]
    pub leak_limit_mb: u64,
    /// Simulate the OOM killer: exit with status 137 once RSS reaches this many MiB.
    #[arg(long)]
    pub oom_at_mb: Option<u64>,
    /// Milliseconds of latency added per second while the slow fault is on.
    #[arg(long, default_value_t = 25)]
    pub slow_ms_per_s: u64,
    /// Latency creep stops growing at this many milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub slow_max_ms: u64,
    /// A service this one needs, e.g. `http://127.0.0.1:8100/health`; `/ready` fails while it
    /// does not answer 2xx.
    #[arg(long)]
    pub depends_on: Option<String>,
    /// Directory for persistent state (start counter, corrupt-state marker); created if missing.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Requests per second the agent sends itself on `/work`; 0 disables.
    #[arg(long, default_value_t = 4.0)]
    pub load_rps: f64,
    /// Exit with status 1 at start-up while this file exists: a crash loop that no restart,
    /// reset or recreate fixes (a human has to remove the file), as `medic demo` uses it.
    #[arg(long)]
    pub crash_marker: Option<PathBuf>,
    /// Seed of the simulated work latencies (default: the port).
    #[arg(long)]
    pub seed: Option<u64>,
}

struct App {
    name: String,
    version: String,
    faults: Faults,
    metrics: Metrics,
    leak_chunk: usize,
    leak_limit: u64,
    leaked: Mutex<Vec<Vec<u8>>>,
    oom_at: Option<u64>,
    slow_ms_per_s: u64,
    slow_max: Duration,
    dependency: Option<HttpUrl>,
    dependency_up: AtomicBool,
    circuit_open: AtomicBool,
    state_dir: Option<PathBuf>,
    starts: Option<u64>,
    rng: Mutex<ChaCha8Rng>,
}

/// The wall clock: this is a real service measuring its own request latency and fault age.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

impl App {
    fn inject(self: &Arc<Self>, kind: FaultKind) -> String {
        eprintln!("{}: fault {} injected", self.name, kind.as_str());
        match kind {
            FaultKind::Crash => {
                self.faults.crash.store(true, Ordering::Relaxed);
                let name = self.name.clone();
                // Give the response that injected the crash time to leave, then die.
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    eprintln!("{name}: crashing (crash fault)");
                    std::process::exit(1);
                });
            }
            FaultKind::Hang => self.faults.hang.store(true, Ordering::Relaxed),
            FaultKind::Leak => self.faults.leak.store(true, Ordering::Relaxed),
            FaultKind::Errors => self.faults.errors.store(true, Ordering::Relaxed),
            FaultKind::Slow => self.faults.start_slow(now()),
            FaultKind::Dependency => self.faults.dependency.store(true, Ordering::Relaxed),
            FaultKind::CorruptState => {
                self.faults.corrupt_state.store(true, Ordering::Relaxed);
                match &self.state_dir {
                    Some(dir) => {
                        if let Err(e) = std::fs::write(dir.join(CORRUPT_MARKER), b"corrupt\n") {
                            eprintln!("{}: cannot persist corrupt state: {e}", self.name);
                            return "fault corrupt-state injected (not persisted: write failed)"
                                .to_owned();
                        }
                    }
                    None => {
                        return "fault corrupt-state injected (not persisted: no --state-dir)"
                            .to_owned();
                    }
                }
            }
        }
        format!("fault {} injected", kind.as_str())
    }

    fn clear(&self) {
        self.faults.clear();
        let mut leaked = self.leaked.lock().unwrap_or_else(|e| e.into_inner());
        leaked.clear();
        leaked.shrink_to_fit();
        self.metrics.leaked_bytes.store(0, Ordering::Relaxed);
        eprintln!("{}: faults cleared", self.name);
    }

    fn dependency_down(&self) -> bool {
        self.faults.dependency.load(Ordering::Relaxed)
            || (self.dependency.is_some() && !self.dependency_up.load(Ordering::Relaxed))
    }
}

/// Under the hang fault nothing answers: every request waits here forever.
async fn hang_gate(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if app.faults.hang.load(Ordering::Relaxed) {
        std::future::pending::<()>().await;
    }
    next.run(req).await
}

async fn health(State(app): State<Arc<App>>) -> (StatusCode, &'static str) {
    if app.faults.failing() {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "error: simulated failure\n",
        )
    } else {
        (StatusCode::OK, "ok\n")
    }
}

async fn ready(State(app): State<Arc<App>>) -> (StatusCode, &'static str) {
    if app.dependency_down() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: dependency down\n",
        )
    } else {
        (StatusCode::OK, "ready\n")
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let text = metrics::render(
        &app.metrics,
        &Exposition {
            name: &app.name,
            version: &app.version,
            faults: &app.faults,
            dependency_up: app.dependency.as_ref().map(|_| !app.dependency_down()),
            starts: app.starts,
            circuit_open: app.circuit_open.load(Ordering::Relaxed),
        },
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Keeps `demo_queue_depth` right even when the client goes away mid-request.
struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.queue_depth.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn work(State(app): State<Arc<App>>) -> (StatusCode, &'static str) {
    if app.circuit_open.load(Ordering::Relaxed) {
        app.metrics.shed.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "circuit open: not taking work\n",
        );
    }
    let start = now();
    app.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
    let _in_flight = InFlight(&app.metrics);
    let base = {
        let mut rng = app.rng.lock().unwrap_or_else(|e| e.into_inner());
        Duration::from_millis(rng.random_range(5..=30))
    };
    let creep = app
        .faults
        .slow_delay(start, app.slow_ms_per_s, app.slow_max);
    tokio::time::sleep(base + creep).await;
    let failing = app.faults.failing();
    app.metrics.requests.fetch_add(1, Ordering::Relaxed);
    if failing {
        app.metrics.errors.fetch_add(1, Ordering::Relaxed);
    }
    app.metrics.observe(now().saturating_duration_since(start));
    if failing {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "error: simulated failure\n",
        )
    } else {
        (StatusCode::OK, "done\n")
    }
}

async fn fault(State(app): State<Arc<App>>, Path(kind): Path<String>) -> (StatusCode, String) {
    if kind == "clear" {
        app.clear();
        return (StatusCode::OK, "faults cleared\n".to_owned());
    }
    match FaultKind::parse(&kind) {
        Some(k) => (StatusCode::OK, format!("{}\n", app.inject(k))),
        None => {
            let kinds: Vec<&str> = FaultKind::ALL.iter().map(|k| k.as_str()).collect();
            (
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown fault {kind:?}; expected one of {}, or clear\n",
                    kinds.join(", ")
                ),
            )
        }
    }
}

/// `POST /admin/circuit/{open|close}`: stops or resumes taking work.
async fn set_circuit(
    State(app): State<Arc<App>>,
    Path(state): Path<String>,
) -> (StatusCode, String) {
    let open = match state.as_str() {
        "open" => true,
        "close" | "closed" => false,
        other => {
            return (
                StatusCode::BAD_REQUEST,
                format!("unknown circuit state {other:?}; expected open or close\n"),
            );
        }
    };
    let was = app.circuit_open.swap(open, Ordering::Relaxed);
    let state = if open { "open" } else { "closed" };
    if was != open {
        eprintln!("{}: circuit {state}", app.name);
    }
    (StatusCode::OK, format!("circuit {state}\n"))
}

/// `GET /admin/circuit`: `open` or `closed`.
async fn circuit(State(app): State<Arc<App>>) -> &'static str {
    if app.circuit_open.load(Ordering::Relaxed) {
        "open\n"
    } else {
        "closed\n"
    }
}

/// Allocates and touches memory ten times a second while the leak fault is on, and plays the
/// OOM killer when `--oom-at-mb` is reached.
async fn leak_task(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        if let (Some(limit), Some(rss)) = (app.oom_at, metrics::resident_bytes())
            && rss >= limit
        {
            eprintln!(
                "{}: out of memory: RSS {} MiB reached --oom-at-mb {}; exiting with 137",
                app.name,
                rss >> 20,
                limit >> 20
            );
            std::process::exit(137);
        }
        if !app.faults.leak.load(Ordering::Relaxed) {
            continue;
        }
        let held = app.metrics.leaked_bytes.load(Ordering::Relaxed);
        let room = usize::try_from(app.leak_limit.saturating_sub(held)).unwrap_or(usize::MAX);
        let n = app.leak_chunk.min(room);
        if n == 0 {
            continue;
        }
        // A non-zero fill writes every page, so the kernel really backs them: RSS grows.
        let chunk = vec![0x5Au8; n];
        app.leaked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(chunk);
        app.metrics
            .leaked_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Sends the agent's own background load.
async fn load_task(authority: String, rps: f64) {
    let period = Duration::from_secs_f64(1.0 / rps);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let permits = Arc::new(tokio::sync::Semaphore::new(64));
    loop {
        tick.tick().await;
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        let authority = authority.clone();
        tokio::spawn(async move {
            let _ = client::get_status(&authority, "/work", Duration::from_secs(30)).await;
            drop(permit);
        });
    }
}

/// Checks the dependency every second.
async fn dependency_task(app: Arc<App>, url: HttpUrl) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let up = matches!(
            client::get_status(&url.authority, &url.path, Duration::from_millis(800)).await,
            Ok(200..=299)
        );
        let was = app.dependency_up.swap(up, Ordering::Relaxed);
        if was != up {
            let state = if up { "up" } else { "down" };
            eprintln!("{}: dependency {} is {state}", app.name, url.authority);
        }
    }
}

/// Ends the process at once on SIGTERM or SIGINT: nothing needs flushing, and waiting for
/// in-flight requests would wait forever under the hang fault.
async fn exit_on_signal(app: Arc<App>) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: cannot listen for SIGTERM: {e}", app.name);
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!("{}: stopping on signal", app.name);
    std::process::exit(0);
}

/// Reads the state directory: bumps the start counter, finds a corrupt-state marker.
fn load_state(dir: &std::path::Path) -> anyhow::Result<(u64, bool)> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating state directory {}", dir.display()))?;
    let starts_path = dir.join(STARTS_FILE);
    let starts = match std::fs::read_to_string(&starts_path) {
        Ok(s) => s.trim().parse::<u64>().unwrap_or(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => {
            return Err(e).with_context(|| format!("reading {}", starts_path.display()));
        }
    } + 1;
    std::fs::write(&starts_path, format!("{starts}\n"))
        .with_context(|| format!("writing {}", starts_path.display()))?;
    Ok((starts, dir.join(CORRUPT_MARKER).exists()))
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/", get(work))
        .route("/work", get(work))
        .route("/fault/{kind}", post(fault))
        .route("/admin/circuit", get(circuit))
        .route("/admin/circuit/{state}", post(set_circuit))
        .layer(middleware::from_fn_with_state(app.clone(), hang_gate))
        .with_state(app)
}

/// Runs the agent until SIGTERM/SIGINT (or a `crash` fault, which exits the process).
///
/// # Errors
/// Invalid arguments, an unreadable state directory, or a port that cannot be bound.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if !(args.leak_mb_per_s.is_finite() && args.leak_mb_per_s > 0.0) {
        anyhow::bail!("--leak-mb-per-s must be a positive number");
    }
    if !(args.load_rps.is_finite() && args.load_rps >= 0.0) {
        anyhow::bail!("--load-rps must be zero or a positive number");
    }
    let dependency = args
        .depends_on
        .as_deref()
        .map(HttpUrl::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--depends-on {e}"))?;
    let (starts, corrupt) = match &args.state_dir {
        Some(dir) => {
            let (starts, corrupt) = load_state(dir)?;
            (Some(starts), corrupt)
        }
        None => (None, false),
    };
    if let Some(marker) = &args.crash_marker
        && marker.exists()
    {
        eprintln!(
            "{}: crashing at start-up ({} exists)",
            args.name,
            marker.display()
        );
        std::process::exit(1);
    }
    if args.faults.contains(&FaultKind::Crash) {
        eprintln!("{}: crashing at start-up (crash fault)", args.name);
        std::process::exit(1);
    }

    let addr = SocketAddr::new(args.host, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;

    let app = Arc::new(App {
        name: args.name.clone(),
        version: args.app_version.clone(),
        faults: Faults::default(),
        metrics: Metrics::default(),
        leak_chunk: ((args.leak_mb_per_s * 1024.0 * 1024.0 / 10.0) as usize).max(4096),
        leak_limit: args.leak_limit_mb.saturating_mul(1024 * 1024),
        leaked: Mutex::new(Vec::new()),
        oom_at: args.oom_at_mb.map(|mb| mb.saturating_mul(1024 * 1024)),
        slow_ms_per_s: args.slow_ms_per_s,
        slow_max: Duration::from_millis(args.slow_max_ms),
        dependency: dependency.clone(),
        dependency_up: AtomicBool::new(false),
        circuit_open: AtomicBool::new(false),
        state_dir: args.state_dir.clone(),
        starts,
        rng: Mutex::new(ChaCha8Rng::seed_from_u64(
            args.seed.unwrap_or(u64::from(local.port())),
        )),
    });
    if corrupt {
        app.faults.corrupt_state.store(true, Ordering::Relaxed);
        eprintln!("{}: corrupt state found in the state directory", app.name);
    }
    for k in &args.faults {
        app.inject(*k);
    }

    tokio::spawn(exit_on_signal(app.clone()));
    tokio::spawn(leak_task(app.clone()));
    if let Some(url) = dependency {
        tokio::spawn(dependency_task(app.clone(), url));
    }
    if args.load_rps > 0.0 {
        tokio::spawn(load_task(local.to_string(), args.load_rps));
    }

    // The first stdout line is the contract with whoever started us (tests, `medic demo`).
    println!("listening on http://{local}");
    eprintln!(
        "{}: listening on http://{local} (version {})",
        app.name, app.version
    );
    axum::serve(listener, router(app))
        .await
        .context("serving HTTP")?;
    Ok(())
}
