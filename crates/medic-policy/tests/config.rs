//! medic-policy's integration tests: broken files with their exact messages, the shipped
//! files, durations, tier matching and inheritance, cycles, and no panic on any input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use medic_policy::config::POLICY_KEYS;
use medic_policy::{TierPolicy, parse_duration, parse_fleet_str, parse_policies_str};

#[path = "config/schema.rs"]
mod schema;

fn repo_policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

fn shipped_tiers() -> BTreeMap<String, TierPolicy> {
    let text = std::fs::read_to_string(repo_policies().join("tiers.yaml")).unwrap();
    parse_policies_str(&text, "tiers.yaml").unwrap()
}

fn fleet_errors(text: &str) -> Vec<String> {
    match parse_fleet_str(text, "fleet.yaml", &shipped_tiers()) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

fn policy_errors(text: &str) -> Vec<String> {
    match parse_policies_str(text, "tiers.yaml") {
        Ok(_) => Vec::new(),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

const DURATION: &str = "a duration like 500ms, 300s, 5m or 1h30m (or a number of seconds)";

#[test]
fn broken_policy_files_report_exact_locations() {
    let policy_keys = POLICY_KEYS.join(", ");
    let cases: Vec<(&str, &str, Vec<String>)> = vec![
        (
            "unknown key",
            "healing_policies:\n  default:\n    max_restart_attempts: 3\n    restart_cooldwn: 300s\n",
            vec![format!(
                "tiers.yaml:4:5: healing_policies.default.restart_cooldwn: expected one of {policy_keys}, found unknown key \"restart_cooldwn\""
            )],
        ),
        (
            "wrong type",
            "healing_policies:\n  default:\n    max_restart_attempts: three\n",
            vec!["tiers.yaml:3:27: healing_policies.default.max_restart_attempts: expected an integer from 0 to 32, found \"three\"".into()],
        ),
        (
            "limits beyond what the engine remembers",
            "healing_policies:\n  default:\n    max_restart_attempts: 40\n    crash_loop: { restarts: 33, window: 10m }\n",
            vec![
                "tiers.yaml:3:27: healing_policies.default.max_restart_attempts: expected an integer from 0 to 32, found 40".into(),
                "tiers.yaml:4:29: healing_policies.default.crash_loop.restarts: expected an integer from 1 to 32, found 33".into(),
            ],
        ),
        (
            "negative duration",
            "healing_policies:\n  default:\n    restart_cooldown: -5s\n",
            vec![format!("tiers.yaml:3:23: healing_policies.default.restart_cooldown: expected {DURATION}, found \"-5s\"")],
        ),
        (
            "durations longer than a year, as a bare number and with a unit",
            "healing_policies:\n  default:\n    restart_cooldown: 9223372036854775808\n    circuit_break_duration: 366d\n",
            vec![
                "tiers.yaml:3:23: healing_policies.default.restart_cooldown: expected a duration of at most 365d, found 9223372036854775808".into(),
                "tiers.yaml:4:29: healing_policies.default.circuit_break_duration: expected a duration of at most 365d, found \"366d\"".into(),
            ],
        ),
        (
            "non-finite numbers, each at its key and echoed as written",
            "healing_policies:\n  default:\n    restart_cooldown: 1e400\n    verify_deadline: .nan\n    scale_threshold: .inf\n    backoff: { multiplier: .Inf }\n    backup_instances: -.inf\n",
            vec![
                "tiers.yaml:3:23: healing_policies.default.restart_cooldown: expected a duration of at most 365d, found 1e400".into(),
                format!("tiers.yaml:4:22: healing_policies.default.verify_deadline: expected {DURATION}, found .nan"),
                "tiers.yaml:5:22: healing_policies.default.scale_threshold: expected a number between 0 and 1, found .inf".into(),
                "tiers.yaml:6:28: healing_policies.default.backoff.multiplier: expected a finite number of at least 1, found .Inf".into(),
                "tiers.yaml:7:23: healing_policies.default.backup_instances: expected an integer from 0 to 4294967295, found -.inf".into(),
            ],
        ),
        (
            "a key written twice, in a tier and in a nested map",
            "healing_policies:\n  default:\n    max_restart_attempts: 3\n    backoff: { initial: 5s, initial: 6s }\n    max_restart_attempts: 4\n",
            vec![
                "tiers.yaml:4:29: healing_policies.default.backoff.initial: expected each key once, found a second \"initial\" (first at line 4, column 16)".into(),
                "tiers.yaml:5:5: healing_policies.default.max_restart_attempts: expected each key once, found a second \"max_restart_attempts\" (first at line 3)".into(),
            ],
        ),
        (
            "an empty tier name",
            "healing_policies:\n  \"\": { agents: [a] }\n",
            vec!["tiers.yaml:2:3: healing_policies.\"\": expected a name of letters, digits, '-', '_' and '.', found \"\"".into()],
        ),
        (
            "malformed duration",
            "healing_policies:\n  critical_agents:\n    policy: { restart_cooldown: 5 minutes }\n",
            vec![format!("tiers.yaml:3:33: healing_policies.critical_agents.policy.restart_cooldown: expected {DURATION}, found \"5 minutes\"")],
        ),
        (
            "ratio out of range",
            "healing_policies:\n  default:\n    scale_threshold: 1.5\n",
            vec!["tiers.yaml:3:22: healing_policies.default.scale_threshold: expected a number between 0 and 1, found 1.5".into()],
        ),
        (
            "unknown strategy in a rule",
            "healing_policies:\n  default:\n    rules:\n      - { name: r, when: { failing: [liveness] }, then: reboot }\n",
            vec!["tiers.yaml:4:57: healing_policies.default.rules[0].then: expected one of restart, reset, recreate, scale, circuit_break, rollback, reroute, repair, escalate, observe, found \"reboot\"".into()],
        ),
        (
            "unknown probe level in a condition",
            "healing_policies:\n  default:\n    rules:\n      - name: r\n        when: { failing: [alive] }\n        then: restart\n",
            vec!["tiers.yaml:5:27: healing_policies.default.rules[0].when.failing[0]: expected one of liveness, readiness, performance, resources, dependencies, found \"alive\"".into()],
        ),
        (
            "rule without conditions",
            "healing_policies:\n  default:\n    rules:\n      - { name: r, when: {}, then: restart }\n",
            vec!["tiers.yaml:4:26: healing_policies.default.rules[0].when: expected at least one of health, failing, utilization_above, utilization_above_scale_threshold, memory_ratio_above, error_rate_above, anomaly_kind, diagnosis, predicted_failure, version_changed_within, minority_of_group, found a map".into()],
        ),
        (
            "misspelt tier key",
            "healing_policies:\n  critical_agents:\n    agent: [crewai]\n",
            vec!["tiers.yaml:3:5: healing_policies.critical_agents.agent: expected one of agents, labels, policy, found unknown key \"agent\"".into()],
        ),
        (
            "backoff initial above max",
            "healing_policies:\n  default:\n    backoff: { initial: 10m, max: 300s }\n",
            vec!["tiers.yaml:3:5: healing_policies.default.backoff: expected backoff.initial (600s) at most backoff.max (300s), found it larger".into()],
        ),
        (
            "agent in two tiers",
            "healing_policies:\n  a:\n    agents: [crewai]\n  b:\n    agents: [crewai]\n",
            vec!["tiers.yaml:4:3: healing_policies.b.agents: expected each agent in one tier, found \"crewai\" also in a".into()],
        ),
        (
            "yaml syntax error",
            "healing_policies:\n  default: { max_restart_attempts: 3\n",
            vec!["tiers.yaml:2:12: expected valid YAML, found unclosed bracket '{'".into()],
        ),
        (
            "policy keys beside agents",
            "healing_policies:\n  critical_agents:\n    agents: [crewai]\n    max_restart_attempts: 5\n",
            vec!["tiers.yaml:4:5: healing_policies.critical_agents.max_restart_attempts: expected max_restart_attempts under healing_policies.critical_agents.policy, found it beside agents and labels".into()],
        ),
        (
            "policy: under default",
            "healing_policies:\n  default:\n    policy: { max_restart_attempts: 3 }\n",
            vec!["tiers.yaml:3:5: healing_policies.default.policy: expected the policy keys directly under default, found policy:".into()],
        ),
        (
            "two documents in one file",
            "healing_policies: {}\n---\nhealing_policies: {}\n",
            vec!["tiers.yaml:3:1: expected valid YAML, found a second YAML document (one document per file)".into()],
        ),
        (
            "a fleet file where a policy file belongs",
            "targets:\n  - name: a\n",
            vec!["tiers.yaml:1:1: targets: expected healing_policies in a policy file, found targets (name fleet files fleet*.yaml or keep them elsewhere)".into()],
        ),
        (
            "missing top-level key",
            "policies:\n  default: {}\n",
            vec![
                "tiers.yaml:1:1: healing_policies: expected a map of tiers, found nothing".into(),
                "tiers.yaml:1:1: policies: expected one of healing_policies, found unknown key \"policies\"".into(),
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (name, text, expected) in &cases {
        let got = policy_errors(text);
        if &got != expected {
            failures.push(format!(
                "{name}:\n  expected {expected:#?}\n  got      {got:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn broken_fleet_files_report_exact_locations() {
    let cases: Vec<(&str, &str, Vec<&str>)> = vec![
        (
            "duplicate target names",
            "targets:\n  - name: a\n  - name: a\n",
            vec![
                "fleet.yaml:3:11: targets[1].name: expected a unique target name, found \"a\" again (first at line 2)",
            ],
        ),
        (
            "depends_on naming no target",
            "targets:\n  - name: web\n    depends_on: [db]\n",
            vec![
                "fleet.yaml:3:18: targets[0].depends_on[0]: expected the name of a target in this file, found \"db\"",
            ],
        ),
        (
            "a broken action and its broken post-condition, both reported",
            "targets:\n  - name: w\n    actions:\n      restart:\n        exec: []\n        post_condition: { tcp: { addr: nowhere } }\n",
            vec![
                "fleet.yaml:5:15: targets[0].actions.restart.exec: expected a non-empty list of strings (program and arguments), found an empty list",
                "fleet.yaml:6:40: targets[0].actions.restart.post_condition.tcp.addr: expected an address host:port with a port from 1 to 65535, found \"nowhere\"",
            ],
        ),
        (
            "a broken check and a broken interval in one probe, both reported",
            "targets:\n  - name: w\n    probes:\n      liveness: { http: { url: ftp://x }, every: soon }\n",
            vec![
                "fleet.yaml:4:32: targets[0].probes.liveness.http.url: expected an http:// or https:// URL with a host, found \"ftp://x\"",
                &*format!("fleet.yaml:4:50: targets[0].probes.liveness.every: expected {DURATION}, found \"soon\"").leak(),
            ],
        ),
        (
            "a probe interval that would overflow every x failure_threshold",
            "targets:\n  - name: w\n    probes:\n      liveness: { exec: [\"true\"], every: 9223372036854775807 }\n    startup_delay: 8761h\n",
            vec![
                "fleet.yaml:4:42: targets[0].probes.liveness.every: expected a duration of at most 365d, found 9223372036854775807",
                "fleet.yaml:5:20: targets[0].startup_delay: expected a duration of at most 365d, found \"8761h\"",
            ],
        ),
        (
            "integers beyond a u32, named with the real range and echoed as written",
            "targets:\n  - name: w\n    replicas: { min: 18446744073709551615, max: 18446744073709551616, initial: 4294967296 }\n",
            vec![
                "fleet.yaml:3:22: targets[0].replicas.min: expected an integer from 0 to 4294967295, found 18446744073709551615",
                "fleet.yaml:3:49: targets[0].replicas.max: expected an integer from 1 to 4294967295, found 18446744073709551616",
                "fleet.yaml:3:80: targets[0].replicas.initial: expected an integer from 0 to 4294967295, found 4294967296",
            ],
        ),
        (
            "an integer echoed as written, in hex",
            "targets:\n  - name: w\n    replicas: { max: 0x10, min: 0x100000000 }\n",
            vec![
                "fleet.yaml:3:33: targets[0].replicas.min: expected an integer from 0 to 4294967295, found 0x100000000",
            ],
        ),
        (
            "a name written twice in one target",
            "targets:\n  - name: a\n    name: b\n  - name: c\n",
            vec![
                "fleet.yaml:3:5: targets[0].name: expected each key once, found a second \"name\" (first at line 2)",
            ],
        ),
        (
            "a probe timeout that is not a number",
            "targets:\n  - name: w\n    probes:\n      liveness: { exec: [\"true\"], timeout: .nan }\n",
            vec![
                &*format!("fleet.yaml:4:44: targets[0].probes.liveness.timeout: expected {DURATION}, found .nan").leak(),
            ],
        ),
        (
            "keys that are a map, a list or nothing",
            "targets:\n  - ? {a: 1}\n    : b\n    name: w\n  - [a]: c\n    name: v\n  - {: x, name: u}\n",
            vec![
                "fleet.yaml:2:7: targets[0]: expected a string key, found a map",
                "fleet.yaml:5:5: targets[1]: expected a string key, found a list",
                "fleet.yaml:7:6: targets[2]: expected a string key, found nothing",
            ],
        ),
        (
            "nesting deeper than the parser allows",
            "targets: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
            vec!["fleet.yaml:1:33: expected valid YAML, found nesting deeper than 24 levels"],
        ),
        (
            "an alias inside its own anchor",
            "targets: &t [{name: a, depends_on: *t}]\n",
            vec!["fleet.yaml:1:36: expected valid YAML, found an alias inside its own anchor (a structure containing itself)"],
        ),
        (
            "an empty label key is a key like any other",
            "targets:\n  - { name: w, labels: { \"\": x } }\n",
            vec![],
        ),
        (
            "a dependency listed twice",
            "targets:\n  - name: db\n  - name: web\n    depends_on: [db, db]\n",
            vec![
                "fleet.yaml:4:22: targets[1].depends_on[1]: expected each dependency once, found \"db\" again",
            ],
        ),
        (
            "unknown tier",
            "targets:\n  - name: web\n    tier: critical\n",
            vec![
                "fleet.yaml:3:11: targets[0].tier: expected one of critical_agents, default, lightweight_agents, found \"critical\"",
            ],
        ),
        (
            "target matching two tiers",
            "targets:\n  - name: semgrep-1\n    labels: { type: crewai }\n",
            vec![
                "fleet.yaml:2:11: targets[0].name: expected a target matching at most one tier (set tier: to choose), found \"semgrep-1\" matching critical_agents and lightweight_agents",
            ],
        ),
        (
            "empty argv",
            "targets:\n  - name: w\n    probes:\n      liveness: { exec: [] }\n",
            vec![
                "fleet.yaml:4:25: targets[0].probes.liveness.exec: expected a non-empty list of strings (program and arguments), found an empty list",
            ],
        ),
        (
            "bad url",
            "targets:\n  - name: w\n    probes:\n      liveness: { http: { url: \"127.0.0.1:80/health\" } }\n",
            vec![
                "fleet.yaml:4:32: targets[0].probes.liveness.http.url: expected an http:// or https:// URL with a host, found \"127.0.0.1:80/health\"",
            ],
        ),
        (
            "bad address",
            "targets:\n  - name: w\n    probes:\n      readiness: { tcp: { addr: \"127.0.0.1:70000\" } }\n",
            vec![
                "fleet.yaml:4:33: targets[0].probes.readiness.tcp.addr: expected an address host:port with a port from 1 to 65535, found \"127.0.0.1:70000\"",
            ],
        ),
        (
            "unknown strategy in actions",
            "targets:\n  - name: w\n    actions:\n      reboot: { exec: [reboot] }\n",
            vec![
                "fleet.yaml:4:7: targets[0].actions.reboot: expected one of restart, reset, recreate, scale, circuit_break, rollback, reroute, repair, escalate, observe, found unknown key \"reboot\"",
            ],
        ),
        (
            "scale without replica room",
            "targets:\n  - name: w\n    actions:\n      scale: { exec: [./scale.sh, \"{replicas}\"] }\n",
            vec![
                "fleet.yaml:4:7: targets[0].actions.scale: expected replicas.max greater than replicas.min for a scale action, found min 1 and max 1",
            ],
        ),
        (
            "labels of the wrong type",
            "targets:\n  - name: w\n    labels: [a, b]\n",
            vec!["fleet.yaml:3:13: targets[0].labels: expected a map, found a list"],
        ),
        (
            "missing name",
            "targets:\n  - tier: default\n",
            vec![
                "fleet.yaml:2:5: targets[0].name: expected a name of letters, digits, '-', '_' and '.', found nothing",
            ],
        ),
        (
            "two checks in one probe",
            "targets:\n  - name: w\n    probes:\n      liveness: { tcp: { addr: \"127.0.0.1:1\" }, exec: [\"true\"] }\n",
            vec![
                "fleet.yaml:4:49: targets[0].probes.liveness.exec: expected exactly one of http, tcp, process, exec, found tcp and exec",
            ],
        ),
        (
            "environment variable names a process cannot hold",
            "targets:\n  - name: s\n    supervise:\n      command: [sleep, \"1\"]\n      env: { \"\": x, \"A=B\": y, OK: z }\n",
            vec![
                "fleet.yaml:5:14: targets[0].supervise.env: expected an environment variable name (not empty, without = or NUL), found \"\"",
                "fleet.yaml:5:21: targets[0].supervise.env: expected an environment variable name (not empty, without = or NUL), found \"A=B\"",
            ],
        ),
        (
            "supervisor action without supervise",
            "targets:\n  - name: w\n    actions:\n      restart: { supervisor: true }\n",
            vec![
                "fleet.yaml:4:7: targets[0].actions.restart.supervisor: expected a target with supervise: for a supervisor action, found none",
            ],
        ),
        (
            "zero probe interval and bad threshold",
            "targets:\n  - name: w\n    probes:\n      liveness: { exec: [\"true\"], every: 0s, failure_threshold: 0 }\n",
            vec![
                "fleet.yaml:4:42: targets[0].probes.liveness.every: expected a duration greater than zero, found \"0s\"",
                "fleet.yaml:4:65: targets[0].probes.liveness.failure_threshold: expected an integer from 1 to 4294967295, found 0",
            ],
        ),
        (
            "unknown target key",
            "targets:\n  - name: w\n    dependson: [x]\n",
            vec![
                "fleet.yaml:3:5: targets[0].dependson: expected one of name, tier, labels, group, probes, metrics, depends_on, actions, fallback, supervise, startup_delay, replicas, found unknown key \"dependson\"",
            ],
        ),
        (
            "yaml syntax error",
            "targets:\n  - name: w\n   probes: {}\n",
            vec![
                "fleet.yaml:3:4: expected valid YAML, found while parsing a block collection, did not find expected '-' indicator",
            ],
        ),
        (
            "limits nothing can measure",
            "targets:\n  - name: w\n    probes:\n      liveness: { tcp: { addr: \"127.0.0.1:1\" } }\n      performance: { max_latency: 1s }\n      resources: { max_rss: 1Gi }\n",
            vec![
                "fleet.yaml:5:7: targets[0].probes.performance: expected metrics: to check performance limits against, found none",
                "fleet.yaml:6:7: targets[0].probes.resources: expected a process probe or supervise: to find the process to measure, found neither",
            ],
        ),
        (
            "performance and resources timing checked like a probe's",
            "targets:\n  - name: w\n    metrics: { url: \"http://127.0.0.1:1/m\" }\n    probes:\n      liveness: { process: { name: w } }\n      performance: { max_latency: 1s, every: soon, failure_threshold: 0 }\n      resources: { max_rss: 1Gi, timeout: 0s, success_threshold: x, period: 1s }\n",
            vec![
                &*format!("fleet.yaml:6:46: targets[0].probes.performance.every: expected {DURATION}, found \"soon\"").leak(),
                "fleet.yaml:6:71: targets[0].probes.performance.failure_threshold: expected an integer from 1 to 4294967295, found 0",
                "fleet.yaml:7:43: targets[0].probes.resources.timeout: expected a duration greater than zero, found \"0s\"",
                "fleet.yaml:7:66: targets[0].probes.resources.success_threshold: expected an integer from 1 to 4294967295, found \"x\"",
                "fleet.yaml:7:69: targets[0].probes.resources.period: expected one of max_rss, max_cpu, max_open_fds, every, timeout, failure_threshold, success_threshold, found unknown key \"period\"",
            ],
        ),
        (
            "a bad name is reported once, not again where it is used",
            "targets:\n  - name: \"db 1\"\n  - name: web\n    depends_on: [\"db 1\"]\n",
            vec![
                "fleet.yaml:2:11: targets[0].name: expected a name of letters, digits, '-', '_' and '.', found \"db 1\"",
            ],
        ),
        (
            "every problem at once",
            "targets:\n  - name: a\n    startup_delay: soon\n  - name: b\n    replicas: { min: 3, max: 2 }\n    depends_on: [nobody]\n",
            vec![
                &*format!(
                    "fleet.yaml:3:20: targets[0].startup_delay: expected {DURATION}, found \"soon\""
                )
                .leak(),
                "fleet.yaml:5:30: targets[1].replicas.max: expected at least min (3), found 2",
                "fleet.yaml:6:18: targets[1].depends_on[0]: expected the name of a target in this file, found \"nobody\"",
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (name, text, expected) in &cases {
        let got = fleet_errors(text);
        if got != *expected {
            failures.push(format!(
                "{name}:\n  expected {expected:#?}\n  got      {got:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn anchors_merge_keys_and_extension_keys_work() {
    let text = "x-probe: &probe { every: 5s, failure_threshold: 2 }\ntargets:\n  - name: a\n    probes:\n      liveness: { <<: *probe, tcp: { addr: \"127.0.0.1:1\" } }\n  - name: b\n    probes:\n      liveness: { <<: *probe, exec: [\"true\"], every: 1m }\n";
    let fleet = parse_fleet_str(text, "fleet.yaml", &shipped_tiers()).unwrap();
    let a = &fleet.target("a").unwrap().probes[0];
    assert_eq!((a.every, a.failure_threshold), (Duration::from_secs(5), 2));
    let b = &fleet.target("b").unwrap().probes[0];
    assert_eq!((b.every, b.failure_threshold), (Duration::from_secs(60), 2));
}

#[test]
fn dependency_cycle_is_named() {
    let text = "targets:\n  - name: a\n    depends_on: [b]\n  - name: b\n    depends_on: [c]\n  - name: c\n    depends_on: [a]\n  - name: d\n    depends_on: [d]\n";
    assert_eq!(
        fleet_errors(text),
        vec![
            "fleet.yaml:3:18: targets[0].depends_on[0]: expected no dependency cycle, found a -> b -> c -> a",
            "fleet.yaml:9:18: targets[3].depends_on[0]: expected no dependency cycle, found d -> d",
        ]
    );
    // A diamond is not a cycle.
    let diamond = "targets:\n  - { name: a, depends_on: [b, c] }\n  - { name: b, depends_on: [d] }\n  - { name: c, depends_on: [d] }\n  - { name: d }\n";
    assert_eq!(fleet_errors(diamond), Vec::<String>::new());
}

#[test]
fn shipped_files_validate() {
    let dir = repo_policies();
    let fleet = medic_policy::load(&dir.join("fleet.example.yaml"), &dir)
        .unwrap_or_else(|e| panic!("shipped files invalid:\n{e}"));
    let tiers: Vec<&str> = fleet.tiers.keys().map(String::as_str).collect();
    assert_eq!(tiers, ["critical_agents", "default", "lightweight_agents"]);
    let tier_of = |n: &str| fleet.target(n).unwrap().tier.clone();
    assert_eq!(tier_of("crewai-1"), "critical_agents");
    assert_eq!(tier_of("postgres"), "default");
    assert_eq!(tier_of("scanner-1"), "lightweight_agents");
    assert_eq!(tier_of("shellgpt-1"), "lightweight_agents");
    // At least one target a newcomer can probe without any service, and one that is dead.
    assert!(fleet.targets.iter().any(|t| {
        t.probes
            .iter()
            .any(|p| matches!(p.check, medic_policy::Check::Exec { .. }))
    }));
    assert!(fleet.targets.iter().any(|t| {
        t.probes
            .iter()
            .any(|p| matches!(p.check, medic_policy::Check::Tcp { .. }))
    }));

    let c = &fleet.tiers["critical_agents"];
    assert_eq!(c.max_restart_attempts, 5);
    assert_eq!(c.restart_cooldown, Duration::from_secs(180));
    assert!(c.preemptive_scaling);
    assert_eq!(c.backup_instances, 2);
    assert_eq!(c.scale_threshold, 0.8, "inherited from default");
    let l = &fleet.tiers["lightweight_agents"];
    assert_eq!(l.max_restart_attempts, 2);
    assert!(l.aggressive_recycling);
    assert_eq!(l.memory_limit_buffer, 0.2);
    assert_eq!(l.circuit_break_duration, Duration::from_secs(60));
}

#[test]
fn shipped_default_tier_equals_builtin_default() {
    let tiers = shipped_tiers();
    assert_eq!(tiers["default"], TierPolicy::builtin_default());
}

#[test]
fn durations_parse() {
    let ok = [
        ("300s", 300_000),
        ("5m", 300_000),
        ("1h", 3_600_000),
        ("500ms", 500),
        ("1.5s", 1_500),
        ("0", 0),
        ("45", 45_000),
        ("2d", 172_800_000),
        (" 10s ", 10_000),
        ("1h30m", 5_400_000),
        ("2m 30s", 150_000),
        ("1m500ms", 60_500),
        ("365d", 31_536_000_000),
        ("8760h", 31_536_000_000),
    ];
    for (text, ms) in ok {
        assert_eq!(
            parse_duration(text),
            Ok(Duration::from_millis(ms)),
            "{text}"
        );
    }
    for bad in [
        "",
        "-5s",
        "5 minutes",
        "s",
        "1y",
        "ms",
        "+3s",
        "1e3s",
        "NaN",
        "inf",
        "1..2s",
        "99999999999999999999999h",
        "1h-5m",
        "5m10",
        "1hour",
        "366d",
        "365d1ms",
        "31536001",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
    }
    // Bare numbers in YAML are seconds.
    let t = "healing_policies:\n  default: { restart_cooldown: 90, verify_deadline: 2.5 }\n";
    let d = &parse_policies_str(t, "t.yaml").unwrap()["default"];
    assert_eq!(d.restart_cooldown, Duration::from_secs(90));
    assert_eq!(d.verify_deadline, Duration::from_millis(2500));
}

#[test]
fn tier_matching_by_name_label_selector_and_explicit_tier() {
    let tiers_yaml = "healing_policies:\n  default: {}\n  gpu:\n    labels: { accel: gpu }\n  crew:\n    agents: [crewai]\n";
    let tiers = parse_policies_str(tiers_yaml, "t.yaml").unwrap();
    let fleet = parse_fleet_str(
        "targets:\n  - { name: crewai-7 }\n  - { name: crewaix }\n  - { name: x, labels: { type: crewai } }\n  - { name: y, labels: { accel: gpu } }\n  - { name: crewai-9, tier: default }\n  - { name: z }\n",
        "f.yaml",
        &tiers,
    )
    .unwrap();
    let got: Vec<(&str, &str)> = fleet
        .targets
        .iter()
        .map(|t| (t.name.as_str(), t.tier.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("crewai-7", "crew"),
            ("crewaix", "default"),
            ("x", "crew"),
            ("y", "gpu"),
            ("crewai-9", "default"),
            ("z", "default"),
        ]
    );
}

#[test]
fn tiers_inherit_default_key_by_key() {
    let t = "healing_policies:\n  default:\n    max_restart_attempts: 4\n    backoff: { initial: 5s }\n    rules: [{ name: only, when: { failing: [readiness] }, then: reroute }]\n  calm:\n    policy: { backoff: { max: 1h }, auto_approve_risk: low }\n  custom:\n    policy:\n      rules: [{ name: mine, when: { predicted_failure: true }, then: scale, confidence: 0.6 }]\n";
    let tiers = parse_policies_str(t, "t.yaml").unwrap();
    let calm = &tiers["calm"];
    assert_eq!(calm.max_restart_attempts, 4, "from default");
    assert_eq!(calm.backoff.initial, Duration::from_secs(5), "from default");
    assert_eq!(calm.backoff.max, Duration::from_secs(3600), "own");
    assert_eq!(calm.backoff.multiplier, 2.0, "built-in");
    assert_eq!(calm.auto_approve_risk, medic_core::Risk::Low);
    assert_eq!(calm.rules.len(), 1);
    assert_eq!(calm.rules[0].name, "only");
    let custom = &tiers["custom"];
    assert_eq!(custom.rules.len(), 1);
    assert_eq!(custom.rules[0].name, "mine");
    assert_eq!(custom.rules[0].confidence, 0.6);
    assert_eq!(custom.max_restart_attempts, 4);
    // A file without `default` still gets the built-in one.
    let only = parse_policies_str("healing_policies:\n  x: { agents: [x] }\n", "t.yaml").unwrap();
    assert_eq!(only["default"], TierPolicy::builtin_default());
    assert_eq!(only["x"].rules, medic_policy::default_rules());
}

#[test]
fn builtin_default_has_the_documented_values() {
    let d = TierPolicy::builtin_default();
    assert_eq!(d.backoff.initial, Duration::from_secs(10));
    assert_eq!(d.backoff.max, Duration::from_secs(300));
    assert_eq!(d.backoff.reset_after, Duration::from_secs(600));
    assert_eq!(
        (d.crash_loop.restarts, d.crash_loop.window),
        (4, Duration::from_secs(900))
    );
    assert_eq!(d.max_group_unavailable, 0.1);
    assert_eq!(d.auto_approve_risk, medic_core::Risk::Medium);
    assert_eq!(d.confidence_threshold, 0.85);
    assert_eq!(d.approval_timeout, Duration::from_secs(900));
    assert_eq!(d.verify_deadline, Duration::from_secs(30));
    assert_eq!(d.attempt_window, Duration::from_secs(3600));
    assert_eq!(d.scaling.tolerance, 0.1);
    assert_eq!(d.scaling.scale_down_stabilization, Duration::from_secs(300));
    let names: Vec<&str> = d.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "config_error",
            "config_error_unrepaired",
            "bad_deploy",
            "lone_bad_instance",
            "lone_degrading_instance",
            "unresponsive",
            "leak",
            "error_burst",
            "saturated"
        ]
    );
}

#[test]
fn probe_and_target_defaults() {
    let fleet = parse_fleet_str(
        "targets:\n  - name: w\n    probes:\n      liveness: { tcp: { addr: \"127.0.0.1:9\" } }\n  - name: s\n    supervise: { command: [sleep, 1000] }\n",
        "f.yaml",
        &shipped_tiers(),
    )
    .unwrap();
    let w = fleet.target("w").unwrap();
    let p = &w.probes[0];
    assert_eq!(p.every, Duration::from_secs(10));
    assert_eq!(p.timeout, Duration::from_secs(1));
    assert_eq!((p.failure_threshold, p.success_threshold), (3, 1));
    assert_eq!(w.startup_delay, Duration::from_secs(5));
    assert_eq!(
        (w.replicas.initial, w.replicas.min, w.replicas.max),
        (1, 1, 1)
    );
    let s = fleet.target("s").unwrap();
    assert_eq!(s.supervise.as_ref().unwrap().command, ["sleep", "1000"]);
    // No `probes.resources` here: the timing defaults are checked with limits below.
    assert!(s.resources.is_none());
    assert!(matches!(
        s.probes[0].check,
        medic_policy::Check::Process {
            selector: medic_policy::ProcessSelector::Supervised
        }
    ));
    // The supervisor carries out the whole process ladder, so that a crash loop can reach
    // the shipped crash-loop limit (4 crashes) before the ladder runs out.
    for strategy in [
        medic_core::Strategy::Restart,
        medic_core::Strategy::Reset,
        medic_core::Strategy::Recreate,
    ] {
        assert_eq!(
            s.actions[&strategy].kind,
            medic_policy::ActionKind::Supervisor,
            "{strategy}"
        );
    }
}

#[test]
fn performance_and_resources_timing_defaults_and_overrides() {
    use medic_policy::LevelSchedule;
    let fleet = parse_fleet_str(
        "targets:\n  - name: d\n    supervise: { command: [sleep, 1000] }\n    metrics: { url: \"http://127.0.0.1:1/m\", every: 7s, timeout: 2s }\n    probes:\n      performance: { max_latency: 1s }\n      resources: { max_open_fds: 100 }\n  \
         - name: o\n    supervise: { command: [sleep, 1000] }\n    metrics: { url: \"http://127.0.0.1:1/m\" }\n    probes:\n      performance: { max_error_rate: 0.1, every: 30s, timeout: 3s, failure_threshold: 5, success_threshold: 2 }\n      resources: { max_cpu: 1.5, every: 1m, timeout: 1500ms, failure_threshold: 1, success_threshold: 4 }\n  \
         - name: n\n    metrics: { url: \"http://127.0.0.1:1/m\" }\n    probes:\n      performance: { max_queue_depth: 10 }\n",
        "f.yaml",
        &shipped_tiers(),
    )
    .unwrap();
    let d = fleet.target("d").unwrap();
    let perf = d.performance.as_ref().unwrap().schedule;
    let res = d.resources.as_ref().unwrap().schedule;
    assert_eq!(
        perf,
        LevelSchedule {
            every: Duration::from_secs(7),
            timeout: Duration::from_secs(2),
            failure_threshold: 3,
            success_threshold: 1,
        },
        "performance follows metrics: by default"
    );
    assert_eq!(res, LevelSchedule::RESOURCES_DEFAULT);
    assert_eq!(
        (
            res.every,
            res.timeout,
            res.failure_threshold,
            res.success_threshold
        ),
        (Duration::from_secs(10), Duration::from_secs(5), 3, 1)
    );
    let n = fleet.target("n").unwrap();
    assert_eq!(
        n.performance.as_ref().unwrap().schedule,
        LevelSchedule::PERFORMANCE_DEFAULT
    );
    assert_eq!(
        (
            LevelSchedule::PERFORMANCE_DEFAULT.every,
            LevelSchedule::PERFORMANCE_DEFAULT.timeout
        ),
        (Duration::from_secs(15), Duration::from_secs(5))
    );
    let o = fleet.target("o").unwrap();
    assert_eq!(
        o.performance.as_ref().unwrap().schedule,
        LevelSchedule {
            every: Duration::from_secs(30),
            timeout: Duration::from_secs(3),
            failure_threshold: 5,
            success_threshold: 2,
        }
    );
    assert_eq!(
        o.resources.as_ref().unwrap().schedule,
        LevelSchedule {
            every: Duration::from_secs(60),
            timeout: Duration::from_millis(1500),
            failure_threshold: 1,
            success_threshold: 4,
        }
    );
}

#[test]
fn load_reports_unreadable_files_and_skips_foreign_yaml() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("patterns.yaml"),
        "anything: [that, is, not, a, policy]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("fleet.yaml"), "targets: []\n").unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "healing_policies:\n  x: { agents: [x] }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.yaml"),
        "healing_policies:\n  x: { agents: [y] }\n",
    )
    .unwrap();
    let err = medic_policy::load_policies(dir.path())
        .unwrap_err()
        .to_string();
    let b = dir.path().join("b.yaml").display().to_string();
    let a = dir.path().join("a.yaml").display().to_string();
    assert_eq!(
        err,
        format!(
            "{b}:2:3: healing_policies.x: expected each tier defined once, found \"x\" again (first at {a}:2:3)"
        )
    );
    std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
    let fleet = medic_policy::load(&dir.path().join("fleet.yaml"), dir.path()).unwrap();
    assert!(fleet.targets.is_empty());
    let missing = medic_policy::load(&dir.path().join("nope.yaml"), dir.path()).unwrap_err();
    assert!(missing.to_string().starts_with(&format!(
        "{}: expected a readable file, found ",
        dir.path().join("nope.yaml").display()
    )));

    // Not UTF-8: located at the first bad byte (in a fleet file and in a policy file).
    let latin1 = dir.path().join("fleet-latin1.yaml");
    std::fs::write(&latin1, b"targets:\n  - name: caf\xe9\n").unwrap();
    std::fs::write(dir.path().join("utf16.yaml"), b"\xff\xfeh\0e\0").unwrap();
    let err = medic_policy::load(&latin1, dir.path())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{}:2:14: expected UTF-8 text, found the byte 0xe9\n{}:1:1: expected UTF-8 text, found UTF-16 text (byte order mark)",
            latin1.display(),
            dir.path().join("utf16.yaml").display()
        )
    );
    // An endless file is cut at the cap, not read until memory runs out.
    std::fs::remove_file(dir.path().join("utf16.yaml")).unwrap();
    let err = medic_policy::load(Path::new("/dev/zero"), dir.path())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "/dev/zero: expected a file of at most 64 MiB, found a larger one"
    );
}

mod no_panic {
    use proptest::prelude::*;

    use super::*;

    fn shipped(name: &str) -> String {
        std::fs::read_to_string(repo_policies().join(name)).unwrap()
    }

    /// Every error line has the documented shape.
    fn check_shape(e: &medic_policy::ValidationErrors, file: &str) {
        assert!(!e.is_empty());
        for x in &e.errors {
            assert_eq!(x.file, file);
            assert!(x.line >= 1 && x.col >= 1, "{x}");
            assert!(x.message.starts_with("expected "), "{x}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text(text in "\\PC{0,300}") {
            if let Err(e) = parse_policies_str(&text, "p.yaml") { check_shape(&e, "p.yaml"); }
            if let Err(e) = parse_fleet_str(&text, "f.yaml", &shipped_tiers()) { check_shape(&e, "f.yaml"); }
        }

        #[test]
        fn yamlish_text(text in "[a-z_:{}\\[\\],\\- \n0-9.\"'#&*!|>]{0,200}") {
            if let Err(e) = parse_policies_str(&text, "p.yaml") { check_shape(&e, "p.yaml"); }
            if let Err(e) = parse_fleet_str(&text, "f.yaml", &shipped_tiers()) { check_shape(&e, "f.yaml"); }
        }

        #[test]
        fn mutated_shipped_files(
            which in 0usize..2,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, "[ -~\n]{0,6}"), 1..6),
        ) {
            let mut text = if which == 0 { shipped("tiers.yaml") } else { shipped("fleet.example.yaml") };
            for (at, op, s) in edits {
                let mut i = at.index(text.len() + 1);
                while !text.is_char_boundary(i) { i -= 1; }
                match op {
                    0 => text.insert_str(i, &s),
                    1 => { let mut j = (i + s.len()).min(text.len()); while !text.is_char_boundary(j) { j -= 1; } text.replace_range(i..j, ""); }
                    _ => { let mut j = (i + s.len()).min(text.len()); while !text.is_char_boundary(j) { j -= 1; } text.replace_range(i..j, &s); }
                }
            }
            if which == 0 {
                if let Err(e) = parse_policies_str(&text, "p.yaml") { check_shape(&e, "p.yaml"); }
            } else if let Err(e) = parse_fleet_str(&text, "f.yaml", &shipped_tiers()) {
                check_shape(&e, "f.yaml");
            }
        }
    }

    #[derive(Debug, Clone)]
    struct GenTarget {
        every_ms: u64,
        failure_threshold: u32,
        port: u16,
        deps: Vec<prop::sample::Index>,
        kind: &'static str,
        explicit_default: bool,
    }

    fn gen_target() -> impl Strategy<Value = GenTarget> {
        (
            1u64..100_000,
            1u32..10,
            1u16..,
            proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
            prop::sample::select(vec!["crewai", "semgrep", "other"]),
            any::<bool>(),
        )
            .prop_map(
                |(every_ms, failure_threshold, port, deps, kind, explicit_default)| GenTarget {
                    every_ms,
                    failure_threshold,
                    port,
                    deps,
                    kind,
                    explicit_default,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// A valid fleet written out as YAML reads back as exactly what was written.
        #[test]
        fn valid_fleets_read_back(targets in proptest::collection::vec(gen_target(), 1..8)) {
            let mut yaml = String::from("targets:\n");
            let mut expected_deps = Vec::new();
            for (i, t) in targets.iter().enumerate() {
                let every = if t.every_ms % 1000 == 0 {
                    format!("{}s", t.every_ms / 1000)
                } else {
                    format!("{}ms", t.every_ms)
                };
                // Only earlier targets, so the graph has no cycle.
                let mut deps: Vec<String> = if i == 0 {
                    Vec::new()
                } else {
                    t.deps.iter().map(|d| format!("t{}", d.index(i))).collect()
                };
                deps.sort();
                deps.dedup();
                yaml.push_str(&format!(
                    "  - name: t{i}\n    labels: {{ type: {} }}\n{}    probes:\n      liveness: {{ tcp: {{ addr: \"127.0.0.1:{}\" }}, every: {every}, failure_threshold: {} }}\n    depends_on: [{}]\n",
                    t.kind,
                    if t.explicit_default { "    tier: default\n" } else { "" },
                    t.port,
                    t.failure_threshold,
                    deps.join(", "),
                ));
                expected_deps.push(deps);
            }
            let fleet = parse_fleet_str(&yaml, "f.yaml", &shipped_tiers())
                .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
            prop_assert_eq!(fleet.targets.len(), targets.len());
            for ((got, t), deps) in fleet.targets.iter().zip(&targets).zip(&expected_deps) {
                let p = &got.probes[0];
                prop_assert_eq!(p.every, Duration::from_millis(t.every_ms));
                prop_assert_eq!(p.failure_threshold, t.failure_threshold);
                prop_assert_eq!(&p.check, &medic_policy::Check::Tcp { addr: format!("127.0.0.1:{}", t.port) });
                let got_deps: Vec<&str> = got.depends_on.iter().map(|d| d.as_str()).collect();
                prop_assert_eq!(got_deps, deps.iter().map(String::as_str).collect::<Vec<_>>());
                let tier = match (t.explicit_default, t.kind) {
                    (true, _) | (false, "other") => "default",
                    (false, "crewai") => "critical_agents",
                    _ => "lightweight_agents",
                };
                prop_assert_eq!(got.tier.as_str(), tier);
            }
        }
    }

    /// `node` as one line of flow-style YAML, with `at` (a pre-order index) replaced by
    /// `replacement` (or its entry dropped when `replacement` is `None`).
    fn emit(
        node: &medic_policy::yaml::Node,
        at: usize,
        replacement: Option<&str>,
        index: &mut usize,
        out: &mut String,
    ) {
        use medic_policy::yaml::Value as Y;
        let me = *index;
        *index += 1;
        if me == at {
            out.push_str(replacement.unwrap_or("~"));
            // Keep the pre-order numbering of the rest of the tree.
            *index += count(node) - 1;
            return;
        }
        match &node.value {
            Y::Map(entries) => {
                out.push('{');
                let mut first = true;
                for (k, v) in entries {
                    let dropped = replacement.is_none() && *index == at;
                    if dropped {
                        *index += count(v);
                        continue;
                    }
                    if !first {
                        out.push_str(", ");
                    }
                    first = false;
                    out.push_str(&serde_json::to_string(&k.as_key().unwrap()).unwrap());
                    out.push_str(": ");
                    emit(v, at, replacement, index, out);
                }
                out.push('}');
            }
            Y::Seq(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    emit(v, at, replacement, index, out);
                }
                out.push(']');
            }
            Y::Str(text) => out.push_str(&serde_json::to_string(text).unwrap()),
            Y::Null => out.push('~'),
            _ => out.push_str(&node.describe()),
        }
    }

    fn count(node: &medic_policy::yaml::Node) -> usize {
        use medic_policy::yaml::Value as Y;
        1 + match &node.value {
            Y::Map(entries) => entries.iter().map(|(_, v)| count(v)).sum(),
            Y::Seq(items) => items.iter().map(count).sum(),
            _ => 0,
        }
    }

    /// Every value of the shipped files replaced by each value of the wrong type (and every
    /// entry dropped): valid YAML, so every error has a location, a key path and the
    /// documented shape, and nothing panics.
    #[test]
    fn every_value_of_the_shipped_files_replaced_by_a_wrong_one() {
        let replacements = [
            "[]",
            "{}",
            "~",
            ".nan",
            "-.inf",
            "1e400",
            "18446744073709551616",
            "-1",
            "0",
            "\"\"",
            "\"x y\"",
            "true",
            "[[[[1]]]]",
            "{\"\": {\"b\": 1}}",
            "366d",
            "\"-5s\"",
        ];
        let tiers = shipped_tiers();
        for (name, fleet) in [("tiers.yaml", false), ("fleet.example.yaml", true)] {
            let root = medic_policy::yaml::parse_yaml(&shipped(name), name).unwrap();
            let nodes = count(&root);
            let (mut checked, mut rejected) = (0, 0);
            for at in 1..nodes {
                for r in replacements.iter().map(|r| Some(*r)).chain([None]) {
                    let mut text = String::new();
                    emit(&root, at, r, &mut 0, &mut text);
                    let result = if fleet {
                        parse_fleet_str(&text, "f.yaml", &tiers).err()
                    } else {
                        parse_policies_str(&text, "f.yaml").err()
                    };
                    if let Some(e) = result {
                        rejected += 1;
                        check_shape(&e, "f.yaml");
                        for x in &e.errors {
                            assert!(!x.path.is_empty(), "no key path: {x}\n{text}");
                        }
                    }
                    checked += 1;
                }
            }
            // Most replacements are mistakes (a few fit, e.g. `0` for a count).
            assert!(checked > 100 * replacements.len(), "{name}: {checked}");
            assert!(
                rejected * 2 > checked,
                "{name}: {rejected} of {checked} rejected"
            );
        }
    }

    #[test]
    fn deep_nesting_and_alias_bombs_are_errors_not_crashes() {
        let deep = format!("targets: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            fleet_errors(&deep),
            ["fleet.yaml:1:265: expected valid YAML, found nesting deeper than 24 levels"]
        );
        // Nesting built from aliases counts as well.
        let mut chain = String::from("a0: &a0 {k: x}\n");
        for i in 1..30 {
            chain.push_str(&format!("a{i}: &a{i} {{k: *a{}}}\n", i - 1));
        }
        chain.push_str("targets: [*a29]\n");
        assert_eq!(
            fleet_errors(&chain),
            ["fleet.yaml:24:15: expected valid YAML, found nesting deeper than 24 levels"]
        );
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
        assert_eq!(
            policy_errors(bomb),
            [
                "tiers.yaml:7:5: expected valid YAML, found aliases expanding to more than 1000000 values, as in an alias bomb"
            ]
        );
    }
}

#[test]
fn circuit_break_may_say_how_to_close_the_circuit_and_nothing_else_may() {
    let fleet = parse_fleet_str(
        "targets:\n  - name: gw\n    actions:\n      circuit_break:\n        http: { url: \"http://127.0.0.1:9/admin/circuit/open\" }\n        close: { http: { url: \"http://127.0.0.1:9/admin/circuit/close\" }, timeout: 2s }\n",
        "fleet.yaml",
        &shipped_tiers(),
    )
    .unwrap();
    let spec = &fleet.targets[0].actions[&medic_core::Strategy::CircuitBreak];
    let close = spec.close.as_deref().expect("a close action");
    assert_eq!(close.timeout, Duration::from_secs(2));
    assert!(matches!(
        &close.kind,
        medic_policy::ActionKind::Http { url, .. } if url.ends_with("/admin/circuit/close")
    ));
    assert_eq!(
        fleet_errors(
            "targets:\n  - name: w\n    actions:\n      restart:\n        exec: [\"true\"]\n        close: { exec: [\"true\"] }\n"
        ),
        [
            "fleet.yaml:6:9: targets[0].actions.restart.close: expected close only on actions.circuit_break (it lets work flow again when the circuit closes)"
        ]
    );
    assert_eq!(
        fleet_errors(
            "targets:\n  - name: w\n    supervise: { command: [\"true\"] }\n    actions:\n      circuit_break:\n        exec: [\"true\"]\n        close: { supervisor: true }\n"
        ),
        [
            "fleet.yaml:7:9: targets[0].actions.circuit_break.close.supervisor: expected exec or http to close a circuit, found supervisor"
        ]
    );
}

#[test]
fn numbers_keep_their_spelling_and_library_errors_name_no_rust_options() {
    // A label is text: `1.10` stays `1.10`, not the float 1.1.
    let fleet = parse_fleet_str(
        "targets:\n  - { name: w, labels: { version: 1.10, exp: 1.0e3 } }\n",
        "f.yaml",
        &shipped_tiers(),
    )
    .unwrap();
    let labels = &fleet.targets[0].labels;
    assert_eq!(labels["version"], "1.10");
    assert_eq!(labels["exp"], "1.0e3");

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Limits {
        max: u32,
        extra: Option<serde_json::Value>,
    }
    let err = medic_policy::yaml::from_str_located::<Limits>("max: 1\nmax: 2\n", "l.yaml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "l.yaml:2:1: expected a valid file, found a second \"max\" key (each key may appear once)"
    );
    let err = medic_policy::yaml::from_str_located::<Limits>("max: 1\nextra: .nan\n", "l.yaml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "l.yaml:2:8: expected a valid file, found the non-finite number .nan"
    );
}

#[test]
fn the_deepest_nesting_allowed_fits_a_spawned_threads_stack() {
    use medic_policy::yaml::MAX_DEPTH;
    // The root map is one level; `n` more lists or maps inside `targets`.
    let lists = |n: usize| format!("targets: {}{}\n", "[".repeat(n), "]".repeat(n));
    let maps = |n: usize| format!("targets: {}1{}\n", "{a: ".repeat(n), "}".repeat(n));
    for text in [lists(MAX_DEPTH - 1), maps(MAX_DEPTH - 1)] {
        // A spawned thread has 2 MiB of stack, as have tokio's workers.
        let errors = std::thread::spawn(move || fleet_errors(&text))
            .join()
            .unwrap();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(!errors[0].contains("valid YAML"), "{errors:?}");
    }
    for (text, col) in [
        (lists(MAX_DEPTH), 9 + MAX_DEPTH),
        (maps(MAX_DEPTH), 10 + 4 * (MAX_DEPTH - 1)),
    ] {
        let errors = std::thread::spawn(move || fleet_errors(&text))
            .join()
            .unwrap();
        assert_eq!(
            errors,
            [format!(
                "fleet.yaml:1:{col}: expected valid YAML, found nesting deeper than {MAX_DEPTH} levels"
            )]
        );
    }
}
