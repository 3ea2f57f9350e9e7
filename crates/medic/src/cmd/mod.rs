//! One module per subcommand.

pub mod check;
pub mod diagnose;
pub mod eval;
pub mod schema;
pub mod simulate;
pub mod validate;
