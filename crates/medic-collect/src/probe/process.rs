//! The process probe: found by pid file or name, alive and neither zombie nor stopped.

use medic_core::ProbeOutcome;
use medic_policy::ProcessSelector;

use crate::procfs::{self, ProcError};

/// Checks the process a selector names. [`ProcessSelector::Supervised`] needs the supervisor
/// and fails here; [`crate::probe::Prober`] resolves it.
pub fn check_process(selector: &ProcessSelector) -> ProbeOutcome {
    match selector {
        ProcessSelector::PidFile(path) => match procfs::read_pid_file(path) {
            Ok(pid) => check_pid(pid),
            Err(e) => ProbeOutcome::Failed(super::http::error_chain(&e)),
        },
        ProcessSelector::Name(name) => match procfs::find_by_name(name) {
            Ok(pids) if pids.is_empty() => {
                ProbeOutcome::Failed(format!("no process named {name:?}"))
            }
            Ok(pids) => {
                // Any healthy instance passes; otherwise report the first one's problem.
                let mut first_failure = None;
                for pid in pids {
                    match check_pid(pid) {
                        ProbeOutcome::Ok => return ProbeOutcome::Ok,
                        other => {
                            first_failure.get_or_insert(other);
                        }
                    }
                }
                first_failure.unwrap_or(ProbeOutcome::Ok)
            }
            Err(e) => ProbeOutcome::Failed(super::http::error_chain(&e)),
        },
        ProcessSelector::Supervised => {
            ProbeOutcome::Failed("supervised process is not running".into())
        }
    }
}

/// Checks that `pid` exists and is neither a zombie nor stopped.
pub(crate) fn check_pid(pid: u32) -> ProbeOutcome {
    match procfs::read_stat(pid) {
        Ok(stat) if stat.state.is_alive() => ProbeOutcome::Ok,
        Ok(stat) => ProbeOutcome::Failed(format!("process {pid} is {}", stat.state.describe())),
        Err(ProcError::NoSuchProcess { .. }) => {
            ProbeOutcome::Failed(format!("process {pid} does not exist"))
        }
        Err(e) => ProbeOutcome::Failed(super::http::error_chain(&e)),
    }
}
