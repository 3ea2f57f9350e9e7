//! medic's HTTP API (work in progress).
