//! The `exec` actuator: a program run as argv, in its own process group, under a deadline.
//!
//! # Placeholders
//! `{target}`, `{replicas}`, `{strategy}` and `{action_id}` are replaced only when an argument
//! is *exactly* the placeholder: `["kubectl", "scale", "{target}"]` gets the target's name as
//! its third argument, while `"--name={target}"` is passed verbatim. A value therefore always
//! stays one argument, whatever characters it holds (`x; rm -rf /` is a single, harmless
//! argv element).
//!
//! # Shell
//! Only with `shell: true`: `argv[0]` is the script, run as `/bin/sh -c <script> medic
//! <argv[1..]>`, so the remaining (substituted) arguments are the script's positional
//! parameters `"$1"`, `"$2"`, …. Values are never pasted into the script: a script that
//! contains a placeholder is rejected ([`ExecSetupError::PlaceholderInScript`]); use `"$1"` or
//! the environment variables instead.
//!
//! # Environment
//! In both modes the child also gets `MEDIC_TARGET`, `MEDIC_STRATEGY`, `MEDIC_ACTION_ID` and,
//! for scale actions, `MEDIC_REPLICAS`.
//!
//! # Deadline
//! When the deadline passes, the whole process group gets SIGTERM, then SIGKILL after the
//! grace period, and the leader is reaped. When the leader exits on its own, its output is
//! drained for at most [`ExecLimits::drain`] more (a background process it left behind may
//! hold the pipes open); such a process is not killed: the command succeeded and may have
//! started it on purpose.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use medic_core::Outcome;

use crate::capture::{Tail, TailBuf, lock, read_into};
use crate::pgroup;

/// Default bytes kept of each of stdout and stderr: the last 64 KiB.
pub const DEFAULT_OUTPUT_CAP: usize = 64 * 1024;

/// The values placeholders stand for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vars {
    /// `{target}`: the target's name.
    pub target: String,
    /// `{replicas}`: the replica count to reach (scale actions only).
    pub replicas: Option<u32>,
    /// `{strategy}`: the strategy's name, or `fallback`.
    pub strategy: String,
    /// `{action_id}`: the action's id, e.g. `a17`.
    pub action_id: String,
}

/// The placeholders, as written in argv.
pub const PLACEHOLDERS: [&str; 4] = ["{target}", "{replicas}", "{strategy}", "{action_id}"];

/// Bounds of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecLimits {
    /// The deadline for the command.
    pub timeout: Duration,
    /// Between SIGTERM and SIGKILL of the process group.
    pub grace: Duration,
    /// Bytes kept (the tail) of each of stdout and stderr.
    pub output_cap: usize,
    /// How long output is still read after the leader exited.
    pub drain: Duration,
}

impl ExecLimits {
    /// `timeout`, 2 s grace, 64 KiB of output per stream, 1 s drain.
    pub fn with_timeout(timeout: Duration) -> ExecLimits {
        ExecLimits {
            timeout,
            grace: Duration::from_secs(2),
            output_cap: DEFAULT_OUTPUT_CAP,
            drain: Duration::from_secs(1),
        }
    }
}

/// Why a command could not be started at all.
#[derive(Debug, thiserror::Error)]
pub enum ExecSetupError {
    /// The argv was empty.
    #[error("empty command")]
    EmptyArgv,
    /// `{replicas}` was used by an action that has no replica count.
    #[error("placeholder {placeholder} has no value for this action")]
    NoValue {
        /// The placeholder.
        placeholder: &'static str,
    },
    /// A shell script contains a placeholder; values are passed as `"$1"`… or env vars.
    #[error(
        "shell script contains placeholder {placeholder}; pass it as an argument and use \"$1\" or $MEDIC_* instead"
    )]
    PlaceholderInScript {
        /// The placeholder.
        placeholder: &'static str,
    },
    /// The program could not be started.
    #[error("could not start {program:?}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// What a command run left behind.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecReport {
    /// `Success` on exit code 0, else `Failure` with the reason (exit code or signal and the
    /// last line of stderr or stdout), or why it could not start.
    pub outcome: Outcome,
    /// The exit code, when it exited.
    pub code: Option<i32>,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    /// The deadline passed and the group was killed.
    pub timed_out: bool,
    /// The tail of stdout.
    pub stdout: Tail,
    /// The tail of stderr.
    pub stderr: Tail,
}

impl ExecReport {
    fn not_started(err: &ExecSetupError) -> ExecReport {
        ExecReport {
            outcome: Outcome::Failure(crate::error_chain(err)),
            code: None,
            signal: None,
            timed_out: false,
            stdout: Tail::default(),
            stderr: Tail::default(),
        }
    }
}

/// Substitutes whole-argument placeholders in `args`.
pub fn substitute(args: &[String], vars: &Vars) -> Result<Vec<String>, ExecSetupError> {
    args.iter()
        .map(|arg| {
            Ok(match arg.as_str() {
                "{target}" => vars.target.clone(),
                "{strategy}" => vars.strategy.clone(),
                "{action_id}" => vars.action_id.clone(),
                "{replicas}" => match vars.replicas {
                    Some(n) => n.to_string(),
                    None => {
                        return Err(ExecSetupError::NoValue {
                            placeholder: "{replicas}",
                        });
                    }
                },
                _ => arg.clone(),
            })
        })
        .collect()
}

/// The program and arguments actually run for `argv` (after substitution, with the shell
/// wrapper when `shell`).
pub fn command_line(
    argv: &[String],
    shell: bool,
    vars: &Vars,
) -> Result<Vec<String>, ExecSetupError> {
    let Some((first, rest)) = argv.split_first() else {
        return Err(ExecSetupError::EmptyArgv);
    };
    if !shell {
        return substitute(argv, vars);
    }
    if let Some(placeholder) = PLACEHOLDERS.iter().find(|p| first.contains(*p)) {
        return Err(ExecSetupError::PlaceholderInScript { placeholder });
    }
    let mut line = vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        first.clone(),
        "medic".to_owned(),
    ];
    line.extend(substitute(rest, vars)?);
    Ok(line)
}

/// Runs an exec action: never fails, every problem is in the report's outcome.
pub async fn run(argv: &[String], shell: bool, vars: &Vars, limits: ExecLimits) -> ExecReport {
    match start_and_wait(argv, shell, vars, limits).await {
        Ok(report) => report,
        Err(e) => ExecReport::not_started(&e),
    }
}

async fn start_and_wait(
    argv: &[String],
    shell: bool,
    vars: &Vars,
    limits: ExecLimits,
) -> Result<ExecReport, ExecSetupError> {
    let line = command_line(argv, shell, vars)?;
    let (program, args) = line.split_first().ok_or(ExecSetupError::EmptyArgv)?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .env("MEDIC_TARGET", &vars.target)
        .env("MEDIC_STRATEGY", &vars.strategy)
        .env("MEDIC_ACTION_ID", &vars.action_id);
    if let Some(n) = vars.replicas {
        cmd.env("MEDIC_REPLICAS", n.to_string());
    }
    let mut child = cmd.spawn().map_err(|source| ExecSetupError::Spawn {
        program: program.clone(),
        source,
    })?;
    let pgid = child.id();
    let out = Arc::new(Mutex::new(TailBuf::new(limits.output_cap)));
    let err = Arc::new(Mutex::new(TailBuf::new(limits.output_cap)));
    let readers = [
        child
            .stdout
            .take()
            .map(|s| tokio::spawn(read_into(s, Arc::clone(&out)))),
        child
            .stderr
            .take()
            .map(|s| tokio::spawn(read_into(s, Arc::clone(&err)))),
    ];

    let (status, timed_out) = match tokio::time::timeout(limits.timeout, child.wait()).await {
        Ok(status) => (status.ok(), false),
        Err(_elapsed) => {
            if let Some(pgid) = pgid {
                pgroup::term_group(pgid);
            }
            let status = match tokio::time::timeout(limits.grace, child.wait()).await {
                Ok(status) => status.ok(),
                Err(_) => None,
            };
            // The leader may have obeyed SIGTERM while others in its group did not: SIGKILL
            // the group either way (the leader, even exited, is not reaped before this when
            // it did not exit, and its group id stays reserved while members remain).
            if let Some(pgid) = pgid {
                pgroup::kill_group(pgid);
            }
            let status = match status {
                Some(s) => Some(s),
                None => child.wait().await.ok(),
            };
            (status, true)
        }
    };

    // Read what is left in the pipes, briefly: a background process may hold them open.
    for reader in readers.into_iter().flatten() {
        let abort = reader.abort_handle();
        if tokio::time::timeout(limits.drain, reader).await.is_err() {
            abort.abort();
        }
    }
    let stdout = lock(&out).take();
    let stderr = lock(&err).take();

    use std::os::unix::process::ExitStatusExt;
    let code = status.and_then(|s| s.code());
    let signal = status.and_then(|s| s.signal());
    let outcome = if timed_out {
        Outcome::Failure(format!(
            "{program:?} did not finish within {:?}; its process group was killed",
            limits.timeout
        ))
    } else if code == Some(0) {
        Outcome::Success
    } else {
        let how = match (code, signal) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            (None, None) => "ended without an exit status".to_owned(),
        };
        match stderr.last_line().or_else(|| stdout.last_line()) {
            Some(line) => Outcome::Failure(format!("{how}: {line}")),
            None => Outcome::Failure(how),
        }
    };
    Ok(ExecReport {
        outcome,
        code,
        signal,
        timed_out,
        stdout,
        stderr,
    })
}
