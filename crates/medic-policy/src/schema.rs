//! JSON Schema (draft 2020-12) for fleet.yaml and the policy files, so editors (e.g. the YAML
//! language server) can complete and check them.
//!
//! Built in code from the same key lists the decoder accepts (`config::*_KEYS`); a test checks
//! that every object here has exactly those keys.

use serde_json::{Map, Value, json};

use crate::config::{self, enum_names};

const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// Every policy key with its meaning (shared by the schema descriptions and the docs).
pub(crate) const POLICY_DOCS: &[(&str, &str)] = &[
    (
        "max_restart_attempts",
        "Restarts allowed within attempt_window before restarts give way to the next rung of the escalation ladder (default 3).",
    ),
    (
        "restart_cooldown",
        "Minimum time between two actions of the same strategy on one target (default 300s).",
    ),
    (
        "attempt_window",
        "The window in which max_restart_attempts counts (default 1h).",
    ),
    (
        "scale_threshold",
        "Utilisation (fraction of the scaling target, 0..1) above which the target is scaled out (default 0.8).",
    ),
    (
        "circuit_break_duration",
        "How long a circuit stays open before a half-open probe (default 60s).",
    ),
    (
        "preemptive_scaling",
        "Scale out when a failure is predicted, before it happens (default false).",
    ),
    (
        "backup_instances",
        "Extra replicas kept above the computed desired count (default 0).",
    ),
    (
        "aggressive_recycling",
        "Recycle a leaking target early, at 1 - memory_limit_buffer of its memory limit (default false).",
    ),
    (
        "memory_limit_buffer",
        "Fraction of the memory limit kept free when recycling aggressively (default 0.1).",
    ),
    (
        "backoff",
        "Exponential delay between attempts on a target: initial 10s, multiplier 2, max 300s, reset after 10m healthy.",
    ),
    (
        "crash_loop",
        "restarts crashes (the target found down, or still down after a restart, reset, recreate or rollback) within window make a crash loop: stop acting and escalate once (default 4 in 15m).",
    ),
    (
        "max_concurrent",
        "Actions of this tier running at once, fleet-wide (default: only the global budget).",
    ),
    (
        "max_group_unavailable",
        "Fraction of a group that may be acted on at once, at least one target (default 0.1).",
    ),
    (
        "auto_approve_risk",
        "Options up to this risk run automatically; riskier ones wait for approval (default medium).",
    ),
    (
        "confidence_threshold",
        "Options below this confidence wait for approval (default 0.85).",
    ),
    (
        "approval_timeout",
        "How long an approval may wait before the incident escalates (default 15m).",
    ),
    (
        "verify_deadline",
        "After the target's startup_delay, verification must succeed within this (default 30s).",
    ),
    (
        "scaling",
        "HPA-style scaling: tolerance 0.1, scale_down_stabilization 300s.",
    ),
    (
        "rules",
        "Strategy rules in rank order: when all conditions hold, propose `then`. Replaces the inherited list when set.",
    ),
];

fn doc(key: &str) -> &'static str {
    POLICY_DOCS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("", |(_, d)| d)
}

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/$defs/{name}") })
}

fn with_doc(mut v: Value, description: &str) -> Value {
    if !description.is_empty()
        && let Some(o) = v.as_object_mut()
    {
        o.insert("description".into(), Value::String(description.into()));
    }
    v
}

/// A closed object: `props` in order, `required` keys, nothing else allowed.
fn obj(props: Vec<(&str, Value)>, required: &[&str]) -> Value {
    let mut p = Map::new();
    for (k, v) in props {
        p.insert(k.to_owned(), v);
    }
    let mut o = json!({ "type": "object", "properties": p, "additionalProperties": false });
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    o
}

fn names(which: &str) -> Value {
    json!({ "type": "string", "enum": enum_names(which) })
}

fn names_list(which: &str) -> Value {
    json!({ "oneOf": [names(which), { "type": "array", "items": names(which) }] })
}

fn common_defs() -> Map<String, Value> {
    let mut d = Map::new();
    d.insert(
        "duration".into(),
        json!({
            "description": "A duration: 500ms, 300s, 5m, 1h, 1d, or a number of seconds; at most 365d.",
            "oneOf": [
                { "type": "number", "minimum": 0, "maximum": crate::yaml::MAX_DURATION.as_secs() },
                { "type": "string", "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*(ms|s|sec|secs|m|min|mins|h|d)?\\s*$" }
            ]
        }),
    );
    d.insert(
        "ratio".into(),
        json!({ "type": "number", "minimum": 0, "maximum": 1 }),
    );
    d.insert(
        "count".into(),
        json!({ "type": "integer", "minimum": 0, "maximum": u32::MAX }),
    );
    d.insert(
        "positive_count".into(),
        json!({ "type": "integer", "minimum": 1, "maximum": u32::MAX }),
    );
    // limits the engine counts up to (attempts, crashes): at most what it remembers
    d.insert(
        "counted".into(),
        json!({ "type": "integer", "minimum": 0, "maximum": crate::MAX_COUNTED }),
    );
    d.insert(
        "positive_counted".into(),
        json!({ "type": "integer", "minimum": 1, "maximum": crate::MAX_COUNTED }),
    );
    d.insert(
        "name".into(),
        json!({ "type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$" }),
    );
    d.insert(
        "labels".into(),
        json!({ "type": "object", "additionalProperties": { "type": ["string", "number", "boolean"] } }),
    );
    d
}

fn policy_def() -> Value {
    let backoff = obj(
        vec![
            ("initial", r("duration")),
            ("max", r("duration")),
            ("multiplier", json!({ "type": "number", "minimum": 1 })),
            ("reset_after", r("duration")),
        ],
        &[],
    );
    let crash_loop = obj(
        vec![
            ("restarts", r("positive_counted")),
            ("window", r("duration")),
        ],
        &[],
    );
    let scaling = obj(
        vec![
            ("tolerance", r("ratio")),
            ("scale_down_stabilization", r("duration")),
        ],
        &[],
    );
    let value_of = |key: &str| -> Value {
        match key {
            "max_restart_attempts" => r("counted"),
            "backup_instances" => r("count"),
            "max_concurrent" => r("positive_count"),
            "restart_cooldown"
            | "attempt_window"
            | "circuit_break_duration"
            | "approval_timeout"
            | "verify_deadline" => r("duration"),
            "scale_threshold"
            | "memory_limit_buffer"
            | "max_group_unavailable"
            | "confidence_threshold" => r("ratio"),
            "preemptive_scaling" | "aggressive_recycling" => json!({ "type": "boolean" }),
            "auto_approve_risk" => names("risk"),
            "backoff" => backoff.clone(),
            "crash_loop" => crash_loop.clone(),
            "scaling" => scaling.clone(),
            "rules" => json!({ "type": "array", "items": r("rule") }),
            _ => json!({}),
        }
    };
    obj(
        config::POLICY_KEYS
            .iter()
            .map(|k| (*k, with_doc(value_of(k), doc(k))))
            .collect(),
        &[],
    )
}

fn rule_defs(d: &mut Map<String, Value>) {
    let condition = obj(
        vec![
            ("health", names_list("health")),
            ("failing", names_list("level")),
            (
                "utilization_above",
                json!({ "type": "number", "minimum": 0 }),
            ),
            (
                "utilization_above_scale_threshold",
                json!({ "type": "boolean" }),
            ),
            (
                "memory_ratio_above",
                json!({ "type": "number", "minimum": 0 }),
            ),
            ("error_rate_above", r("ratio")),
            ("anomaly_kind", names_list("anomaly_kind")),
            ("diagnosis", names_list("diagnosis")),
            ("predicted_failure", json!({ "type": "boolean" })),
            ("version_changed_within", r("duration")),
            ("minority_of_group", json!({ "type": "boolean" })),
        ],
        &[],
    );
    let mut condition = condition;
    condition["minProperties"] = json!(1);
    d.insert("condition".into(), condition);
    d.insert(
        "rule".into(),
        obj(
            vec![
                ("name", json!({ "type": "string", "minLength": 1 })),
                ("when", r("condition")),
                ("then", names("strategy")),
                ("confidence", r("ratio")),
                ("risk", names("risk")),
            ],
            &["name", "when", "then"],
        ),
    );
}

/// The JSON Schema of a policy file (`policies/*.yaml`).
pub fn policies_schema() -> Value {
    let mut d = common_defs();
    d.insert("policy".into(), policy_def());
    rule_defs(&mut d);
    d.insert(
        "tier".into(),
        obj(
            vec![
                ("agents", with_doc(json!({ "type": "array", "items": { "type": "string" } }),
                    "Agent types: a target whose label `type` equals one, or whose name starts with one (crewai-1), belongs to this tier.")),
                ("labels", with_doc(r("labels"), "A label selector: targets carrying all these labels belong to this tier.")),
                ("policy", with_doc(r("policy"), "Keys overriding the inherited `default` policy.")),
            ],
            &[],
        ),
    );
    json!({
        "$schema": DIALECT,
        "$id": "https://medic.invalid/schema/policies.json",
        "title": "medic tier policies",
        "type": "object",
        "additionalProperties": false,
        "required": ["healing_policies"],
        "patternProperties": { "^x-": {} },
        "properties": {
            "healing_policies": {
                "description": "Tiers by name. `default` is a bare policy every other tier inherits.",
                "type": "object",
                "properties": { "default": r("policy") },
                "additionalProperties": r("tier"),
                "propertyNames": { "pattern": "^[A-Za-z0-9._-]{1,128}$" }
            }
        },
        "$defs": d
    })
}

/// The JSON Schema of fleet.yaml.
pub fn fleet_schema() -> Value {
    let mut d = common_defs();
    let url = json!({ "type": "string", "pattern": "^https?://[^\\s/?#]+" });
    let addr = json!({ "type": "string", "pattern": "^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9._-]+):[0-9]{1,5}$" });
    let argv = json!({
        "type": "array", "minItems": 1,
        "items": { "type": ["string", "number", "boolean"] },
        "description": "Program and arguments, run without a shell."
    });
    let status = json!({ "type": "integer", "minimum": 100, "maximum": 599 });
    let http_check = |timeout: bool| {
        let mut p = vec![
            ("url", url.clone()),
            ("status_min", status.clone()),
            ("status_max", status.clone()),
            ("body_contains", json!({ "type": "string" })),
            ("max_latency", r("duration")),
        ];
        if timeout {
            p.push(("timeout", r("duration")));
        }
        obj(p, &["url"])
    };
    let tcp_check = |timeout: bool| {
        let mut p = vec![("addr", addr.clone())];
        if timeout {
            p.push(("timeout", r("duration")));
        }
        obj(p, &["addr"])
    };
    let process_check = {
        let mut o = obj(
            vec![
                ("pid_file", json!({ "type": "string" })),
                ("name", json!({ "type": "string" })),
                ("supervised", json!({ "const": true })),
            ],
            &[],
        );
        o["minProperties"] = json!(1);
        o["maxProperties"] = json!(1);
        o
    };
    let one_kind = json!([
        { "required": ["http"] }, { "required": ["tcp"] },
        { "required": ["process"] }, { "required": ["exec"] }
    ]);
    let mut probe = obj(
        vec![
            ("http", http_check(true)),
            ("tcp", tcp_check(true)),
            ("process", process_check.clone()),
            ("exec", argv.clone()),
            (
                "every",
                with_doc(r("duration"), "How often the probe runs (default 10s)."),
            ),
            (
                "timeout",
                with_doc(r("duration"), "How long one run may take (default 1s)."),
            ),
            (
                "failure_threshold",
                with_doc(
                    r("positive_count"),
                    "Consecutive failures before the level fails (default 3).",
                ),
            ),
            (
                "success_threshold",
                with_doc(
                    r("positive_count"),
                    "Consecutive successes before a failed level passes (default 1).",
                ),
            ),
        ],
        &[],
    );
    probe["oneOf"] = one_kind.clone();
    d.insert("probe".into(), probe);
    let mut check = obj(
        vec![
            ("http", http_check(false)),
            ("tcp", tcp_check(false)),
            ("process", process_check),
            ("exec", argv.clone()),
        ],
        &[],
    );
    check["oneOf"] = one_kind;
    d.insert("check".into(), check);
    let mut action = obj(
        vec![
            ("exec", argv.clone()),
            (
                "shell",
                with_doc(
                    json!({ "type": "boolean" }),
                    "Run exec through /bin/sh -c (explicit opt-in; default false).",
                ),
            ),
            (
                "http",
                obj(
                    vec![
                        ("method", names("method")),
                        ("url", url.clone()),
                        ("body", json!({ "type": "string" })),
                        ("expect_status", status.clone()),
                    ],
                    &["url"],
                ),
            ),
            ("supervisor", json!({ "const": true })),
            (
                "timeout",
                with_doc(
                    r("duration"),
                    "How long the action may take before it is killed (default 30s).",
                ),
            ),
            ("post_condition", r("check")),
            (
                "close",
                with_doc(
                    r("action"),
                    "Only on circuit_break: the exec or http action that lets work flow again when the circuit closes.",
                ),
            ),
        ],
        &[],
    );
    action["oneOf"] = json!([
        { "required": ["exec"] }, { "required": ["http"] }, { "required": ["supervisor"] }
    ]);
    d.insert("action".into(), action);
    let strategies: Vec<(&str, Value)> = config::strategy_names()
        .into_iter()
        .map(|s| (s, r("action")))
        .collect();
    d.insert(
        "target".into(),
        obj(
            vec![
                ("name", with_doc(r("name"), "Unique name; a prefix matching a tier's agents puts the target in that tier.")),
                ("tier", with_doc(json!({ "type": "string" }), "Explicit tier; overrides matching.")),
                ("labels", with_doc(r("labels"), "Free-form labels; `type` matches a tier's agents.")),
                ("group", with_doc(json!({ "type": "string" }), "Replicas serving the same traffic share a group.")),
                ("probes", obj(
                    vec![
                        ("liveness", r("probe")),
                        ("readiness", r("probe")),
                        ("performance", obj(vec![
                            ("max_latency", r("duration")),
                            ("max_error_rate", r("ratio")),
                            ("max_queue_depth", json!({ "type": "number", "minimum": 0 })),
                            ("every", with_doc(r("duration"), "How often the metrics are scraped for this level (default metrics.every, else 15s).")),
                            ("timeout", with_doc(r("duration"), "How long one scrape may take (default metrics.timeout, else 5s).")),
                            ("failure_threshold", with_doc(r("positive_count"), "Consecutive failed measurements before the level fails (default 3).")),
                            ("success_threshold", with_doc(r("positive_count"), "Consecutive passing measurements before a failed level passes (default 1).")),
                        ], &[])),
                        ("resources", obj(vec![
                            ("max_rss", json!({ "oneOf": [
                                { "type": "integer", "minimum": 1 },
                                { "type": "string", "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*([KMGT]i?)?B?\\s*$" }
                            ] })),
                            ("max_cpu", json!({ "type": "number", "minimum": 0 })),
                            ("max_open_fds", r("positive_count")),
                            ("every", with_doc(r("duration"), "How often the process is measured (default 10s).")),
                            ("timeout", with_doc(r("duration"), "How long one measurement may take (default 5s; the CPU figure takes 500ms).")),
                            ("failure_threshold", with_doc(r("positive_count"), "Consecutive failed measurements before the level fails (default 3).")),
                            ("success_threshold", with_doc(r("positive_count"), "Consecutive passing measurements before a failed level passes (default 1).")),
                        ], &[])),
                    ],
                    &[],
                )),
                ("metrics", obj(
                    vec![
                        ("url", url.clone()),
                        ("every", with_doc(r("duration"), "Scrape interval (default 15s).")),
                        ("timeout", with_doc(r("duration"), "Scrape timeout (default 5s).")),
                    ],
                    &["url"],
                )),
                ("depends_on", json!({ "type": "array", "items": { "type": "string" } })),
                ("actions", obj(strategies, &[])),
                ("fallback", r("action")),
                ("supervise", obj(
                    vec![
                        ("command", argv.clone()),
                        ("env", r("labels")),
                        ("state_dir", json!({ "type": "string" })),
                        ("workdir", json!({ "type": "string" })),
                        ("port", with_doc(
                            json!({ "type": "integer", "minimum": 1, "maximum": 65535 }),
                            "Base port: instance k gets the first free port from port + k ({port}, MEDIC_PORT). Required when the command uses {port}.",
                        )),
                    ],
                    &["command"],
                )),
                ("startup_delay", with_doc(r("duration"), "Wait after an action before verifying (default 5s).")),
                ("replicas", obj(
                    vec![
                        ("initial", r("count")),
                        ("min", r("count")),
                        ("max", r("positive_count")),
                    ],
                    &[],
                )),
            ],
            &["name"],
        ),
    );
    json!({
        "$schema": DIALECT,
        "$id": "https://medic.invalid/schema/fleet.json",
        "title": "medic fleet",
        "type": "object",
        "additionalProperties": false,
        "required": ["targets"],
        "patternProperties": { "^x-": {} },
        "properties": {
            "targets": { "type": "array", "items": r("target") }
        },
        "$defs": d
    })
}
