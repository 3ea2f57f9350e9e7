//! The supervisor: medic spawns and owns the processes of `supervise:` targets.
//!
//! # Model
//! A supervised target has one or more *instances* (one after [`Supervisor::start`], more
//! after [`Supervisor::scale`]). Each instance sits in a *slot* `0..n`; its *instance number*
//! is unique within the target and never reused: [`Supervisor::restart`] and
//! [`Supervisor::reset`] start the same instance again (same number, same output ring, same
//! port), [`Supervisor::recreate`] and new slots get a fresh number and an empty ring.
//!
//! # Command
//! `spec.command` runs as argv, never through a shell. An argument that is *exactly*
//! `{target}`, `{instance}` or `{port}` is replaced by the value, as a whole argument (like
//! the exec actuator's placeholders); anything else is passed verbatim. The child also gets
//! `MEDIC_TARGET`, `MEDIC_INSTANCE` and, when it has a port, `MEDIC_PORT`, on top of
//! `spec.env`; it runs in `spec.workdir` when given, with stdin from /dev/null.
//!
//! # Ports
//! With [`Vars::base_port`], slot `i` gets the first port from `base_port + i` upwards that
//! no other supervised instance holds and that can be bound on 127.0.0.1 right now. A slot
//! keeps its port across restart, reset and recreate. `{port}` without a base port is an
//! error.
//!
//! # Exits
//! Every instance is the leader of its own process group. A task awaits the child handle,
//! so an exit is known at once: the group is SIGKILLed right after the leader is reaped (the
//! group never outlives its leader; no orphans), the output is drained briefly and a
//! [`ProcessEvent`] is sent, stamped by the injected [`Clock`]. Exits medic caused (stop,
//! restart, reset, recreate, scale down, shutdown) carry `expected: true`; the daemon treats
//! only the others as crashes. The supervisor never restarts anything by itself: deciding
//! that is the engine's job.
//!
//! # Stopping
//! SIGTERM to the group, [`SuperviseOptions::grace`] (default 5 s), SIGKILL to the group,
//! then the leader is awaited. [`Supervisor::stop_all`] does that to every instance at once
//! (shutdown). When the last handle of a [`Supervisor`] is dropped, and when the runtime drops
//! a watcher task, the groups still running are SIGKILLed.
//!
//! # Reset
//! `state_dir` is removed only when it is an absolute path without `.`/`..` components, at
//! least two levels deep (never `/`, `/home`, `/tmp`…), and a real directory (not a symbolic
//! link). Such a path is checked already at [`Supervisor::start`], so a bad configuration
//! shows up before the first reset.

use std::collections::{HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use medic_core::{Clock, Outcome, SystemClock, TargetId, Timestamp};
use medic_policy::SuperviseSpec;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch};

use crate::capture::{LineRing, lock};
use crate::pgroup;

/// How long a process may take to die after SIGKILL before a stop reports it as stuck (a
/// process in uninterruptible sleep cannot die earlier).
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How long output is still read after the group is gone (a process outside the group may
/// hold the pipes open).
const DRAIN: Duration = Duration::from_millis(500);

/// How a supervised process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
    /// Waiting for it failed, so how it ended is not known.
    Unknown,
}

impl ExitStatus {
    fn from_std(status: std::io::Result<std::process::ExitStatus>) -> ExitStatus {
        match status {
            Ok(s) => match (s.code(), s.signal()) {
                (Some(code), _) => ExitStatus::Code(code),
                (None, Some(sig)) => ExitStatus::Signal(sig),
                (None, None) => ExitStatus::Unknown,
            },
            Err(_) => ExitStatus::Unknown,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by signal {s}"),
            ExitStatus::Unknown => f.write_str("ended without a known status"),
        }
    }
}

/// A supervised process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessEvent {
    /// Whose process.
    pub target: TargetId,
    /// Its instance number.
    pub instance: u32,
    /// Its pid (also its process group id).
    pub pid: u32,
    /// How it ended.
    pub exit: ExitStatus,
    /// medic ended it (stop, restart, reset, recreate, scale down, shutdown): not a crash.
    pub expected: bool,
    /// When the exit was seen.
    pub at: Timestamp,
}

/// Values for the placeholders that are not in the spec.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vars {
    /// The port of slot 0; slot `i` gets the first free port from `base_port + i`. Needed
    /// when the command contains `{port}`.
    pub base_port: Option<u16>,
}

/// Tunables of the supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuperviseOptions {
    /// Between SIGTERM and SIGKILL of a group being stopped (default 5 s).
    pub grace: Duration,
    /// Output lines kept per instance (default 1000).
    pub max_lines: usize,
    /// Bytes kept of one output line; longer lines are cut (default 4096).
    pub max_line_bytes: usize,
}

impl Default for SuperviseOptions {
    fn default() -> Self {
        SuperviseOptions {
            grace: Duration::from_secs(5),
            max_lines: 1000,
            max_line_bytes: 4096,
        }
    }
}

/// One instance of a supervised target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceStatus {
    /// Its slot, `0..instances`.
    pub slot: u32,
    /// Its instance number.
    pub instance: u32,
    /// The running process, `None` after it exited (until medic starts it again).
    pub pid: Option<u32>,
    /// Its port, when the target has a base port.
    pub port: Option<u16>,
    /// When its current (or last) process was started.
    pub started_at: Timestamp,
    /// How its last process ended, if one did.
    pub last_exit: Option<ExitStatus>,
}

/// What the supervisor knows about one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SupervisedStatus {
    /// The running process of slot 0, if any.
    pub pid: Option<u32>,
    /// The instance number of slot 0 (`None` when scaled to zero).
    pub instance: Option<u32>,
    /// When slot 0's process was started.
    pub started_at: Option<Timestamp>,
    /// How often medic started the target again (restart, reset, recreate).
    pub restarts: u32,
    /// The last exit of any of its instances, expected or not.
    pub last_exit: Option<ProcessEvent>,
    /// Every instance, by slot.
    pub instances: Vec<InstanceStatus>,
}

/// Why a supervisor action failed.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    /// The target is not supervised (never started, or stopped).
    #[error("target {0} is not supervised")]
    UnknownTarget(TargetId),
    /// `start` was called for a target that is already supervised.
    #[error("target {0} is already supervised")]
    AlreadySupervised(TargetId),
    /// The command is empty.
    #[error("empty command")]
    EmptyCommand,
    /// The command uses `{port}` but no base port was given.
    #[error("the command uses {{port}} but no base port is set")]
    NoBasePort,
    /// No port from the wanted one up to 65535 is free.
    #[error("no free port from {from} upwards")]
    NoFreePort {
        /// The first port tried.
        from: u16,
    },
    /// The state directory may not be removed.
    #[error("refusing to use state_dir {path:?}: {reason}")]
    UnsafeStateDir {
        /// The configured path.
        path: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Removing the state directory failed.
    #[error("could not remove state_dir {path:?}")]
    RemoveStateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
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
    /// A process did not end even after SIGKILL (e.g. stuck in uninterruptible sleep).
    #[error("process {pid} did not end after SIGKILL")]
    StillRunning {
        /// Its pid.
        pid: u32,
    },
}

impl SuperviseError {
    /// The error as a failed action's outcome, with its causes.
    pub fn outcome(&self) -> Outcome {
        Outcome::Failure(crate::error_chain(self))
    }
}

/// The outcome of a supervisor action: success, or the error's reason.
pub fn outcome_of<T>(result: &Result<T, SuperviseError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Success,
        Err(e) => e.outcome(),
    }
}

/// Checks that `path` is safe to remove on reset (see the module doc).
pub fn check_state_dir(path: &Path) -> Result<(), SuperviseError> {
    let refuse = |reason| {
        Err(SuperviseError::UnsafeStateDir {
            path: path.to_owned(),
            reason,
        })
    };
    if path.as_os_str().is_empty() {
        return refuse("it is empty");
    }
    if !path.is_absolute() {
        return refuse("it is not an absolute path");
    }
    let mut depth = 0;
    for c in path.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::RootDir => {}
            Component::CurDir | Component::ParentDir | Component::Prefix(_) => {
                return refuse("it contains . or .. components");
            }
        }
    }
    if depth < 2 {
        return refuse("it is the root or a top-level directory");
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => refuse("it is a symbolic link"),
        Ok(meta) if !meta.is_dir() => refuse("it is not a directory"),
        _ => Ok(()),
    }
}

/// A handle on the supervisor; clones share it.
///
/// Operations on one target are serialised; different targets proceed independently.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("options", &self.inner.options)
            .field("targets", &lock(&self.inner.targets).len())
            .finish()
    }
}

struct Inner {
    events: mpsc::UnboundedSender<ProcessEvent>,
    clock: Arc<dyn Clock>,
    options: SuperviseOptions,
    targets: Mutex<HashMap<TargetId, Arc<Entry>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: nothing may outlive it.
        let targets = std::mem::take(&mut *lock(&self.targets));
        for entry in targets.values() {
            for run in lock(&entry.state).runs() {
                run.expected.store(true, Ordering::SeqCst);
                pgroup::kill_group(run.pid);
            }
        }
    }
}

/// One supervised target.
struct Entry {
    target: TargetId,
    /// Serialises lifecycle actions on this target (held across their awaits).
    action: tokio::sync::Mutex<()>,
    /// What readers and watcher tasks see (never held across an await).
    state: Mutex<TargetState>,
}

struct TargetState {
    spec: SuperviseSpec,
    vars: Vars,
    slots: Vec<Slot>,
    next_instance: u32,
    restarts: u32,
    last_exit: Option<ProcessEvent>,
}

impl TargetState {
    fn runs(&self) -> Vec<Run> {
        self.slots.iter().filter_map(|s| s.run.clone()).collect()
    }
}

struct Slot {
    instance: u32,
    port: Option<u16>,
    ring: Arc<Mutex<LineRing>>,
    started_at: Timestamp,
    run: Option<Run>,
    last_exit: Option<ExitStatus>,
}

/// A running process of a slot.
#[derive(Clone)]
struct Run {
    pid: u32,
    /// Set before medic signals it, so its exit is reported as expected.
    expected: Arc<AtomicBool>,
    /// Turns true once the exit is fully handled (reaped, group killed, event sent).
    done: watch::Receiver<bool>,
}

impl Supervisor {
    /// A supervisor reporting exits to `events`, stamping them with the system clock, with
    /// default options.
    pub fn new(events: mpsc::UnboundedSender<ProcessEvent>) -> Supervisor {
        Supervisor::with_clock(events, Arc::new(SystemClock), SuperviseOptions::default())
    }

    /// A supervisor with an injected clock and options.
    pub fn with_clock(
        events: mpsc::UnboundedSender<ProcessEvent>,
        clock: Arc<dyn Clock>,
        options: SuperviseOptions,
    ) -> Supervisor {
        Supervisor {
            inner: Arc::new(Inner {
                events,
                clock,
                options,
                targets: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn entry(&self, target: &TargetId) -> Result<Arc<Entry>, SuperviseError> {
        lock(&self.inner.targets)
            .get(target)
            .cloned()
            .ok_or_else(|| SuperviseError::UnknownTarget(target.clone()))
    }

    /// Starts supervising `target`: spawns its first instance (slot 0) and returns its pid.
    ///
    /// Fails when the target is already supervised, the command is empty, uses `{port}`
    /// without a base port, the state directory is unsafe, or the program cannot start (the
    /// target is then not supervised).
    pub async fn start(
        &self,
        target: &TargetId,
        spec: &SuperviseSpec,
        vars: &Vars,
    ) -> Result<u32, SuperviseError> {
        if spec.command.is_empty() {
            return Err(SuperviseError::EmptyCommand);
        }
        if vars.base_port.is_none() && spec.command.iter().any(|a| a == "{port}") {
            return Err(SuperviseError::NoBasePort);
        }
        if let Some(dir) = &spec.state_dir {
            check_state_dir(dir)?;
        }
        let entry = Arc::new(Entry {
            target: target.clone(),
            action: tokio::sync::Mutex::new(()),
            state: Mutex::new(TargetState {
                spec: spec.clone(),
                vars: *vars,
                slots: Vec::new(),
                next_instance: 0,
                restarts: 0,
                last_exit: None,
            }),
        });
        let _serial = entry.action.lock().await;
        {
            let mut targets = lock(&self.inner.targets);
            if targets.contains_key(target) {
                return Err(SuperviseError::AlreadySupervised(target.clone()));
            }
            targets.insert(target.clone(), Arc::clone(&entry));
        }
        match self.add_slot(&entry) {
            Ok(pid) => Ok(pid),
            Err(e) => {
                lock(&self.inner.targets).remove(target);
                Err(e)
            }
        }
    }

    /// Stops every instance of `target` and starts each again with the same spec (same
    /// instance numbers, output rings and ports). Returns the new pids.
    ///
    /// An instance that is not running (it crashed) is simply started. When a spawn fails,
    /// the others are still started and the first error is returned.
    pub async fn restart(&self, target: &TargetId) -> Result<Vec<u32>, SuperviseError> {
        let entry = self.entry(target)?;
        let _serial = entry.action.lock().await;
        let runs = lock(&entry.state).runs();
        self.stop_runs(runs).await?;
        self.respawn_all(&entry, false)
    }

    /// Stops every instance of `target`, removes its `state_dir` (see the module doc for
    /// which paths are refused), and starts each instance again. Returns the new pids.
    pub async fn reset(&self, target: &TargetId) -> Result<Vec<u32>, SuperviseError> {
        let entry = self.entry(target)?;
        let _serial = entry.action.lock().await;
        let state_dir = lock(&entry.state).spec.state_dir.clone();
        if let Some(dir) = &state_dir {
            check_state_dir(dir)?;
        }
        let runs = lock(&entry.state).runs();
        self.stop_runs(runs).await?;
        if let Some(dir) = state_dir {
            // Re-checked after the stop: the process may have replaced it meanwhile.
            check_state_dir(&dir)?;
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => {
                    tracing::info!(target = %target, dir = %dir.display(), "state directory removed")
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(SuperviseError::RemoveStateDir { path: dir, source });
                }
            }
        }
        self.respawn_all(&entry, false)
    }

    /// Stops every instance of `target` and starts fresh ones in their slots: new instance
    /// numbers, empty output rings, the same ports. Returns the new pids.
    pub async fn recreate(&self, target: &TargetId) -> Result<Vec<u32>, SuperviseError> {
        let entry = self.entry(target)?;
        let _serial = entry.action.lock().await;
        let runs = lock(&entry.state).runs();
        self.stop_runs(runs).await?;
        self.respawn_all(&entry, true)
    }

    /// Runs `replicas` instances of `target`: new slots get the next instance numbers and
    /// the next free ports; surplus slots (the highest) are stopped and dropped. Returns the
    /// pids of the running instances.
    pub async fn scale(
        &self,
        target: &TargetId,
        replicas: u32,
    ) -> Result<Vec<u32>, SuperviseError> {
        let entry = self.entry(target)?;
        let _serial = entry.action.lock().await;
        let want = replicas as usize;
        let surplus: Vec<Run> = {
            let state = lock(&entry.state);
            state
                .slots
                .iter()
                .skip(want)
                .filter_map(|s| s.run.clone())
                .collect()
        };
        let stopped = self.stop_runs(surplus).await;
        {
            let mut state = lock(&entry.state);
            if state.slots.len() > want {
                state.slots.truncate(want);
            }
        }
        stopped?;
        let have = lock(&entry.state).slots.len();
        for _ in have..want {
            self.add_slot(&entry)?;
        }
        Ok(self.pids(target))
    }

    /// Stops every instance of `target` and forgets it.
    pub async fn stop(&self, target: &TargetId) -> Result<(), SuperviseError> {
        let entry = self.entry(target)?;
        let _serial = entry.action.lock().await;
        let runs = lock(&entry.state).runs();
        let result = self.stop_runs(runs).await;
        lock(&self.inner.targets).remove(target);
        result
    }

    /// Stops every instance of every target at once (SIGTERM, grace, SIGKILL) and forgets
    /// them all; for shutdown. Afterwards no process of any group is left, unless a process
    /// would not die even after SIGKILL, which is returned as the error.
    pub async fn stop_all(&self) -> Result<(), SuperviseError> {
        let entries: Vec<Arc<Entry>> = lock(&self.inner.targets).values().cloned().collect();
        let mut guards = Vec::with_capacity(entries.len());
        for entry in &entries {
            guards.push(entry.action.lock().await);
        }
        let runs: Vec<Run> = entries.iter().flat_map(|e| lock(&e.state).runs()).collect();
        let result = self.stop_runs(runs).await;
        let mut targets = lock(&self.inner.targets);
        for entry in &entries {
            targets.remove(&entry.target);
        }
        result
    }

    /// The pids of `target`'s running instances, by slot (empty when unknown).
    pub fn pids(&self, target: &TargetId) -> Vec<u32> {
        let Ok(entry) = self.entry(target) else {
            return Vec::new();
        };
        let state = lock(&entry.state);
        state
            .slots
            .iter()
            .filter_map(|s| s.run.as_ref().map(|r| r.pid))
            .collect()
    }

    /// The last output lines (stdout and stderr, interleaved by line) of `target`'s slot 0.
    pub fn output_tail(&self, target: &TargetId) -> Vec<String> {
        self.ring(target, |slots| slots.first())
    }

    /// The last output lines of one instance of `target` (e.g. the one a [`ProcessEvent`]
    /// names); empty when there is no such instance.
    pub fn instance_output_tail(&self, target: &TargetId, instance: u32) -> Vec<String> {
        self.ring(target, |slots| {
            slots.iter().find(|s| s.instance == instance)
        })
    }

    fn ring(&self, target: &TargetId, pick: impl Fn(&[Slot]) -> Option<&Slot>) -> Vec<String> {
        let Ok(entry) = self.entry(target) else {
            return Vec::new();
        };
        let ring = {
            let state = lock(&entry.state);
            match pick(&state.slots) {
                Some(slot) => Arc::clone(&slot.ring),
                None => return Vec::new(),
            }
        };
        lock(&ring).lines()
    }

    /// What is known about `target`; `None` when it is not supervised.
    pub fn status(&self, target: &TargetId) -> Option<SupervisedStatus> {
        let entry = self.entry(target).ok()?;
        let state = lock(&entry.state);
        let instances: Vec<InstanceStatus> = state
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| InstanceStatus {
                slot: u32::try_from(i).unwrap_or(u32::MAX),
                instance: s.instance,
                pid: s.run.as_ref().map(|r| r.pid),
                port: s.port,
                started_at: s.started_at,
                last_exit: s.last_exit,
            })
            .collect();
        let first = instances.first();
        Some(SupervisedStatus {
            pid: first.and_then(|i| i.pid),
            instance: first.map(|i| i.instance),
            started_at: first.map(|i| i.started_at),
            restarts: state.restarts,
            last_exit: state.last_exit.clone(),
            instances,
        })
    }

    /// The supervised targets.
    pub fn targets(&self) -> Vec<TargetId> {
        let mut names: Vec<TargetId> = lock(&self.inner.targets).keys().cloned().collect();
        names.sort();
        names
    }

    /// SIGTERM to every group, the grace period, SIGKILL to the groups still there, then
    /// waits until every exit is handled.
    async fn stop_runs(&self, runs: Vec<Run>) -> Result<(), SuperviseError> {
        if runs.is_empty() {
            return Ok(());
        }
        for run in &runs {
            run.expected.store(true, Ordering::SeqCst);
            pgroup::term_group(run.pid);
        }
        let mut left = Vec::new();
        let deadline = tokio::time::Instant::now() + self.inner.options.grace;
        for run in runs {
            let mut done = run.done.clone();
            if tokio::time::timeout_at(deadline, wait_done(&mut done))
                .await
                .is_err()
            {
                left.push(run);
            }
        }
        for run in &left {
            tracing::warn!(pid = run.pid, grace = ?self.inner.options.grace, "still running after SIGTERM and the grace period: SIGKILL to its group");
            pgroup::kill_group(run.pid);
        }
        let deadline = tokio::time::Instant::now() + KILL_WAIT;
        let mut stuck = None;
        for run in left {
            let mut done = run.done.clone();
            if tokio::time::timeout_at(deadline, wait_done(&mut done))
                .await
                .is_err()
            {
                stuck.get_or_insert(run.pid);
            }
        }
        match stuck {
            Some(pid) => Err(SuperviseError::StillRunning { pid }),
            None => Ok(()),
        }
    }

    /// Starts every slot of `entry` again; with `fresh`, as new instances with empty rings.
    fn respawn_all(&self, entry: &Arc<Entry>, fresh: bool) -> Result<Vec<u32>, SuperviseError> {
        let slots = {
            let mut state = lock(&entry.state);
            state.restarts = state.restarts.saturating_add(1);
            if fresh {
                let opts = self.inner.options;
                for i in 0..state.slots.len() {
                    let instance = state.next_instance;
                    state.next_instance = state.next_instance.saturating_add(1);
                    let slot = &mut state.slots[i];
                    slot.instance = instance;
                    slot.ring = Arc::new(Mutex::new(LineRing::new(
                        opts.max_lines,
                        opts.max_line_bytes,
                    )));
                }
            }
            state.slots.len()
        };
        let mut pids = Vec::with_capacity(slots);
        let mut first_err = None;
        for i in 0..slots {
            match self.spawn_slot(entry, i) {
                Ok(pid) => pids.push(pid),
                Err(e) => {
                    tracing::warn!(target = %entry.target, slot = i, error = %crate::error_chain(&e), "could not start again");
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(pids),
        }
    }

    /// Adds a slot with a new instance number and the next free port, and starts it. The
    /// slot is not kept when the spawn fails.
    fn add_slot(&self, entry: &Arc<Entry>) -> Result<u32, SuperviseError> {
        let (index, base) = {
            let state = lock(&entry.state);
            (state.slots.len(), state.vars.base_port)
        };
        let port = match base {
            Some(base) => Some(self.free_port(base, index)?),
            None => None,
        };
        {
            let mut state = lock(&entry.state);
            let instance = state.next_instance;
            state.next_instance = state.next_instance.saturating_add(1);
            let opts = self.inner.options;
            state.slots.push(Slot {
                instance,
                port,
                ring: Arc::new(Mutex::new(LineRing::new(
                    opts.max_lines,
                    opts.max_line_bytes,
                ))),
                started_at: self.inner.clock.now(),
                run: None,
                last_exit: None,
            });
        }
        match self.spawn_slot(entry, index) {
            Ok(pid) => Ok(pid),
            Err(e) => {
                let mut state = lock(&entry.state);
                if state.slots.len() == index + 1 {
                    state.slots.pop();
                }
                Err(e)
            }
        }
    }

    /// The first port from `base + index` that no supervised instance holds and that can be
    /// bound on 127.0.0.1 now.
    fn free_port(&self, base: u16, index: usize) -> Result<u16, SuperviseError> {
        let taken: HashSet<u16> = {
            let entries: Vec<Arc<Entry>> = lock(&self.inner.targets).values().cloned().collect();
            entries
                .iter()
                .flat_map(|e| {
                    lock(&e.state)
                        .slots
                        .iter()
                        .filter_map(|s| s.port)
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let from = u16::try_from(usize::from(base).saturating_add(index))
            .map_err(|_| SuperviseError::NoFreePort { from: u16::MAX })?;
        (from..=u16::MAX)
            .find(|&p| {
                p != 0
                    && !taken.contains(&p)
                    && std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, p)).is_ok()
            })
            .ok_or(SuperviseError::NoFreePort { from })
    }

    /// Spawns the process of slot `index` and its watcher; records it in the slot.
    fn spawn_slot(&self, entry: &Arc<Entry>, index: usize) -> Result<u32, SuperviseError> {
        let (line, spec, instance, port, ring) = {
            let state = lock(&entry.state);
            let slot = &state.slots[index];
            let line = command_line(&state.spec.command, &entry.target, slot.instance, slot.port)?;
            (
                line,
                state.spec.clone(),
                slot.instance,
                slot.port,
                Arc::clone(&slot.ring),
            )
        };
        let (program, args) = line.split_first().ok_or(SuperviseError::EmptyCommand)?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .envs(&spec.env)
            .env("MEDIC_TARGET", entry.target.as_str())
            .env("MEDIC_INSTANCE", instance.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(port) = port {
            cmd.env("MEDIC_PORT", port.to_string());
        }
        if let Some(dir) = &spec.workdir {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().map_err(|source| SuperviseError::Spawn {
            program: program.clone(),
            source,
        })?;
        let Some(pid) = child.id() else {
            // Only possible once the child was reaped, which nothing did yet.
            return Err(SuperviseError::Spawn {
                program: program.clone(),
                source: std::io::Error::other("the child has no pid"),
            });
        };
        let guard = GroupGuard { pgid: pid };
        let max_line = self.inner.options.max_line_bytes;
        let readers = [
            child
                .stdout
                .take()
                .map(|s| tokio::spawn(read_lines(s, Arc::clone(&ring), max_line))),
            child
                .stderr
                .take()
                .map(|s| tokio::spawn(read_lines(s, Arc::clone(&ring), max_line))),
        ];
        let expected = Arc::new(AtomicBool::new(false));
        let (done_tx, done_rx) = watch::channel(false);
        let started_at = self.inner.clock.now();
        {
            let mut state = lock(&entry.state);
            let slot = &mut state.slots[index];
            slot.started_at = started_at;
            slot.run = Some(Run {
                pid,
                expected: Arc::clone(&expected),
                done: done_rx,
            });
        }
        tracing::info!(target = %entry.target, instance, pid, ?port, "supervised process started");
        tokio::spawn(watch_exit(Watch {
            child,
            guard,
            pid,
            instance,
            entry: Arc::clone(entry),
            readers,
            expected,
            done: done_tx,
            events: self.inner.events.clone(),
            clock: Arc::clone(&self.inner.clock),
        }));
        Ok(pid)
    }
}

/// The argv with `{target}`, `{instance}` and `{port}` replaced where an argument is
/// exactly the placeholder.
fn command_line(
    command: &[String],
    target: &TargetId,
    instance: u32,
    port: Option<u16>,
) -> Result<Vec<String>, SuperviseError> {
    if command.is_empty() {
        return Err(SuperviseError::EmptyCommand);
    }
    command
        .iter()
        .map(|arg| {
            Ok(match arg.as_str() {
                "{target}" => target.as_str().to_owned(),
                "{instance}" => instance.to_string(),
                "{port}" => port.ok_or(SuperviseError::NoBasePort)?.to_string(),
                _ => arg.clone(),
            })
        })
        .collect()
}

/// SIGKILLs the group when dropped: covers a watcher task dropped by a shutting-down runtime
/// before it could reap its child.
struct GroupGuard {
    pgid: u32,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        pgroup::kill_group(self.pgid);
    }
}

struct Watch {
    child: tokio::process::Child,
    guard: GroupGuard,
    pid: u32,
    instance: u32,
    entry: Arc<Entry>,
    readers: [Option<tokio::task::JoinHandle<()>>; 2],
    expected: Arc<AtomicBool>,
    done: watch::Sender<bool>,
    events: mpsc::UnboundedSender<ProcessEvent>,
    clock: Arc<dyn Clock>,
}

/// Awaits the child's exit, then: SIGKILL to what is left of its group, the slot marked not
/// running, output drained, the event recorded and sent, `done` set.
async fn watch_exit(mut w: Watch) {
    let status = w.child.wait().await;
    // Right after the reap, while the group id cannot have been reused: nothing of the
    // group outlives its leader.
    drop(w.guard);
    let exit = ExitStatus::from_std(status);
    let at = w.clock.now();
    let expected = w.expected.load(Ordering::SeqCst);
    {
        let mut state = lock(&w.entry.state);
        for slot in &mut state.slots {
            if slot.run.as_ref().is_some_and(|r| r.pid == w.pid) {
                slot.run = None;
                slot.last_exit = Some(exit);
            }
        }
    }
    for reader in w.readers.into_iter().flatten() {
        let abort = reader.abort_handle();
        if tokio::time::timeout(DRAIN, reader).await.is_err() {
            abort.abort();
        }
    }
    let event = ProcessEvent {
        target: w.entry.target.clone(),
        instance: w.instance,
        pid: w.pid,
        exit,
        expected,
        at,
    };
    if expected {
        tracing::info!(target = %event.target, instance = w.instance, pid = w.pid, %exit, "supervised process stopped");
    } else {
        tracing::warn!(target = %event.target, instance = w.instance, pid = w.pid, %exit, "supervised process exited unexpectedly");
    }
    lock(&w.entry.state).last_exit = Some(event.clone());
    // The daemon may have gone away at shutdown; the exit is still recorded above.
    let _ = w.events.send(event);
    let _ = w.done.send(true);
}

/// Waits until the watcher has handled the exit (or is gone, which is as final).
async fn wait_done(done: &mut watch::Receiver<bool>) {
    let _ = done.wait_for(|d| *d).await;
}

/// Reads `stream` to its end, pushing only complete lines into `ring` so that lines of
/// stdout and stderr never mix; a line longer than `max_line` is cut.
async fn read_lines<R: AsyncRead + Unpin>(
    mut stream: R,
    ring: Arc<Mutex<LineRing>>,
    max_line: usize,
) {
    let mut chunk = [0u8; 8192];
    let mut partial: Vec<u8> = Vec::new();
    let push = |line: &[u8]| {
        let mut ring = lock(&ring);
        ring.push_bytes(line);
        ring.push_bytes(b"\n");
    };
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut rest = &chunk[..n];
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let room = max_line.saturating_sub(partial.len());
            partial.extend_from_slice(&rest[..pos.min(room)]);
            push(&partial);
            partial.clear();
            rest = &rest[pos + 1..];
        }
        let room = max_line.saturating_sub(partial.len());
        partial.extend_from_slice(&rest[..rest.len().min(room)]);
    }
    if !partial.is_empty() {
        push(&partial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dirs_that_are_refused() {
        for bad in ["", "relative/dir", "/", "/tmp", "/home", "/srv/../etc"] {
            assert!(
                matches!(
                    check_state_dir(Path::new(bad)),
                    Err(SuperviseError::UnsafeStateDir { .. })
                ),
                "{bad:?} was accepted"
            );
        }
        assert!(check_state_dir(Path::new("/var/lib/medic-test-does-not-exist")).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(check_state_dir(&file).is_err());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        assert!(check_state_dir(&link).is_err());
        assert!(check_state_dir(dir.path()).is_ok());
    }

    #[test]
    fn placeholders_are_whole_arguments() {
        let argv: Vec<String> = [
            "agent",
            "--port",
            "{port}",
            "--name={target}",
            "{target}",
            "{instance}",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let t = TargetId::new("w; rm -rf /");
        assert_eq!(
            command_line(&argv, &t, 4, Some(8101)).unwrap(),
            [
                "agent",
                "--port",
                "8101",
                "--name={target}",
                "w; rm -rf /",
                "4"
            ]
        );
        assert!(matches!(
            command_line(&argv, &t, 4, None),
            Err(SuperviseError::NoBasePort)
        ));
        assert!(matches!(
            command_line(&[], &t, 0, None),
            Err(SuperviseError::EmptyCommand)
        ));
    }
}
