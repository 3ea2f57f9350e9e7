//! Helpers for medic's end-to-end tests.
//!
//! - [`chromium`]: find a headless Chromium and load a page in it (the dashboard tests).

pub mod chromium;
