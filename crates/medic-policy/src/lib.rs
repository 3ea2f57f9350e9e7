//! medic's configuration: `fleet.yaml` and the tier policies in `policies/*.yaml`.
//!
//! Two stages, as in ripgrep's low/high arguments:
//! 1. [`yaml::parse_yaml`] reads a file with serde-saphyr into located [`yaml::Node`]s, and the
//!    `decode_*` functions of [`config`] turn those into `*Config` structs that mirror the YAML
//!    (unknown keys rejected, every value type-checked);
//! 2. [`validate`] checks the whole file (tier inheritance and resolution, unique names,
//!    `depends_on`, dependency cycles) and builds the typed [`Fleet`] and [`TierPolicy`].
//!
//! Both stages collect **every** problem as a [`ValidationError`] rendered
//! `file:line:col: key.path: expected …, found …`; nothing panics on any input.
//!
//! Entry points: [`load`] (fleet file + policy directory), [`load_policies`],
//! [`parse_fleet_str`] and [`parse_policies_str`] (for tests), [`fleet_schema`] and
//! [`policies_schema`] (JSON Schema for editors). [`TierPolicy::builtin_default`] gives the
//! documented defaults without any file.
//!
//! # Validating another YAML file the same way
//! Another crate with its own file (e.g. `policies/patterns.yaml`) uses [`yaml::parse_yaml`]
//! and a [`yaml::Decoder`]: `dec.map(node, path, ALLOWED_KEYS)` rejects unknown keys, the typed
//! getters (`string`, `ratio`, `duration`, `one_of`, `list`, …) record a located error and
//! return `None` on a bad value, and `dec.finish(value)` returns all the errors at once. See the
//! example on the [`yaml`] module. For a plain serde type, [`yaml::from_str_located`] reports
//! the first problem in the same `file:line:col` form. [`load_policies`] skips `patterns.yaml`
//! so that file can belong to its own crate.
//!
//! Invariants: engine code never sees a `*Config`; it sees only the validated model. Every
//! error carries a file, a line and column (0 only when the file itself cannot be read) and a
//! key path.

pub mod config;
mod defaults;
pub mod model;
mod schema;
pub mod validate;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::Path;

pub use defaults::default_rules;
pub use model::*;
pub use schema::{fleet_schema, policies_schema};
pub use yaml::{ValidationError, ValidationErrors, parse_duration};

use config::TierConfig;
use yaml::{Decoder, parse_yaml};

/// Loads and validates a fleet file and the tier policies of `policies_dir`.
///
/// Policy errors and fleet errors are reported together (the fleet is still checked against
/// the built-in `default` tier when the policies are broken, so that its own mistakes show).
pub fn load(fleet_path: &Path, policies_dir: &Path) -> Result<Fleet, ValidationErrors> {
    let (tiers, mut errors) = match load_policies(policies_dir) {
        Ok(t) => (t, ValidationErrors::default()),
        Err(e) => {
            let mut t = BTreeMap::new();
            t.insert("default".to_owned(), TierPolicy::builtin_default());
            (t, e)
        }
    };
    let file = fleet_path.display().to_string();
    let fleet = yaml::read_yaml_file(fleet_path, &file)
        .and_then(|text| parse_fleet_str(&text, &file, &tiers));
    match fleet {
        Ok(fleet) if errors.is_empty() => Ok(fleet),
        Ok(_) => Err(errors),
        Err(e) => {
            if errors.is_empty() {
                Err(e)
            } else {
                // With broken policies, "unknown tier" errors in the fleet are noise.
                errors.extend(ValidationErrors {
                    errors: e
                        .errors
                        .into_iter()
                        .filter(|x| !x.path.ends_with(".tier"))
                        .collect(),
                });
                errors.normalize();
                Err(errors)
            }
        }
    }
}

/// Whether a file in the policy directory is a tier policy file: `*.yaml` / `*.yml`, except
/// `patterns.yaml` (the diagnosis patterns) and `fleet*.yaml` (fleet files kept alongside).
pub fn is_policy_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
    yaml && !name.starts_with("patterns.") && !name.starts_with("fleet")
}

/// Reads every policy file of `dir` (see [`is_policy_file`]) in name order and builds the
/// tiers. A tier defined in two files is an error; `default` is always in the result.
pub fn load_policies(
    policies_dir: &Path,
) -> Result<BTreeMap<String, TierPolicy>, ValidationErrors> {
    let dir_name = policies_dir.display().to_string();
    let entries = std::fs::read_dir(policies_dir).map_err(|e| {
        ValidationErrors::file(
            &dir_name,
            format!("expected a readable directory, found {e}"),
        )
    })?;
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && is_policy_file(p))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ValidationErrors::file(
            &dir_name,
            "expected at least one *.yaml policy file, found none",
        ));
    }
    let mut errors = ValidationErrors::default();
    let mut tiers: Vec<TierConfig> = Vec::new();
    for path in files {
        let file = path.display().to_string();
        let text = match yaml::read_yaml_file(&path, &file) {
            Ok(t) => t,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        let (mut t, e) = decode_policies_text(&text, &file);
        tiers.append(&mut t);
        errors.extend(e);
    }
    validate::build_policies(&tiers, errors)
}

fn decode_policies_text(text: &str, file: &str) -> (Vec<TierConfig>, ValidationErrors) {
    match parse_yaml(text, file) {
        Ok(root) => {
            let mut dec = Decoder::new(file);
            let cfg = config::decode_policies(&mut dec, &root);
            (cfg.tiers, dec.into_errors())
        }
        Err(e) => (Vec::new(), e),
    }
}

/// Parses and validates one policy file's text; `file` is the name used in messages.
pub fn parse_policies_str(
    text: &str,
    file: &str,
) -> Result<BTreeMap<String, TierPolicy>, ValidationErrors> {
    let (tiers, errors) = decode_policies_text(text, file);
    validate::build_policies(&tiers, errors)
}

/// Parses and validates a fleet file's text against already-loaded tiers; `file` is the name
/// used in messages.
pub fn parse_fleet_str(
    text: &str,
    file: &str,
    tiers: &BTreeMap<String, TierPolicy>,
) -> Result<Fleet, ValidationErrors> {
    let root = parse_yaml(text, file)?;
    let mut dec = Decoder::new(file);
    let cfg = config::decode_fleet(&mut dec, &root);
    validate::build_fleet(file, cfg, tiers, dec.into_errors())
}
