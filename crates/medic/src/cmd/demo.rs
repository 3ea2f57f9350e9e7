//! `medic demo`: seven real demo agents under supervision, the daemon with the shipped
//! policies, a scripted series of faults, and a table of what medic did about each.
//!
//! Everything runs on this machine, on loopback, from this one binary (`medic demo-agent`
//! is the agent). The faults are real: a process that exits, an HTTP service that stops
//! answering, a process stopped with SIGSTOP, memory that is really allocated, a burst of
//! failing requests (medic opens the circuit: the agent stops taking work until a half-open
//! probe passes), and a crash loop that no restart can fix (a marker file makes every start
//! fail).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use medic_core::{Clock, SystemClock, Timestamp};
use medic_driver::daemon::{self, DaemonHandle, DaemonOptions, DaemonSnapshot, IncidentRecord};
use serde::Serialize;

use super::run::{LogFormat, init_logging};

/// The shipped tier policies, embedded so the demo runs from anywhere.
const SHIPPED_TIERS: &str = include_str!("../../../../policies/tiers.yaml");

/// Added to the embedded policies: the gateway's circuit stays open 5 s instead of the shipped
/// 60 s, so the demo shows a whole open → half-open → closed cycle within its time.
const DEMO_TIER: &str =
    "\n  demo_gateway:\n    agents: [gateway]\n    policy:\n      circuit_break_duration: 5s\n";

/// Arguments of `medic demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Print the table as JSON lines and a final summary line.
    #[arg(long)]
    pub json: bool,
    /// Keep the daemon, agents and dashboard running after the script (Ctrl-C ends).
    #[arg(long)]
    pub keep: bool,
    /// Policies directory (default: the shipped policies, embedded).
    #[arg(long)]
    pub policies: Option<PathBuf>,
    /// API and dashboard address (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// Give up waiting for the faults to be dealt with after this many seconds.
    #[arg(long, default_value_t = 100)]
    pub timeout: u64,
    /// Also show the daemon's logs (RUST_LOG filters them).
    #[arg(long)]
    pub verbose: bool,
    /// Directory of the learned models (default: the first of `models/` next to this
    /// executable, `./models`, and the shipped `models/` of the checkout this binary was
    /// built from that holds a model file). With the default 60 s model step the demo is
    /// over before a model's first window is complete; its faults are found by probes,
    /// exits and the RSS trend.
    #[arg(long)]
    pub models: Option<PathBuf>,
}

/// The files a models directory may hold (see `medic_driver::daemon::model`).
const MODEL_FILES: [&str; 2] = ["failure_lstm.onnx", "anomaly_iforest.json"];

/// Where the demo looks for models without `--models`, in order: `models/` next to the
/// executable (a binary copied elsewhere with its models), `./models`, and the checkout this
/// binary was built from (which may no longer exist).
fn model_candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(parent) = exe.parent()
    {
        dirs.push(parent.join("models"));
    }
    dirs.push(PathBuf::from("models"));
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    dirs
}

/// The first of `candidates` that holds a model file.
fn find_models(candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates
        .iter()
        .find(|d| MODEL_FILES.iter().any(|f| d.join(f).is_file()))
        .cloned()
}

/// How a fault is injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Injection {
    /// `POST /fault/{kind}` on the agent.
    Http(&'static str),
    /// SIGSTOP to the agent's process.
    Stop,
    /// Create the crash marker, then `POST /fault/crash`: every later start fails.
    CrashLoop,
    /// `POST /fault/errors`; the cause goes away (`POST /fault/clear`) once medic has opened
    /// the circuit, so the half-open probe that follows can pass.
    ErrorBurst,
}

/// One scripted fault.
struct Fault {
    at: Duration,
    target: &'static str,
    name: &'static str,
    injection: Injection,
    /// `false`: medic should escalate to a human rather than heal it.
    healable: bool,
}

const SCRIPT: [Fault; 6] = [
    Fault {
        at: Duration::from_secs(2),
        target: "crewai-1",
        name: "crash",
        injection: Injection::Http("crash"),
        healable: true,
    },
    Fault {
        at: Duration::from_secs(4),
        target: "shellgpt-1",
        name: "crash loop",
        injection: Injection::CrashLoop,
        healable: false,
    },
    Fault {
        at: Duration::from_secs(6),
        target: "semgrep-1",
        name: "hang",
        injection: Injection::Http("hang"),
        healable: true,
    },
    Fault {
        at: Duration::from_secs(8),
        target: "worker-1",
        name: "memory leak",
        injection: Injection::Http("leak"),
        healable: true,
    },
    Fault {
        at: Duration::from_secs(10),
        target: "gateway-1",
        name: "error burst",
        injection: Injection::ErrorBurst,
        healable: true,
    },
    Fault {
        at: Duration::from_secs(12),
        target: "vectordb",
        name: "dependency stopped (SIGSTOP)",
        injection: Injection::Stop,
        healable: true,
    },
];

/// One row of the final table.
#[derive(Clone, Debug, Serialize)]
struct Row {
    fault: &'static str,
    target: &'static str,
    detected_after_s: Option<f64>,
    how: Option<String>,
    strategy: Option<String>,
    healed_after_s: Option<f64>,
    preemptive: bool,
    escalated: bool,
    expected: &'static str,
    ok: bool,
}

/// The final summary.
#[derive(Debug, Serialize)]
struct Summary {
    faults: usize,
    healed: usize,
    escalated: usize,
    mttr_s: Option<f64>,
    dependent_untouched: bool,
    ok: bool,
    dashboard: Option<String>,
}

struct Agent {
    name: &'static str,
    labels: &'static str,
    port: u16,
    extra: Vec<String>,
    depends_on: Option<&'static str>,
    resources: Option<&'static str>,
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// Writes the demo fleet; returns the agents' ports by name.
fn write_fleet(dir: &Path, exe: &Path) -> anyhow::Result<Vec<(&'static str, u16)>> {
    let mut ports = Vec::new();
    let mut agents = Vec::new();
    let vectordb_port = free_port()?;
    let marker = dir.join("shellgpt-1.crash-marker");
    let specs: [(&str, &str, Option<&str>, Option<&str>); 7] = [
        ("vectordb", "database", None, None),
        ("crewai-1", "crewai", None, None),
        ("crewai-2", "crewai", Some("vectordb"), None),
        ("semgrep-1", "semgrep", None, None),
        ("shellgpt-1", "shellgpt", None, None),
        ("worker-1", "worker", None, Some("300Mi")),
        ("gateway-1", "gateway", None, None),
    ];
    for (name, kind, depends_on, resources) in specs {
        let port = if name == "vectordb" {
            vectordb_port
        } else {
            free_port()?
        };
        let mut extra = vec!["--load-rps".to_owned(), "4".to_owned()];
        if depends_on.is_some() {
            extra.push("--depends-on".into());
            extra.push(format!("http://127.0.0.1:{vectordb_port}/health"));
        }
        if name == "shellgpt-1" {
            extra.push("--crash-marker".into());
            extra.push(marker.display().to_string());
        }
        if name == "worker-1" {
            extra.extend(["--leak-mb-per-s", "16", "--oom-at-mb", "360"].map(String::from));
        }
        ports.push((name, port));
        agents.push(Agent {
            name,
            labels: kind,
            port,
            extra,
            depends_on,
            resources,
        });
    }
    let mut y = String::from("# Written by `medic demo`.\ntargets:\n");
    for a in &agents {
        let base = format!("http://127.0.0.1:{}", a.port);
        let mut command = vec![
            exe.display().to_string(),
            "demo-agent".into(),
            "--port".into(),
            a.port.to_string(),
            "--name".into(),
            a.name.to_owned(),
        ];
        command.extend(a.extra.iter().cloned());
        let command: Vec<String> = command.iter().map(|c| yaml_str(c)).collect();
        let _ = writeln!(y, "  - name: {}", a.name);
        let _ = writeln!(y, "    labels: {{ type: {} }}", a.labels);
        let _ = writeln!(y, "    supervise: {{ command: [{}] }}", command.join(", "));
        let _ = writeln!(y, "    startup_delay: 100ms");
        let _ = writeln!(y, "    probes:");
        if a.name == "gateway-1" {
            // Failing requests are not a dead process: liveness is the supervised process,
            // readiness (/health, failing while requests fail) is the half-open probe, and
            // the circuit's actions are the agent's admin endpoints.
            let _ = writeln!(
                y,
                "      readiness: {{ http: {{ url: \"{base}/health\", timeout: 500ms }}, every: 1s, failure_threshold: 2 }}"
            );
        } else {
            let _ = writeln!(
                y,
                "      liveness: {{ http: {{ url: \"{base}/health\", timeout: 500ms }}, every: 1s, failure_threshold: 3 }}"
            );
        }
        if a.depends_on.is_some() {
            let _ = writeln!(
                y,
                "      readiness: {{ http: {{ url: \"{base}/ready\", timeout: 500ms }}, every: 1s, failure_threshold: 2 }}"
            );
        }
        if let Some(rss) = a.resources {
            let _ = writeln!(y, "      resources: {{ max_rss: {rss} }}");
        }
        let _ = writeln!(y, "    metrics: {{ url: \"{base}/metrics\", every: 1s }}");
        if let Some(d) = a.depends_on {
            let _ = writeln!(y, "    depends_on: [{d}]");
        }
        if a.name == "gateway-1" {
            let _ = writeln!(y, "    actions:");
            let _ = writeln!(y, "      circuit_break:");
            let _ = writeln!(
                y,
                "        http: {{ method: POST, url: \"{base}/admin/circuit/open\" }}"
            );
            let _ = writeln!(
                y,
                "        close: {{ http: {{ method: POST, url: \"{base}/admin/circuit/close\" }} }}"
            );
        }
    }
    std::fs::write(dir.join("fleet.yaml"), y).context("writing the demo fleet")?;
    Ok(ports)
}

/// Runs the demo.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.verbose {
        init_logging(LogFormat::Text);
    }
    let dir = tempfile::Builder::new()
        .prefix("medic-demo-")
        .tempdir()
        .context("creating a working directory")?;
    let exe = std::env::current_exe().context("finding the medic binary")?;
    let ports = write_fleet(dir.path(), &exe)?;
    let policies = match &args.policies {
        Some(p) => p.clone(),
        None => {
            let p = dir.path().join("policies");
            std::fs::create_dir_all(&p)?;
            std::fs::write(p.join("tiers.yaml"), format!("{SHIPPED_TIERS}{DEMO_TIER}"))?;
            p
        }
    };
    let mut options = DaemonOptions::new(
        dir.path().join("fleet.yaml"),
        policies,
        dir.path().join("data"),
    );
    options.tick = Duration::from_millis(100);
    options.listen = Some(args.listen);
    let candidates = model_candidates();
    options.models = args.models.clone().or_else(|| find_models(&candidates));
    if options.models.is_none() {
        let looked: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
        eprintln!(
            "medic demo: no models found (looked for {} in {}); running without them",
            MODEL_FILES.join(" and "),
            looked.join(", ")
        );
    }
    let fleet = daemon::load_fleet(&options).map_err(|e| anyhow::anyhow!("{e}"))?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let code = runtime.block_on(async {
        let handle = daemon::start(options, fleet)
            .await
            .map_err(|e| anyhow::anyhow!(medic_driver::error_text(&e)))?;
        // SIGINT or SIGTERM, during the script or while kept, stops the daemon cleanly so
        // that it stops the agents it supervises: none is left running.
        let mut stop = std::pin::pin!(stop_signal());
        let result = tokio::select! {
            result = script(&args, &handle, dir.path(), &ports) => result,
            () = &mut stop => {
                eprintln!("medic demo: interrupted; stopping the agents");
                Ok(ExitCode::from(130))
            }
        };
        if args.keep
            && result.is_ok()
            && let Some(addr) = handle.api_addr()
        {
            eprintln!("medic demo: dashboard at http://{addr}/ (Ctrl-C to stop)");
            stop.await;
        }
        handle.shutdown(Duration::from_secs(10)).await;
        result
    })?;
    Ok(code)
}

/// Resolves on the first SIGINT or SIGTERM (never, if neither handler can be installed).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

async fn inject(
    client: &reqwest::Client,
    handle: &DaemonHandle,
    fault: &Fault,
    port: u16,
    dir: &Path,
) -> anyhow::Result<()> {
    let url = |kind: &str| format!("http://127.0.0.1:{port}/fault/{kind}");
    match fault.injection {
        Injection::Http(_) | Injection::ErrorBurst => {
            let kind = if let Injection::Http(k) = fault.injection {
                k
            } else {
                "errors"
            };
            // A crash may close the connection before answering: that is the fault working.
            let _ = client
                .post(url(kind))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
        }
        Injection::CrashLoop => {
            std::fs::write(dir.join("shellgpt-1.crash-marker"), b"crash loop\n")?;
            let _ = client
                .post(url("crash"))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
        }
        Injection::Stop => {
            let target = medic_core::TargetId::new(fault.target);
            let pid = handle
                .supervisor()
                .pids(&target)
                .first()
                .copied()
                .context("the agent has no process to stop")?;
            let status = std::process::Command::new("kill")
                .args(["-STOP", &pid.to_string()])
                .status()
                .context("running kill -STOP")?;
            anyhow::ensure!(status.success(), "kill -STOP {pid} failed");
        }
    }
    Ok(())
}

fn incident_for<'a>(
    snap: &'a DaemonSnapshot,
    target: &str,
    since: Timestamp,
) -> Option<&'a IncidentRecord> {
    snap.incidents
        .iter()
        .find(|i| i.target.as_str() == target && i.detected_at >= since)
}

fn secs(from: Timestamp, to: Timestamp) -> f64 {
    (to.since(from).as_secs_f64() * 100.0).round() / 100.0
}

async fn script(
    args: &Args,
    handle: &DaemonHandle,
    dir: &Path,
    ports: &[(&'static str, u16)],
) -> anyhow::Result<ExitCode> {
    let clock = SystemClock;
    let client = medic_collect::http::client().context("building an HTTP client")?;
    let dashboard = handle.api_addr().map(|a| format!("http://{a}/"));
    eprintln!(
        "medic demo: {} agents under supervision; dashboard {}",
        ports.len(),
        dashboard.as_deref().unwrap_or("off")
    );
    if handle.models() == "none" {
        eprintln!("medic demo: models: none loaded");
    } else {
        eprintln!(
            "medic demo: models: {} (a model needs a full window of real steps: with the \
             default 60 s step that is longer than the demo, whose faults are found by \
             probes, exits and the RSS trend)",
            handle.models()
        );
    }
    // Let every agent come up and be seen healthy once.
    let start = clock.now();
    loop {
        let snap = handle.snapshot();
        let healthy = snap
            .targets
            .iter()
            .filter(|t| t.state == medic_core::HealthState::Healthy)
            .count();
        if healthy == ports.len() {
            break;
        }
        if clock.now().since(start) > Duration::from_secs(30) {
            anyhow::bail!("the demo agents did not become healthy within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "medic demo: all healthy after {:.1}s; injecting faults",
        secs(start, clock.now())
    );
    let t0 = clock.now();
    let mut injected: Vec<Option<Timestamp>> = vec![None; SCRIPT.len()];
    let mut cleared = vec![false; SCRIPT.len()];
    let mut seen_incidents = 0usize;
    let mut seen_actions = 0usize;
    let deadline = t0 + Duration::from_secs(args.timeout);
    loop {
        let now = clock.now();
        for (k, fault) in SCRIPT.iter().enumerate() {
            if injected[k].is_none() && now >= t0 + fault.at {
                let port = ports
                    .iter()
                    .find(|(n, _)| *n == fault.target)
                    .map(|(_, p)| *p)
                    .unwrap_or(0);
                inject(&client, handle, fault, port, dir).await?;
                injected[k] = Some(clock.now());
                eprintln!(
                    "  +{:>5.1}s  inject   {:<11} {}",
                    secs(t0, clock.now()),
                    fault.target,
                    fault.name
                );
            }
        }
        let snap = handle.snapshot();
        for (k, fault) in SCRIPT.iter().enumerate() {
            if fault.injection != Injection::ErrorBurst || injected[k].is_none() || cleared[k] {
                continue;
            }
            let open = snap
                .targets
                .iter()
                .any(|t| t.name.as_str() == fault.target && t.circuit_open());
            if open {
                let port = ports
                    .iter()
                    .find(|(n, _)| *n == fault.target)
                    .map_or(0, |(_, p)| *p);
                let _ = client
                    .post(format!("http://127.0.0.1:{port}/fault/clear"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await;
                cleared[k] = true;
                eprintln!(
                    "  +{:>5.1}s  clear    {:<11} {} over (the circuit is open; a half-open probe follows)",
                    secs(t0, clock.now()),
                    fault.target,
                    fault.name
                );
            }
        }
        for inc in snap.incidents.iter().skip(seen_incidents) {
            eprintln!(
                "  +{:>5.1}s  detect   {:<11} {} ({})",
                secs(t0, inc.detected_at),
                inc.target,
                inc.summary,
                inc.detected_by
            );
        }
        seen_incidents = snap.incidents.len().max(seen_incidents);
        for a in snap.actions.iter().skip(seen_actions) {
            eprintln!(
                "  +{:>5.1}s  act      {:<11} {}: {}",
                secs(t0, a.started_at),
                a.target,
                a.kind,
                a.reason
            );
        }
        seen_actions = snap.actions.len().max(seen_actions);
        let rows = table(&snap, &injected);
        let all_injected = injected.iter().all(Option::is_some);
        if all_injected && rows.iter().all(|r| r.ok) || now >= deadline {
            return finish(args, &snap, rows, dashboard, t0);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn table(snap: &DaemonSnapshot, injected: &[Option<Timestamp>]) -> Vec<Row> {
    SCRIPT
        .iter()
        .zip(injected)
        .map(|(fault, at)| {
            let inc = at.and_then(|at| incident_for(snap, fault.target, at));
            let healed_at = inc.and_then(|i| i.healed_at);
            let escalated = inc.is_some_and(|i| i.escalated);
            let ok = if fault.healable {
                healed_at.is_some()
            } else {
                escalated
            };
            Row {
                fault: fault.name,
                target: fault.target,
                detected_after_s: at.zip(inc).map(|(a, i)| secs(a, i.detected_at)),
                how: inc.map(|i| i.detected_by.clone()),
                strategy: inc.and_then(|i| i.strategy).map(|s| s.as_str().to_owned()),
                healed_after_s: at.zip(healed_at).map(|(a, h)| secs(a, h)),
                preemptive: inc.is_some_and(|i| i.preemptive),
                escalated,
                expected: if fault.healable {
                    "healed"
                } else {
                    "escalated"
                },
                ok,
            }
        })
        .collect()
}

fn finish(
    args: &Args,
    snap: &DaemonSnapshot,
    rows: Vec<Row>,
    dashboard: Option<String>,
    t0: Timestamp,
) -> anyhow::Result<ExitCode> {
    // The dependent of the stopped dependency must not have been acted on.
    let dependent_untouched = !snap
        .actions
        .iter()
        .any(|a| a.target.as_str() == "crewai-2" && a.started_at >= t0);
    let healed: Vec<f64> = rows
        .iter()
        .filter(|r| r.expected == "healed")
        .filter_map(|r| r.healed_after_s)
        .collect();
    let mttr_s = (!healed.is_empty())
        .then(|| (healed.iter().sum::<f64>() / healed.len() as f64 * 100.0).round() / 100.0);
    let summary = Summary {
        faults: rows.len(),
        healed: healed.len(),
        escalated: rows.iter().filter(|r| r.escalated).count(),
        mttr_s,
        dependent_untouched,
        ok: rows.iter().all(|r| r.ok) && dependent_untouched,
        dashboard: args.keep.then_some(dashboard).flatten(),
    };
    if args.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}s"));
        println!();
        println!(
            "{:<30} {:<11} {:>9} {:<16} {:<13} {:>9} {:<10} result",
            "fault", "target", "detected", "how", "strategy", "healed", "preempt"
        );
        for r in &rows {
            println!(
                "{:<30} {:<11} {:>9} {:<16} {:<13} {:>9} {:<10} {}",
                r.fault,
                r.target,
                opt(r.detected_after_s),
                r.how.as_deref().unwrap_or("-"),
                r.strategy.as_deref().unwrap_or("-"),
                opt(r.healed_after_s),
                if r.preemptive { "yes" } else { "no" },
                match (r.ok, r.escalated) {
                    (true, true) => "escalated to a human (as expected)",
                    (true, false) => "healed",
                    (false, _) => "NOT DONE",
                }
            );
        }
        println!();
        println!(
            "faults {}  healed {}  escalated {}  MTTR {}  dependent crewai-2 left alone: {}",
            summary.faults,
            summary.healed,
            summary.escalated,
            opt(summary.mttr_s),
            if dependent_untouched { "yes" } else { "NO" }
        );
    }
    Ok(if summary.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
