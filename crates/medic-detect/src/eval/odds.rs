//! ODDS-style tabular benchmarks: isolation forest AUC, fit and score times.
