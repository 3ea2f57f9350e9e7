//! The JSON Schemas: they accept the shipped files, reject broken ones, and list exactly the
//! keys the decoder accepts. A small validator for the keywords the schemas use stands in for
//! a full JSON Schema implementation.

use medic_policy::config;
use medic_policy::yaml::{Node, Value as Y, parse_yaml};
use medic_policy::{fleet_schema, policies_schema};
use serde_json::{Value, json};

use super::repo_policies;

fn to_json(n: &Node) -> Value {
    match &n.value {
        Y::Null => Value::Null,
        Y::Bool(b) => json!(b),
        Y::Int(i) => i64::try_from(*i).map_or(json!(*i as f64), |i| json!(i)),
        Y::Float(f) => json!(f),
        Y::Str(s) => json!(s),
        Y::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        Y::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.as_key().unwrap_or_default(), to_json(v)))
                .collect(),
        ),
    }
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        "null" => v.is_null(),
        _ => false,
    }
}

/// Errors of `v` against `s` (draft 2020-12 subset: the keywords our schemas use).
fn check(root: &Value, s: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
    let Some(s) = s.as_object() else { return };
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        check(root, &root["$defs"][name], v, at, out);
    }
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(t) => type_ok(t, v),
            Value::Array(ts) => ts.iter().any(|t| type_ok(t.as_str().unwrap(), v)),
            _ => true,
        };
        if !ok {
            out.push(format!("{at}: type {t}"));
            return;
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        out.push(format!("{at}: not in enum"));
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        out.push(format!("{at}: not const"));
    }
    if let Some(n) = v.as_f64() {
        if s.get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n < m)
        {
            out.push(format!("{at}: below minimum"));
        }
        if s.get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n > m)
        {
            out.push(format!("{at}: above maximum"));
        }
    }
    if let (Some(p), Some(text)) = (s.get("pattern").and_then(Value::as_str), v.as_str())
        && !regex::Regex::new(p).unwrap().is_match(text)
    {
        out.push(format!("{at}: pattern {p}"));
    }
    if let (Some(m), Some(text)) = (s.get("minLength").and_then(Value::as_u64), v.as_str())
        && (text.chars().count() as u64) < m
    {
        out.push(format!("{at}: too short"));
    }
    if let Some(items) = v.as_array() {
        if s.get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| (items.len() as u64) < m)
        {
            out.push(format!("{at}: too few items"));
        }
        if let Some(is) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(root, is, item, &format!("{at}[{i}]"), out);
            }
        }
    }
    if let Some(o) = v.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        for (k, val) in o {
            let p = format!("{at}.{k}");
            let pattern = s
                .get("patternProperties")
                .and_then(Value::as_object)
                .and_then(|pp| {
                    pp.iter()
                        .find(|(re, _)| regex::Regex::new(re).unwrap().is_match(k))
                        .map(|(_, sub)| sub)
                });
            if let Some(ps) = props.and_then(|ps| ps.get(k)) {
                check(root, ps, val, &p, out);
            } else if let Some(sub) = pattern {
                check(root, sub, val, &p, out);
            } else {
                match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => out.push(format!("{p}: not allowed")),
                    Some(extra @ Value::Object(_)) => check(root, extra, val, &p, out),
                    _ => {}
                }
            }
            if let Some(names) = s.get("propertyNames") {
                check(root, names, &json!(k), &p, out);
            }
        }
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !o.contains_key(r.as_str().unwrap()) {
                out.push(format!("{at}: missing {r}"));
            }
        }
        if s.get("minProperties")
            .and_then(Value::as_u64)
            .is_some_and(|m| (o.len() as u64) < m)
        {
            out.push(format!("{at}: too few properties"));
        }
        if s.get("maxProperties")
            .and_then(Value::as_u64)
            .is_some_and(|m| (o.len() as u64) > m)
        {
            out.push(format!("{at}: too many properties"));
        }
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
        let passing = one
            .iter()
            .filter(|sub| {
                let mut e = Vec::new();
                check(root, sub, v, at, &mut e);
                e.is_empty()
            })
            .count();
        if passing != 1 {
            out.push(format!("{at}: {passing} of oneOf match"));
        }
    }
}

fn errors(schema: &Value, yaml: &str) -> Vec<String> {
    let node = parse_yaml(yaml, "x.yaml").unwrap();
    let mut out = Vec::new();
    check(schema, schema, &to_json(&node), "", &mut out);
    out
}

#[test]
fn shipped_files_conform() {
    let tiers = std::fs::read_to_string(repo_policies().join("tiers.yaml")).unwrap();
    assert_eq!(errors(&policies_schema(), &tiers), Vec::<String>::new());
    let fleet = std::fs::read_to_string(repo_policies().join("fleet.example.yaml")).unwrap();
    assert_eq!(errors(&fleet_schema(), &fleet), Vec::<String>::new());
}

#[test]
fn broken_files_are_rejected_by_the_schema_too() {
    let p = policies_schema();
    for bad in [
        "healing_policies:\n  default:\n    restart_cooldwn: 300s\n",
        "healing_policies:\n  default:\n    restart_cooldown: -5s\n",
        "healing_policies:\n  default:\n    restart_cooldown: 31536001\n",
        "healing_policies:\n  default:\n    scale_threshold: 1.5\n",
        "healing_policies:\n  default:\n    rules: [{ name: r, when: {}, then: restart }]\n",
        "healing_policies:\n  x:\n    agent: [a]\n",
        "healing_policies:\n  x:\n    policy: { auto_approve_risk: extreme }\n",
    ] {
        assert!(!errors(&p, bad).is_empty(), "schema accepted {bad:?}");
    }
    let f = fleet_schema();
    for bad in [
        "targets:\n  - name: w\n    probes:\n      liveness: { exec: [] }\n",
        "targets:\n  - name: w\n    probes:\n      liveness: { tcp: { addr: \"127.0.0.1:1\" }, exec: [\"true\"] }\n",
        "targets:\n  - name: w\n    actions:\n      reboot: { exec: [reboot] }\n",
        "targets:\n  - tier: default\n",
        "targets:\n  - name: w\n    probes:\n      liveness: { http: { url: \"127.0.0.1/health\" } }\n",
        "targets:\n  - name: w\n    startup_delay: soon\n",
    ] {
        assert!(!errors(&f, bad).is_empty(), "schema accepted {bad:?}");
    }
}

fn keys(schema: &Value) -> Vec<String> {
    let mut k: Vec<String> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
    k.sort();
    k
}

#[test]
fn schemas_list_exactly_the_accepted_keys() {
    let p = policies_schema();
    let d = &p["$defs"];
    assert_eq!(keys(&p), sorted(config::POLICIES_KEYS));
    assert_eq!(keys(&d["policy"]), sorted(config::POLICY_KEYS));
    assert_eq!(keys(&d["tier"]), sorted(config::TIER_KEYS));
    assert_eq!(keys(&d["rule"]), sorted(config::RULE_KEYS));
    assert_eq!(keys(&d["condition"]), sorted(config::CONDITION_KEYS));
    assert_eq!(
        keys(&d["policy"]["properties"]["backoff"]),
        sorted(config::BACKOFF_KEYS)
    );
    assert_eq!(
        keys(&d["policy"]["properties"]["crash_loop"]),
        sorted(config::CRASH_LOOP_KEYS)
    );
    assert_eq!(
        keys(&d["policy"]["properties"]["scaling"]),
        sorted(config::SCALING_KEYS)
    );

    let f = fleet_schema();
    let d = &f["$defs"];
    let t = &d["target"]["properties"];
    assert_eq!(keys(&f), sorted(config::FLEET_KEYS));
    assert_eq!(keys(&d["target"]), sorted(config::TARGET_KEYS));
    assert_eq!(keys(&t["probes"]), sorted(config::PROBES_KEYS));
    assert_eq!(keys(&d["probe"]), sorted(config::ACTIVE_PROBE_KEYS));
    assert_eq!(keys(&d["check"]), sorted(config::CHECK_KEYS));
    assert_eq!(
        keys(&d["probe"]["properties"]["http"]),
        sorted(config::HTTP_CHECK_KEYS)
    );
    assert_eq!(
        keys(&d["probe"]["properties"]["tcp"]),
        sorted(config::TCP_CHECK_KEYS)
    );
    assert_eq!(
        keys(&d["probe"]["properties"]["process"]),
        sorted(config::PROCESS_CHECK_KEYS)
    );
    assert_eq!(
        keys(&t["probes"]["properties"]["performance"]),
        sorted(config::PERFORMANCE_KEYS)
    );
    assert_eq!(
        keys(&t["probes"]["properties"]["resources"]),
        sorted(config::RESOURCES_KEYS)
    );
    assert_eq!(keys(&t["metrics"]), sorted(config::METRICS_KEYS));
    assert_eq!(keys(&d["action"]), sorted(config::ACTION_KEYS));
    assert_eq!(
        keys(&d["action"]["properties"]["http"]),
        sorted(config::ACTION_HTTP_KEYS)
    );
    assert_eq!(keys(&t["supervise"]), sorted(config::SUPERVISE_KEYS));
    assert_eq!(keys(&t["replicas"]), sorted(config::REPLICAS_KEYS));
    assert_eq!(keys(&t["actions"]), sorted(&config::strategy_names()));
    assert_eq!(p["$schema"], "https://json-schema.org/draft/2020-12/schema");
}
