//! The `medic` command line.

fn main() {
    println!("medic {}", env!("CARGO_PKG_VERSION"));
}
