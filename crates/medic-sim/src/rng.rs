//! Small distributions on top of a seeded ChaCha generator (no extra crate needed).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The simulator's generator: ChaCha8, reproducible across platforms.
pub(crate) type SimRng = ChaCha8Rng;

/// A generator for stream `stream` of seed `seed`, so that agents are independent of each
/// other's draws (adding an agent does not change the others' histories).
pub(crate) fn rng_for(seed: u64, stream: u64) -> SimRng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// A standard normal draw (Box–Muller).
pub(crate) fn normal(rng: &mut SimRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A uniform draw in `[lo, hi)`.
pub(crate) fn uniform(rng: &mut SimRng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// A Poisson draw (Knuth for small means, normal approximation above 30).
pub(crate) fn poisson(rng: &mut SimRng, mean: f64) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    if mean > 30.0 {
        return (mean + mean.sqrt() * normal(rng)).round().max(0.0);
    }
    let l = (-mean).exp();
    let mut k = 0.0;
    let mut p = 1.0;
    loop {
        p *= rng.random::<f64>();
        if p <= l {
            return k;
        }
        k += 1.0;
    }
}

/// An exponential draw with the given mean.
pub(crate) fn exponential(rng: &mut SimRng, mean: f64) -> f64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    -mean * u.ln()
}
