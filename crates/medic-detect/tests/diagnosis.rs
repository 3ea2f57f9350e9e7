//! Diagnosis: pattern validation, matching and combination, non-text signals, the planner's
//! approval decisions, the context collector against real sockets and processes, the
//! gibberish property, and accuracy on the labelled corpus.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use medic_core::{DiagnosisCategory, ManualClock, Risk, Strategy, Timestamp};
use medic_detect::diagnosis::context::{
    self, ContextLimits, ContextRequest, DiagnosticContext, ExitStatus, ProcessStatus,
};
use medic_detect::diagnosis::planner::{self, Approval, AutoPolicy, OptionKind};
use medic_detect::diagnosis::{Error, PatternLibrary, Signals, diagnose, eval, fixes};
use proptest::prelude::*;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn library() -> PatternLibrary {
    PatternLibrary::load(&repo_root().join("policies/patterns.yaml")).expect("shipped patterns")
}

fn issues(yaml: &str) -> Vec<String> {
    match PatternLibrary::parse("p.yaml", yaml) {
        Err(Error::InvalidPatterns { issues }) => issues.iter().map(|i| i.to_string()).collect(),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("invalid file accepted"),
    }
}

#[test]
fn shipped_patterns_validate() {
    let lib = library();
    assert!(lib.patterns().len() >= 100, "{}", lib.patterns().len());
    for c in DiagnosisCategory::ALL {
        if c != DiagnosisCategory::Unknown {
            assert!(
                lib.patterns().iter().any(|p| p.category == c),
                "no pattern for {c}"
            );
        }
    }
}

#[test]
fn a_pattern_file_is_read_as_the_policy_files_are() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("patterns.yaml");
    std::fs::write(&bad, b"patterns:\n  - id: caf\xe9\n").unwrap();
    let Err(Error::InvalidPatterns { issues }) = PatternLibrary::load(&bad) else {
        panic!("a file that is not UTF-8 was accepted");
    };
    let text: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
    assert_eq!(
        text,
        [format!(
            "{}:2:12: expected UTF-8 text, found the byte 0xe9",
            bad.display()
        )]
    );
    let Err(Error::InvalidPatterns { issues }) = PatternLibrary::load(&dir.path().join("none"))
    else {
        panic!("a missing file was accepted");
    };
    assert!(
        issues[0].to_string().contains("expected a readable file"),
        "{}",
        issues[0]
    );
}

#[test]
fn validation_reports_every_problem_with_location() {
    let yaml = "\
patterns:
  - id: ok_one
    category: crash
    confidence: 0.5
    regexes: ['panic: ']
  - id: ok_one
    category: kaboom
    confidence: 1.5
    regexes: ['(unclosed', '.*']
    strategies: [restart, reboot]
  - id: Bad Id
    category: unknown
    confidence: 0.5
    regexes: []
";
    let got = issues(yaml);
    let want = [
        "p.yaml:6:9: patterns[1].id: duplicate id \"ok_one\"",
        "p.yaml:7:15: patterns[1].category: expected one of virtualization,",
        "p.yaml:8:17: patterns[1].confidence: expected a number between 0 and 1, found 1.5",
        "p.yaml:9:15: patterns[1].regexes[0]: invalid regex",
        "p.yaml:9:28: patterns[1].regexes[1]: regex matches the empty line",
        "p.yaml:10:27: patterns[1].strategies[1]: expected one of restart,",
        "p.yaml:11:9: patterns[2].id: id \"Bad Id\" must use only [a-z0-9_.-]",
        "p.yaml:12:15: patterns[2].category: expected one of virtualization,",
        "p.yaml:14:14: patterns[2].regexes: at least one regex is required",
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (g, w) in got.iter().zip(want) {
        assert!(g.starts_with(w), "got {g:?}\nwant prefix {w:?}");
    }
}

#[test]
fn unknown_keys_and_bad_yaml_are_located() {
    let got = issues(
        "patterns:\n  - id: a\n    category: crash\n    confidence: 0.5\n    regexes: [x]\n    wieght: 2\n",
    );
    assert_eq!(got.len(), 1);
    assert!(got[0].starts_with("p.yaml:6:"), "{got:?}");
    assert!(got[0].contains("wieght"), "{got:?}");
    let got = issues("patterns: [\n");
    assert!(got[0].starts_with("p.yaml:"), "{got:?}");
    assert!(!got[0].starts_with("p.yaml:0:0"), "{got:?}");
}

#[test]
fn oom_line_is_resource_exhaustion_with_its_evidence() {
    let text = "starting worker\n\
        [1234567.123456] Out of memory: Killed process 28341 (java) total-vm:8412344kB, anon-rss:6291012kB\n\
        worker exited";
    let d = diagnose(&library(), text, &Signals::default());
    assert_eq!(d.category(), DiagnosisCategory::ResourceExhaustion);
    assert!(d.confidence() >= 0.9, "{}", d.confidence());
    let top = &d.causes[0];
    assert_eq!(top.patterns[0], "kernel_oom_killer");
    assert_eq!(top.evidence[0].line, 2);
    assert_eq!(d.n_lines, 3);
    assert_eq!(
        d.to_finding().pattern_id.as_deref(),
        Some("kernel_oom_killer")
    );
}

#[test]
fn more_evidence_raises_confidence_and_causes_are_ranked() {
    let lib = library();
    let one = diagnose(
        &lib,
        "Traceback (most recent call last):",
        &Signals::default(),
    );
    let two = diagnose(
        &lib,
        "Traceback (most recent call last):\nx\nTraceback (most recent call last):",
        &Signals::default(),
    );
    assert!(two.confidence() > one.confidence());
    assert_eq!(two.causes[0].n_evidence, 2);

    // A generic crash line and a specific network cause: the specific one ranks first, the
    // other is kept as a second cause.
    let text = "Traceback (most recent call last):\n  File \"x.py\", line 1\nConnectionRefusedError: [Errno 111] Connection refused";
    let d = diagnose(&lib, text, &Signals::default());
    assert_eq!(d.category(), DiagnosisCategory::Network);
    assert_eq!(d.causes[1].category, DiagnosisCategory::Crash);
    assert!(d.causes[0].confidence > d.causes[1].confidence);

    // Never certain, however much evidence.
    let many = "Segmentation fault (core dumped)\n".repeat(50);
    let d = diagnose(&lib, &many, &Signals::default());
    assert!(d.confidence() <= 0.99);
    assert!(d.causes[0].evidence.len() <= 5);
    assert_eq!(d.causes[0].n_evidence, 50);
}

#[test]
fn non_text_signals_count() {
    let lib = library();
    let oom = Signals {
        exit_signal: Some(9),
        rss_ratio: Some(0.96),
        disk_used: Vec::new(),
    };
    let d = diagnose(&lib, "", &oom);
    assert_eq!(d.category(), DiagnosisCategory::ResourceExhaustion);
    assert_eq!(d.causes[0].patterns, ["signal.oom_kill"]);
    let far_from_limit = Signals {
        rss_ratio: Some(0.4),
        ..oom.clone()
    };
    assert!(diagnose(&lib, "", &far_from_limit).causes.is_empty());
    let disk = Signals {
        disk_used: vec![("/var/lib/app".to_owned(), 0.97), ("/tmp".to_owned(), 0.2)],
        ..Signals::default()
    };
    let d = diagnose(&lib, "", &disk);
    assert_eq!(d.category(), DiagnosisCategory::Storage);
    assert!(d.causes[0].evidence[0].text.contains("/var/lib/app"));
}

fn ctx_with_dependency(reachable: bool) -> DiagnosticContext {
    DiagnosticContext {
        collected_at: Timestamp::ZERO,
        output_tail: Vec::new(),
        output_dropped: 0,
        process: None,
        system: Default::default(),
        disks: Vec::new(),
        dependencies: vec![context::DependencyCheck {
            name: "db".to_owned(),
            address: "127.0.0.1:1".to_owned(),
            reachable,
            latency_ms: None,
            error: None,
        }],
        problems: Vec::new(),
    }
}

#[test]
fn planner_auto_executes_only_above_threshold_and_within_risk() {
    let lib = library();
    let text = "thread 'main' panicked at src/main.rs:42:37:\ncalled `Option::unwrap()` on a `None` value\nSegmentation fault (core dumped)";
    let d = diagnose(&lib, text, &Signals::default());
    assert_eq!(d.category(), DiagnosisCategory::Crash);
    let healthy = ctx_with_dependency(true);
    let plan = planner::plan(&d, Some(&healthy), &[], &AutoPolicy::DEFAULT);
    let first = &plan.options[0];
    assert_eq!(first.kind, OptionKind::Retry);
    assert_eq!(first.option.strategy, Strategy::Restart);
    assert_eq!(first.option.risk, Risk::Low);
    assert!(
        first.option.confidence >= 0.85,
        "{}",
        first.option.confidence
    );
    assert_eq!(first.approval, Approval::Auto);
    assert_eq!(plan.options.last().unwrap().kind, OptionKind::Escalate);
    assert!(
        plan.options
            .iter()
            .any(|o| o.kind == OptionKind::Manual && !o.steps.is_empty())
    );

    // A stricter tier: same option, now waits.
    let strict = AutoPolicy {
        confidence_threshold: 0.99,
        auto_approve_risk: Risk::Low,
    };
    let plan = planner::plan(&d, Some(&healthy), &[], &strict);
    assert!(
        matches!(plan.options[0].approval, Approval::NeedsApproval(ref r) if r.contains("confidence"))
    );
    assert!(plan.first_auto().is_none());

    // A dependency is down: restart is riskier and less likely to help.
    let degraded = ctx_with_dependency(false);
    let plan = planner::plan(&d, Some(&degraded), &[], &AutoPolicy::DEFAULT);
    assert!(!plan.infrastructure_healthy);
    let restart = plan
        .options
        .iter()
        .find(|o| o.option.strategy == Strategy::Restart)
        .unwrap();
    assert_eq!(restart.option.risk, Risk::Medium);
    assert!(matches!(restart.approval, Approval::NeedsApproval(_)));
}

#[test]
fn planner_repairs_need_risk_allowance() {
    let lib = library();
    let d = diagnose(
        &lib,
        "2024/02/11 13:22:07 [crit] 1182#1182: accept4() failed (24: Too many open files)\n[ 8812.3] Memory cgroup out of memory: Killed process 77123 (python3)",
        &Signals::default(),
    );
    let inputs = fixes::FixInputs {
        memory_limit_bytes: Some(1 << 30),
        memory_usage_ratio: Some(0.97),
        ..Default::default()
    };
    let bounds = fixes::FixBounds {
        max_memory_bytes: Some(4 << 30),
        max_timeout: None,
    };
    let proposals = fixes::propose(&d, &inputs, &bounds);
    assert_eq!(proposals.fixes[0].kind, fixes::FixKind::RaiseMemoryLimit);
    let plan = planner::plan(&d, None, &proposals.fixes, &AutoPolicy::DEFAULT);
    let repair = plan
        .options
        .iter()
        .find(|o| o.kind == OptionKind::Repair)
        .unwrap();
    assert_eq!(repair.option.risk, Risk::High);
    assert!(matches!(repair.approval, Approval::NeedsApproval(ref r) if r.contains("risk")));
    let permissive = AutoPolicy {
        confidence_threshold: 0.85,
        auto_approve_risk: Risk::High,
    };
    let plan = planner::plan(&d, None, &proposals.fixes, &permissive);
    let repair = plan
        .options
        .iter()
        .find(|o| o.kind == OptionKind::Repair)
        .unwrap();
    assert_eq!(repair.approval, Approval::Auto);
    assert_eq!(
        repair.fix.as_ref().unwrap().new,
        fixes::FixValue::Bytes(3 << 29)
    );
}

#[test]
fn unknown_text_plans_a_cautious_restart_and_escalation() {
    let d = diagnose(&library(), "all quiet here", &Signals::default());
    assert_eq!(d.category(), DiagnosisCategory::Unknown);
    assert_eq!(d.to_finding().confidence, 0.0);
    let plan = planner::plan(&d, None, &[], &AutoPolicy::DEFAULT);
    assert_eq!(plan.options[0].option.strategy, Strategy::Restart);
    assert!(matches!(
        plan.options[0].approval,
        Approval::NeedsApproval(_)
    ));
    assert_eq!(
        plan.options.last().unwrap().option.strategy,
        Strategy::Escalate
    );
}

#[test]
fn collector_checks_real_sockets_disks_and_bounds() {
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let open_addr = open.local_addr().unwrap().to_string();
    let closed_addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let req = ContextRequest {
        output: (0..500).map(|i| format!("line {i}")).collect(),
        process: Some(ProcessStatus {
            pid: Some(42),
            restarts: 3,
            exit: Some(ExitStatus::Signal(9)),
            rss_bytes: Some(970),
            memory_limit_bytes: Some(1000),
            uptime_s: Some(12.0),
        }),
        data_paths: vec![
            dir.path().to_owned(),
            PathBuf::from("/nonexistent/medic/path"),
        ],
        dependencies: vec![
            ("up".to_owned(), open_addr.clone()),
            ("down".to_owned(), closed_addr),
        ],
    };
    let clock = ManualClock::new(Timestamp::from_secs(1000));
    let ctx = context::collect(&req, &ContextLimits::STANDARD, &clock);
    assert_eq!(ctx.output_tail.len(), 200);
    assert_eq!(ctx.output_tail[0], "line 300");
    assert_eq!(ctx.output_dropped, 300);
    assert!(ctx.dependencies[0].reachable, "{:?}", ctx.dependencies[0]);
    assert!(ctx.dependencies[0].latency_ms.is_some());
    assert!(!ctx.dependencies[1].reachable);
    assert!(ctx.dependencies[1].error.is_some());
    assert!(ctx.disks[0].total_bytes.unwrap() > 0);
    assert!(ctx.disks[0].used_ratio.is_some());
    assert!(ctx.disks[1].error.is_some());
    assert!(ctx.system.mem_total_bytes.unwrap() > 0);
    // Serialisable, and its signals feed the analyzer: SIGKILL at 97% of the limit.
    let json = serde_json::to_string(&ctx).unwrap();
    let back: DiagnosticContext = serde_json::from_str(&json).unwrap();
    assert_eq!(back, ctx);
    let d = diagnose(&library(), "", &Signals::from_context(&ctx));
    assert_eq!(d.category(), DiagnosisCategory::ResourceExhaustion);

    // No time left: dependencies are named as skipped, not waited for.
    let none = ContextLimits {
        total: Duration::ZERO,
        ..ContextLimits::STANDARD
    };
    let ctx = context::collect(&req, &none, &clock);
    assert!(ctx.dependencies.is_empty());
    assert!(
        ctx.problems.iter().any(|p| p.contains("deadline")),
        "{:?}",
        ctx.problems
    );
    drop(open);
}

#[test]
fn a_real_process_killed_by_sigkill_is_diagnosed_from_its_output_and_status() {
    use std::os::unix::process::ExitStatusExt;
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("echo 'FATAL:  password authentication failed for user \"app\"' >&2; kill -9 $$")
        .output()
        .expect("sh runs");
    let signal = out.status.signal();
    assert_eq!(signal, Some(9));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let signals = Signals {
        exit_signal: signal,
        rss_ratio: Some(0.1),
        disk_used: Vec::new(),
    };
    let d = diagnose(&library(), &stderr, &signals);
    // Killed far below its memory limit: not an OOM; the text says why it failed.
    assert_eq!(d.category(), DiagnosisCategory::Credential);
    assert_eq!(d.causes.len(), 1);
}

fn corpus_accuracy(name: &str) -> eval::EvalReport {
    let path = repo_root().join("tests/data/diagnosis").join(name);
    let samples = eval::load_corpus(&path).expect("corpus");
    eval::evaluate(&library(), &samples)
}

#[test]
fn corpus_accuracy_at_least_ninety_percent() {
    let report = corpus_accuracy("corpus.jsonl");
    assert!(report.n >= 300, "{}", report.n);
    for m in &report.misses {
        eprintln!(
            "miss: expected {} got {}: {}",
            m.expected, m.predicted, m.text
        );
    }
    assert!(report.accuracy >= 0.9, "accuracy {}", report.accuracy);
    assert_eq!(report.confident_wrong, 0);
}

#[test]
fn holdout_accuracy_at_least_ninety_percent() {
    let report = corpus_accuracy("holdout.jsonl");
    assert!(report.accuracy >= 0.9, "accuracy {}", report.accuracy);
}

#[test]
fn corpus_lines_are_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"text\":\"x\",\"category\":\"crash\"}\n\n{\"text\":\"y\",\"category\":\"oops\"}\n",
    )
    .unwrap();
    let err = eval::load_corpus(&bad).unwrap_err();
    assert!(
        err.to_string().ends_with(":3: unknown category \"oops\""),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random text never yields a category above 0.5 unless a pattern really matched: every
    /// confident cause's evidence lines are matched by one of its patterns' regexes, checked
    /// independently of the RegexSet.
    #[test]
    fn gibberish_is_never_confidently_diagnosed(text in "[ -~\\n\\t]{0,400}") {
        let lib = library_cached();
        let d = diagnose(lib, &text, &Signals::default());
        for cause in d.causes.iter().filter(|c| c.confidence > 0.5) {
            prop_assert!(!cause.evidence.is_empty());
            for e in &cause.evidence {
                let p = lib.get(&e.pattern_id).expect("evidence names a pattern");
                prop_assert_eq!(p.category, cause.category);
                let matched = p.regexes.iter().any(|r| regex::Regex::new(r).unwrap().is_match(&e.text));
                prop_assert!(matched, "evidence {:?} does not match {}", e.text, p.id);
            }
        }
    }

    /// Random words (no error vocabulary) are `unknown`.
    #[test]
    fn random_words_are_unknown(words in proptest::collection::vec("[a-z]{2,9}", 0..60)) {
        let d = diagnose(library_cached(), &words.join(" "), &Signals::default());
        prop_assert_eq!(d.category(), DiagnosisCategory::Unknown);
        prop_assert_eq!(d.confidence(), 0.0);
    }
}

fn library_cached() -> &'static PatternLibrary {
    static LIB: std::sync::OnceLock<PatternLibrary> = std::sync::OnceLock::new();
    LIB.get_or_init(library)
}

/// Runs a real "backup job" and its exec post-condition (`test -f OUTPUT`, as argv, no shell
/// interpolation of target data). A job that exits 0 without writing its output is a shadow
/// error; one that does its job is not.
#[test]
fn shadow_error_from_a_real_job_that_succeeds_without_doing_its_job() {
    use medic_core::Outcome;
    use medic_detect::diagnosis::shadow::{PostConditionResult, shadow_error};

    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("db.sql.gz");
    let run_job = |script: &str| {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("backup")
            .arg(&output)
            .status()
            .expect("sh runs");
        if status.success() {
            Outcome::Success
        } else {
            Outcome::Failure(format!("{status}"))
        }
    };
    let post_condition = || {
        let status = std::process::Command::new("test")
            .arg("-f")
            .arg(&output)
            .status()
            .expect("test runs");
        PostConditionResult {
            check: format!("exec test -f {}", output.display()),
            passed: status.success(),
            detail: format!("exit code {}", status.code().unwrap_or(-1)),
        }
    };

    // "Succeeds" (exit 0) but writes nothing.
    let reported = run_job("echo 'backup complete'; exit 0");
    assert_eq!(reported, Outcome::Success);
    let d = shadow_error("db-1", "backup", &reported, &[post_condition()]).expect("a shadow error");
    assert_eq!(d.category(), DiagnosisCategory::StateMismatch);
    assert!(d.confidence() >= 0.9);
    let line = &d.causes[0].evidence[0].text;
    assert!(line.contains("exit code 1"), "{line}");
    // The evidence line is recognised by the pattern library too (journals, logs).
    let again = diagnose(&library(), line, &Signals::default());
    assert_eq!(again.category(), DiagnosisCategory::StateMismatch);

    // Does its job: no shadow error.
    let reported = run_job("echo data > \"$1\"");
    assert_eq!(reported, Outcome::Success);
    assert!(shadow_error("db-1", "backup", &reported, &[post_condition()]).is_none());

    // A reported failure is a plain failure, not a shadow error.
    std::fs::remove_file(&output).unwrap();
    let reported = run_job("exit 3");
    assert!(shadow_error("db-1", "backup", &reported, &[post_condition()]).is_none());
}
