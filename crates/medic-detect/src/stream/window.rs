//! A fixed-capacity ring buffer of samples with exact running mean and sum of squared deviations.

/// Ring buffer of the last `capacity` samples with their mean and M2 (sum of squared deviations),
/// updated in O(1) by sliding Welford steps and re-summed exactly every `4 * capacity` updates so
/// rounding drift stays bounded (amortised O(1)).
#[derive(Debug, Clone)]
pub(crate) struct Window {
    buf: Box<[f64]>,
    head: usize,
    len: usize,
    mean: f64,
    m2: f64,
    since_resum: usize,
}

impl Window {
    pub(crate) fn new(capacity: usize) -> Window {
        Window {
            buf: vec![0.0; capacity.max(1)].into_boxed_slice(),
            head: 0,
            len: 0,
            mean: 0.0,
            m2: 0.0,
            since_resum: 0,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn mean(&self) -> f64 {
        self.mean
    }

    /// Sample variance (n − 1), 0 with fewer than two samples.
    pub(crate) fn variance(&self) -> f64 {
        if self.len < 2 {
            0.0
        } else {
            (self.m2 / (self.len - 1) as f64).max(0.0)
        }
    }

    /// The `k`-th oldest sample (0 = oldest).
    pub(crate) fn get(&self, k: usize) -> f64 {
        let cap = self.buf.len();
        let start = (self.head + cap - self.len) % cap;
        self.buf[(start + k) % cap]
    }

    /// Adds a sample, dropping the oldest when full; returns the dropped one.
    pub(crate) fn push(&mut self, x: f64) -> Option<f64> {
        let cap = self.buf.len();
        let dropped = if self.len < cap {
            self.buf[self.head] = x;
            self.len += 1;
            let d = x - self.mean;
            self.mean += d / self.len as f64;
            self.m2 += d * (x - self.mean);
            None
        } else {
            let old = self.buf[self.head];
            self.buf[self.head] = x;
            let old_mean = self.mean;
            self.mean += (x - old) / self.len as f64;
            self.m2 += (x - old) * (x - self.mean + old - old_mean);
            Some(old)
        };
        self.head = if self.head + 1 == cap {
            0
        } else {
            self.head + 1
        };
        self.since_resum += 1;
        if self.since_resum >= 4 * cap {
            self.resum();
        }
        dropped
    }

    fn resum(&mut self) {
        self.since_resum = 0;
        let n = self.len as f64;
        let mean = (0..self.len).map(|k| self.get(k)).sum::<f64>() / n;
        self.m2 = (0..self.len).map(|k| (self.get(k) - mean).powi(2)).sum();
        self.mean = mean;
    }

    pub(crate) fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
        self.mean = 0.0;
        self.m2 = 0.0;
        self.since_resum = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_moments_match_exact() {
        let mut w = Window::new(7);
        let xs: Vec<f64> = (0..1000)
            .map(|i| ((i * 37) % 101) as f64 * 1e3 + 1e9)
            .collect();
        for (i, &x) in xs.iter().enumerate() {
            w.push(x);
            let lo = (i + 1).saturating_sub(7);
            let tail = &xs[lo..=i];
            let mean = tail.iter().sum::<f64>() / tail.len() as f64;
            assert!((w.mean() - mean).abs() < 1e-3, "mean at {i}");
            if tail.len() > 1 {
                let var =
                    tail.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (tail.len() - 1) as f64;
                assert!(
                    (w.variance() - var).abs() <= 1e-6 * var.max(1.0),
                    "var at {i}"
                );
            }
        }
    }
}
