//! `supervise.port`: the base port of a supervised target's instances.

use std::collections::BTreeMap;
use std::path::Path;

use medic_policy::{TierPolicy, parse_fleet_str, parse_policies_str};

fn shipped_tiers() -> BTreeMap<String, TierPolicy> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/tiers.yaml");
    parse_policies_str(&std::fs::read_to_string(path).unwrap(), "tiers.yaml").unwrap()
}

fn errors(text: &str) -> Vec<String> {
    match parse_fleet_str(text, "fleet.yaml", &shipped_tiers()) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_command_with_port_needs_a_base_port() {
    assert_eq!(
        errors(
            "targets:\n  - name: w\n    supervise:\n      command: [agent, --port, \"{port}\"]\n"
        ),
        [
            "fleet.yaml:4:32: targets[0].supervise.command[2]: expected supervise.port (the base port) for a command with {port}, found no port"
        ]
    );
    let fleet = parse_fleet_str(
        "targets:\n  - name: w\n    supervise:\n      command: [agent, --port, \"{port}\"]\n      port: 18100\n",
        "fleet.yaml",
        &shipped_tiers(),
    )
    .unwrap();
    assert_eq!(
        fleet.targets[0].supervise.as_ref().unwrap().port,
        Some(18100)
    );
    // Without {port} a port is optional (MEDIC_PORT still tells the process).
    let fleet = parse_fleet_str(
        "targets:\n  - name: w\n    supervise: { command: [sleep, \"60\"] }\n",
        "fleet.yaml",
        &shipped_tiers(),
    )
    .unwrap();
    assert_eq!(fleet.targets[0].supervise.as_ref().unwrap().port, None);
}

#[test]
fn a_base_port_out_of_range_is_located() {
    for (bad, found) in [("0", "0"), ("70000", "70000"), ("http", "\"http\"")] {
        let e = errors(&format!(
            "targets:\n  - name: w\n    supervise:\n      command: [sleep, \"60\"]\n      port: {bad}\n"
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("fleet.yaml:5:13: targets[0].supervise.port: expected an integer from 1 to 65535, found")
                && e[0].contains(found),
            "{e:?}"
        );
    }
}
