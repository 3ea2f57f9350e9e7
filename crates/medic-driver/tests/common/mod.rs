//! Helpers shared by the medic-driver integration tests.

#![allow(dead_code)] // each test file uses a different subset

use std::time::Duration;

/// Whether `pid` is a live process: present in /proc and neither a zombie nor dead.
///
/// A zombie is dead (it only waits for its parent, possibly init, to reap it), so it counts
/// as gone.
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised comm, which may itself contain spaces or ')'.
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return false;
    };
    !matches!(after.split_whitespace().next(), Some("Z" | "X" | "x"))
}

/// Waits until `pid` is gone, at most `limit`; returns whether it is gone.
///
/// SIGKILL is delivered asynchronously and an orphan is reaped by init, so the death of a
/// process that is not our child can only be observed by looking: this polls /proc, with a
/// bound, and asserts nothing about how long it took.
pub async fn gone_within(pid: u32, limit: Duration) -> bool {
    let poll = async {
        while alive(pid) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(limit, poll).await.is_ok()
}

/// Sends SIGKILL to `pid` with the `kill` program (the tests do not link libc).
pub fn kill9(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -9 {pid} failed");
}
