//! The exec probe: a program run as argv (never through a shell), passing on exit code 0.
//!
//! The child gets its own process group; when the deadline passes the whole group is killed
//! with SIGKILL and the child reaped, so a probe leaves nothing behind. Output is captured up
//! to a cap per stream; the rest is read and discarded so the child never blocks on a full pipe.

use std::process::Stdio;
use std::time::Duration;

use medic_core::ProbeOutcome;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes kept of each of stdout and stderr.
pub const MAX_EXEC_OUTPUT_BYTES: usize = 64 * 1024;

/// What a finished command left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    /// The first [`MAX_EXEC_OUTPUT_BYTES`] of stdout.
    pub stdout: Vec<u8>,
    /// The first [`MAX_EXEC_OUTPUT_BYTES`] of stderr.
    pub stderr: Vec<u8>,
}

/// Why a command did not give an [`ExecOutput`].
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The argv was empty.
    #[error("empty command")]
    EmptyArgv,
    /// The program could not be started.
    #[error("could not start {program:?}")]
    Spawn {
        /// argv\[0\].
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the child failed.
    #[error("waiting for {program:?} failed")]
    Wait {
        /// argv\[0\].
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The deadline passed; the process group was killed.
    #[error("{program:?} did not finish within {timeout:?}; its process group was killed")]
    TimedOut {
        /// argv\[0\].
        program: String,
        /// The deadline.
        timeout: Duration,
    },
}

/// Runs `argv` in its own process group with stdin closed, within `timeout`.
pub async fn run_exec(argv: &[String], timeout: Duration) -> Result<ExecOutput, ExecError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(ExecError::EmptyArgv);
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ExecError::Spawn {
            program: program.clone(),
            source,
        })?;
    // Declared after `child`, so it is dropped first: if this future is cancelled (a scheduler
    // shutting down), the group dies while its leader is still unreaped.
    let mut group = GroupGuard(child.id());
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let finished = tokio::time::timeout(timeout, async {
        let (status, out, err) =
            tokio::join!(child.wait(), read_capped(stdout), read_capped(stderr));
        (status, out, err)
    })
    .await;
    match finished {
        Ok((status, stdout, stderr)) => {
            // The leader was reaped: its pid, and so the group id, may be reused from now on.
            group.0 = None;
            let status = status.map_err(|source| ExecError::Wait {
                program: program.clone(),
                source,
            })?;
            use std::os::unix::process::ExitStatusExt;
            Ok(ExecOutput {
                code: status.code(),
                signal: status.signal(),
                stdout,
                stderr,
            })
        }
        Err(_elapsed) => {
            if let Some(pgid) = group.0.take() {
                kill_group(pgid);
            }
            // Reap the leader; SIGKILL cannot be ignored, so this returns promptly.
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            Err(ExecError::TimedOut {
                program: program.clone(),
                timeout,
            })
        }
    }
}

/// Kills the child's process group when dropped while still armed.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            kill_group(pgid);
        }
    }
}

/// Sends SIGKILL to every process of group `pgid`.
fn kill_group(pgid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: kill(2) takes plain integers and touches no memory of ours. A negative pid
    // addresses the process group created for this child (`process_group(0)`), whose leader
    // has not been reaped yet on this path, so the group id cannot have been reused.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

async fn read_capped<R: AsyncRead + Unpin>(stream: Option<R>) -> Vec<u8> {
    let Some(mut stream) = stream else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_EXEC_OUTPUT_BYTES.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    kept
}

pub(crate) async fn exec_probe(argv: &[String], timeout: Duration) -> ProbeOutcome {
    match run_exec(argv, timeout).await {
        Ok(out) if out.code == Some(0) => ProbeOutcome::Ok,
        Ok(out) => {
            let how = match (out.code, out.signal) {
                (Some(code), _) => format!("exit code {code}"),
                (None, Some(sig)) => format!("killed by signal {sig}"),
                (None, None) => "ended without exit code".to_owned(),
            };
            match last_line(&out.stderr).or_else(|| last_line(&out.stdout)) {
                Some(line) => ProbeOutcome::Failed(format!("{how}: {line}")),
                None => ProbeOutcome::Failed(how),
            }
        }
        Err(ExecError::TimedOut { .. }) => ProbeOutcome::TimedOut,
        Err(e) => ProbeOutcome::Failed(super::http::error_chain(&e)),
    }
}

/// The last non-empty line of some output, lossily decoded and shortened to 200 chars.
fn last_line(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.chars().take(200).collect())
}
