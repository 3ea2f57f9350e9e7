//! Signals to whole process groups.
//!
//! Every child medic starts is the leader of its own process group (`process_group(0)`), so
//! its group id is its pid. Signalling the negative pid reaches the child and everything it
//! forked that stayed in the group (a shell's children, a worker pool), which is what a
//! timeout or a restart must stop.

/// Sends `signal` to every process of group `pgid`; returns whether the group existed.
///
/// Group ids 0 and 1 are refused: `kill(0, …)` would signal medic's own group and
/// `kill(-1, …)` every process medic may signal.
pub(crate) fn signal_group(pgid: u32, signal: libc::c_int) -> bool {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        return false;
    }
    #[allow(unsafe_code)]
    // SAFETY: kill(2) takes plain integers and touches no memory of ours. The group was
    // created for a child of ours; callers signal it while the leader is unreaped or right
    // after reaping it (a pgid is not handed out as a new pid while its group has members).
    let rc = unsafe { libc::kill(-pgid, signal) };
    rc == 0
}

/// SIGTERM to the group, then SIGCONT: a stopped process (a hang injected with SIGSTOP, or
/// one stopped by a debugger) only acts on the SIGTERM once it runs again, so without the
/// SIGCONT every stop of a stopped group would wait out the whole grace period (as systemd
/// does for the same reason).
pub(crate) fn term_group(pgid: u32) -> bool {
    let exists = signal_group(pgid, libc::SIGTERM);
    signal_group(pgid, libc::SIGCONT);
    exists
}

/// SIGKILL to the group.
pub(crate) fn kill_group(pgid: u32) -> bool {
    signal_group(pgid, libc::SIGKILL)
}
