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

/// Sends SIGKILL to `pid`.
pub fn kill9(pid: u32) {
    let pid = libc::pid_t::try_from(pid).expect("a pid fits pid_t");
    assert!(pid > 1, "refusing to signal pid {pid}");
    #[allow(unsafe_code)]
    // SAFETY: kill(2) takes plain integers; `pid` is a child this test started.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill -9 {pid} failed");
}

/// Sends `signal` to the process group `pgid` with kill(2).
///
/// Not with the `kill` program: here procps-ng 4.0.2's `kill -STOP -PGID` also stopped
/// processes outside the group, the test runner and the shell that started it included.
pub fn signal_group(pgid: u32, signal: libc::c_int) {
    let pgid = libc::pid_t::try_from(pgid).expect("a pgid fits pid_t");
    assert!(pgid > 1, "refusing to signal group {pgid}");
    #[allow(unsafe_code)]
    // SAFETY: kill(2) takes plain integers; the group is one this test's supervisor created.
    let rc = unsafe { libc::kill(-pgid, signal) };
    assert_eq!(rc, 0, "kill({}, {signal}) failed", -pgid);
}
