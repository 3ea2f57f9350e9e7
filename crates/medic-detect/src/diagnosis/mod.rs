//! Error-pattern diagnosis: pattern library, analyzer, recovery options.
