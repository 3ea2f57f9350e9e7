//! `medic run`: the daemon.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use medic_driver::daemon::{self, DaemonOptions};
use tokio::signal::unix::{SignalKind, signal};

/// Log line format.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Arguments of `medic run`.
#[derive(clap::Args)]
pub struct Args {
    /// The fleet file.
    #[arg(long, default_value = "policies/fleet.example.yaml")]
    pub fleet: PathBuf,
    /// The directory of tier policies.
    #[arg(long, default_value = "policies")]
    pub policies: PathBuf,
    /// Where the store (samples, incidents, action journal) lives.
    #[arg(long, default_value = "medic-data")]
    pub data_dir: PathBuf,
    /// Address of the HTTP API and dashboard (keep it on loopback unless a proxy guards it).
    #[arg(long, default_value_t = medic_api::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Run without the HTTP API.
    #[arg(long)]
    pub no_api: bool,
    /// Decide and journal, but execute nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// File holding the API token for mutating endpoints (else env MEDIC_API_TOKEN; without
    /// either they answer 403).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Notification config (YAML: webhooks, alertmanager, cooldown; see README).
    #[arg(long)]
    pub notify: Option<PathBuf>,
    /// Also post notifications to this JSON webhook (repeatable).
    #[arg(long)]
    pub webhook: Vec<String>,
    /// Also post alerts to this Alertmanager base URL (repeatable).
    #[arg(long)]
    pub alertmanager: Vec<String>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Directory of the learned models (`failure_lstm.onnx` with its card,
    /// `anomaly_iforest.json`); without them the daemon runs on probes and trends.
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// The outcome model (`medic train signatures`) the strategy learner starts from;
    /// without it, `outcome_signatures.json` in the data directory, else in `--models`, when
    /// present. A file given here that is corrupt or does not fit the fleet stops the start.
    #[arg(long, value_name = "FILE")]
    pub signatures: Option<PathBuf>,
    /// How long samples and health transitions are kept in the store, e.g. `7d`, `12h`,
    /// `300s`; older ones are pruned at start and every hour. The action journal and
    /// incidents are kept regardless.
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_retention)]
    pub retention: Duration,
}

/// A retention: a policy-style duration (`300s`, `5m`, `7d`), longer than zero.
fn parse_retention(text: &str) -> Result<Duration, String> {
    let d = medic_policy::parse_duration(text).map_err(|e| format!("{text:?}: {e}"))?;
    if d.is_zero() {
        return Err(format!("{text:?}: a retention must be longer than 0s"));
    }
    Ok(d)
}

/// Sets up logging: `RUST_LOG` or `info`, to stderr.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Reads the notification settings from the config file and the flags.
pub fn notify_settings(
    file: Option<&Path>,
    webhooks: &[String],
    alertmanagers: &[String],
) -> anyhow::Result<medic_notify::NotifySettings> {
    let mut config: medic_notify::NotifyConfig = match file {
        Some(path) => {
            // Read as the policy files are: a size cap, the place of a byte that is not UTF-8.
            let text = medic_policy::yaml::read_yaml_file(path, &path.display().to_string())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            serde_saphyr::from_str(&text).with_context(|| format!("{}", path.display()))?
        }
        None => serde_saphyr::from_str("{}").context("empty notification config")?,
    };
    for url in webhooks {
        config.webhooks.push(medic_notify::WebhookConfig {
            url: url.clone(),
            headers: Default::default(),
        });
    }
    for url in alertmanagers {
        config.alertmanager.push(medic_notify::AlertmanagerConfig {
            url: url.clone(),
            generator_url: None,
        });
    }
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("notification config: {e}"))
}

/// Runs the daemon until SIGTERM or SIGINT; SIGHUP reloads the fleet and policies.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format);
    let mut options = DaemonOptions::new(args.fleet, args.policies, args.data_dir);
    options.dry_run = args.dry_run;
    options.models = Some(args.models);
    options.signatures = args.signatures;
    options.retention = Some(args.retention);
    options.listen = (!args.no_api).then_some(args.listen);
    options.token = medic_api::token_from(args.token_file.as_deref())
        .map_err(|e| anyhow::anyhow!("api token: {e}"))?;
    options.notify = notify_settings(args.notify.as_deref(), &args.webhook, &args.alertmanager)?;
    let fleet = match daemon::load_fleet(&options) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("medic: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async move {
        let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        let mut hup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
        let targets = fleet.targets.len();
        let mut handle = daemon::start(options.clone(), fleet)
            .await
            .map_err(|e| anyhow::anyhow!(medic_driver::error_text(&e)))?;
        tracing::info!(
            targets,
            dry_run = options.dry_run,
            api = ?handle.api_addr(),
            token = options.token.is_some(),
            "medic is running"
        );
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => match daemon::load_fleet(&options) {
                    Ok(fleet) => {
                        tracing::info!("SIGHUP: configuration valid, reloading");
                        if !handle.reload(fleet).await {
                            tracing::error!(
                                "SIGHUP: the daemon rejected the new configuration; the running one stays"
                            );
                        }
                    }
                    Err(e) => tracing::error!(
                        errors = %e,
                        "SIGHUP: the new configuration is invalid; the running one stays"
                    ),
                },
            }
        }
        tracing::info!("shutting down");
        handle.shutdown(std::time::Duration::from_secs(30)).await;
        Ok(ExitCode::SUCCESS)
    })
}
