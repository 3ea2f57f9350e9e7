//! Target identity.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The name of a target as written in `fleet.yaml`, e.g. `crewai-1`.
///
/// Cheap to clone (a shared string), compared and hashed by its text.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TargetId(Arc<str>);

impl TargetId {
    /// Creates an id from a name.
    pub fn new(name: impl AsRef<str>) -> Self {
        TargetId(Arc::from(name.as_ref()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for TargetId {
    fn from(s: &str) -> Self {
        TargetId::new(s)
    }
}

impl From<String> for TargetId {
    fn from(s: String) -> Self {
        TargetId(Arc::from(s))
    }
}

impl Borrow<str> for TargetId {
    fn borrow(&self) -> &str {
        &self.0
    }
}
