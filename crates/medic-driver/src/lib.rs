//! The actuators: the only place medic carries out actions on targets.
//!
//! Main types: [`exec::run`] runs a program as argv with whole-argument placeholders, in its
//! own process group, under a deadline, keeping the tail of its output; [`http::run`] sends an
//! HTTP action with a capped response body; [`capture`] holds the bounded output buffers;
//! [`supervise::Supervisor`] spawns and owns the processes of `supervise:` targets (exit
//! events at once from the child handle, restart / reset / recreate / scale on the next free
//! ports, output rings, no orphans on stop, shutdown or drop).
//! Not built yet: the dispatch of engine acts with post-conditions (see issue 8, item 3).
//!
//! Invariants:
//! - nothing runs through a shell unless the policy says `shell: true`, and target data is
//!   never pasted into a shell script (it goes in as `"$1"`… or `MEDIC_*` variables);
//! - every child is the leader of its own process group, and stopping it on a timeout signals
//!   the whole group (SIGTERM, grace, SIGKILL), so nothing of it is left behind; a supervised
//!   process's group never outlives its leader;
//! - captured output is bounded (a byte tail per stream, a ring of lines per process);
//! - an action is reported as a [`medic_core::Outcome`], never as an error: a failed action
//!   is a result, with a reason fit for the journal.
//!
//! This crate holds the tokio side; `medic-orchestrator` (the engine) stays free of it.

pub mod capture;
pub mod daemon;
pub mod dispatch;
pub mod exec;
pub mod http;
mod pgroup;
pub mod supervise;

/// An error and its causes, joined with `: ` (for messages to users).
pub fn error_text(err: &dyn std::error::Error) -> String {
    error_chain(err)
}

/// An error and its causes, joined with `: `.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
