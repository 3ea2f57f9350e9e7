//! The exec actuator against real child processes.

mod common;

use std::time::Duration;

use medic_core::Outcome;
use medic_driver::exec::{self, ExecLimits, ExecSetupError, Vars};

fn vars(target: &str) -> Vars {
    Vars {
        target: target.to_owned(),
        replicas: Some(3),
        strategy: "restart".to_owned(),
        action_id: "a17".to_owned(),
    }
}

fn argv(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn limits(timeout_ms: u64) -> ExecLimits {
    ExecLimits::with_timeout(Duration::from_millis(timeout_ms))
}

/// Bounds a test's await so a regression hangs no CI run.
async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("the action did not return within 30 s")
}

#[tokio::test]
async fn placeholders_are_whole_arguments_and_never_interpreted() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let hostile = format!("x; rm -rf /nonexistent $(touch {}) `id`", marker.display());
    let report = bounded(exec::run(
        &argv(&[
            "printf",
            "<%s>\\n",
            "{target}",
            "{replicas}",
            "{strategy}",
            "{action_id}",
            "--name={target}",
        ]),
        false,
        &vars(&hostile),
        limits(10_000),
    ))
    .await;
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    assert_eq!(
        report.stdout.text(),
        format!("<{hostile}>\n<3>\n<restart>\n<a17>\n<--name={{target}}>\n")
    );
    assert!(!marker.exists(), "the target name was run as a command");
}

#[tokio::test]
async fn the_environment_carries_the_values() {
    let report = bounded(exec::run(
        &argv(&[
            "sh",
            "-c",
            "echo \"$MEDIC_TARGET|$MEDIC_STRATEGY|$MEDIC_ACTION_ID|$MEDIC_REPLICAS\"",
        ]),
        false,
        &vars("web-1"),
        limits(10_000),
    ))
    .await;
    assert_eq!(report.outcome, Outcome::Success);
    assert_eq!(report.stdout.text(), "web-1|restart|a17|3\n");
}

#[tokio::test]
async fn a_missing_replica_count_is_refused_before_anything_runs() {
    let mut v = vars("web-1");
    v.replicas = None;
    let err = exec::substitute(&argv(&["scale", "{replicas}"]), &v).unwrap_err();
    assert!(matches!(
        err,
        ExecSetupError::NoValue {
            placeholder: "{replicas}"
        }
    ));
    let report = bounded(exec::run(
        &argv(&["true", "{replicas}"]),
        false,
        &v,
        limits(10_000),
    ))
    .await;
    assert!(
        matches!(&report.outcome, Outcome::Failure(r) if r.contains("{replicas}")),
        "{report:?}"
    );
    assert_eq!(report.code, None);
}

#[tokio::test]
async fn non_zero_exit_is_a_failure_with_the_reason() {
    let report = bounded(exec::run(
        &argv(&["sh", "-c", "echo working; echo 'disk is full' >&2; exit 3"]),
        false,
        &vars("db"),
        limits(10_000),
    ))
    .await;
    assert_eq!(report.code, Some(3));
    assert!(!report.timed_out);
    assert_eq!(
        report.outcome,
        Outcome::Failure("exit code 3: disk is full".to_owned())
    );
    assert_eq!(report.stdout.text(), "working\n");
}

#[tokio::test]
async fn a_signal_death_is_a_failure_naming_the_signal() {
    let report = bounded(exec::run(
        &argv(&["sh", "-c", "kill -9 $$"]),
        false,
        &vars("db"),
        limits(10_000),
    ))
    .await;
    assert_eq!(report.signal, Some(9));
    assert_eq!(
        report.outcome,
        Outcome::Failure("killed by signal 9".to_owned())
    );
}

#[tokio::test]
async fn a_missing_program_is_a_failure_not_a_panic() {
    let report = bounded(exec::run(
        &argv(&["/nonexistent/medic-test-program"]),
        false,
        &vars("db"),
        limits(10_000),
    ))
    .await;
    assert!(
        matches!(&report.outcome, Outcome::Failure(r) if r.contains("could not start") && r.contains("/nonexistent/medic-test-program")),
        "{report:?}"
    );
    let empty = bounded(exec::run(&[], false, &vars("db"), limits(10_000))).await;
    assert_eq!(empty.outcome, Outcome::Failure("empty command".to_owned()));
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    // The shell and its background sleep both ignore SIGTERM, so only the SIGKILL of the
    // whole group after the grace period can end them.
    let script = "trap '' TERM; sleep 300 & echo $$ $!; wait";
    let mut lim = limits(500);
    lim.grace = Duration::from_millis(200);
    let report = bounded(exec::run(
        &argv(&["sh", "-c", script]),
        false,
        &vars("db"),
        lim,
    ))
    .await;
    assert!(report.timed_out, "{report:?}");
    assert_eq!(
        report.signal,
        Some(9),
        "the leader ignores SIGTERM, so SIGKILL ended it"
    );
    assert!(
        matches!(&report.outcome, Outcome::Failure(r) if r.contains("did not finish") && r.contains("killed")),
        "{report:?}"
    );
    let text = report.stdout.text();
    let pids: Vec<u32> = text
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(
        pids.len(),
        2,
        "expected the shell's and the sleep's pid, got {text:?}"
    );
    for pid in pids {
        assert!(
            common::gone_within(pid, Duration::from_secs(5)).await,
            "pid {pid} of the timed-out group is still alive"
        );
    }
}

#[tokio::test]
async fn timeout_of_an_obedient_group_ends_at_sigterm() {
    let script = "sleep 300 & echo $$ $!; wait";
    let mut lim = limits(300);
    lim.grace = Duration::from_secs(20);
    let report = bounded(exec::run(
        &argv(&["sh", "-c", script]),
        false,
        &vars("db"),
        lim,
    ))
    .await;
    assert!(report.timed_out);
    assert_eq!(report.signal, Some(libc::SIGTERM));
    for pid in report.stdout.text().split_whitespace() {
        let pid: u32 = pid.parse().unwrap();
        assert!(
            common::gone_within(pid, Duration::from_secs(5)).await,
            "pid {pid} alive"
        );
    }
}

#[tokio::test]
async fn output_tails_are_bounded_and_keep_the_end() {
    let script = "head -c 300000 /dev/zero | tr '\\0' a; echo; echo END; \
                  head -c 300000 /dev/zero | tr '\\0' b >&2; echo >&2; echo ERR-END >&2; exit 1";
    let mut lim = limits(20_000);
    lim.output_cap = 1000;
    let report = bounded(exec::run(
        &argv(&["sh", "-c", script]),
        false,
        &vars("db"),
        lim,
    ))
    .await;
    assert_eq!(report.stdout.bytes.len(), 1000);
    let out = report.stdout.text();
    assert!(
        out.ends_with("a\nEND\n"),
        "{:?}",
        &out[out.len().saturating_sub(40)..]
    );
    assert_eq!(report.stdout.dropped + 1000, 300_000 + 1 + 4);
    assert_eq!(report.stderr.bytes.len(), 1000);
    assert!(report.stderr.text().ends_with("ERR-END\n"));
    assert!(report.stderr.dropped > 0);
    assert_eq!(
        report.outcome,
        Outcome::Failure("exit code 1: ERR-END".to_owned())
    );
}

#[tokio::test]
async fn shell_mode_passes_values_as_parameters_never_into_the_script() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let hostile = format!(
        "'; touch {} #$(touch {})",
        marker.display(),
        marker.display()
    );
    let script = "printf '<%s>' \"$1\" \"$2\" \"$MEDIC_TARGET\" \"$MEDIC_REPLICAS\"; printf '\\n'";
    let report = bounded(exec::run(
        &argv(&[script, "{target}", "{replicas}"]),
        true,
        &vars(&hostile),
        limits(10_000),
    ))
    .await;
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    assert_eq!(
        report.stdout.text(),
        format!("<{hostile}><3><{hostile}><3>\n")
    );
    assert!(!marker.exists(), "a value was interpreted by the shell");
}

#[tokio::test]
async fn shell_script_with_a_placeholder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let script = format!("touch {}; echo {{target}}", marker.display());
    let report = bounded(exec::run(
        &argv(&[&script]),
        true,
        &vars("db"),
        limits(10_000),
    ))
    .await;
    assert!(
        matches!(&report.outcome, Outcome::Failure(r) if r.contains("placeholder {target}")),
        "{report:?}"
    );
    assert!(!marker.exists(), "the refused script ran");
    let line = exec::command_line(&argv(&["echo \"$1\"", "{target}"]), true, &vars("db")).unwrap();
    assert_eq!(line, argv(&["/bin/sh", "-c", "echo \"$1\"", "medic", "db"]));
}

#[tokio::test]
async fn a_background_process_holding_the_pipes_does_not_hold_the_action() {
    // The leader exits at once; its background child keeps stdout open. The run ends after
    // the drain bound instead of waiting for the child.
    let mut lim = limits(20_000);
    lim.drain = Duration::from_millis(200);
    let report = bounded(exec::run(
        &argv(&["sh", "-c", "sleep 30 & echo $!; echo started"]),
        false,
        &vars("db"),
        lim,
    ))
    .await;
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    let text = report.stdout.text();
    assert!(text.ends_with("started\n"), "{text:?}");
    let pid: u32 = text.lines().next().unwrap().parse().unwrap();
    // It was started on purpose and is left alone; clean it up here.
    assert!(common::alive(pid));
    common::kill9(pid);
    assert!(common::gone_within(pid, Duration::from_secs(5)).await);
}
