//! Helpers for medic's end-to-end tests.
