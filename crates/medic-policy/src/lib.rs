//! medic's configuration: `fleet.yaml` and the tier policies in `policies/*.yaml`.
//!
//! Two stages, as in ripgrep's low/high arguments: serde `*Config` structs mirror the YAML
//! (unknown keys rejected), then validation turns them into the typed [`Fleet`] and
//! [`TierPolicy`], collecting **every** problem with its file, line, column and key path.
//!
//! Invariant: engine code never sees a `*Config`; it sees only the validated model.

pub mod model;

pub use model::*;
