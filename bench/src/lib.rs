//! Shared helpers for medic's benchmarks (timing, ratio printing).
