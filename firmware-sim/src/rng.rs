//! A small deterministic generator (SplitMix64) and the draws the model needs,
//! so a seed gives the same homes, incidents and faults on every run.

/// SplitMix64.
///
/// ```
/// let (mut a, mut b) = (firmware_sim::Rng::new(7), firmware_sim::Rng::new(7));
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!((0.0..1.0).contains(&a.next_f64()));
/// ```
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator for one purpose of one thing (`home`, `day`, …): the same
    /// inputs give the same stream, whatever was drawn before.
    pub fn keyed(seed: u64, keys: &[u64]) -> Self {
        let mut rng = Self(seed);
        for key in keys {
            rng.0 ^= key.wrapping_mul(0xA24B_AED4_963E_E407);
            rng.next_u64();
        }
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [low, high).
    pub fn range(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.next_f64()
    }

    /// Uniform in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }

    /// Normally distributed (Box–Muller).
    pub fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let u = self.next_f64().max(f64::MIN_POSITIVE);
        let v = self.next_f64();
        mean + sd * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Log-normally distributed with this median and spread (sd of the log).
    pub fn lognormal(&mut self, median: f64, spread: f64) -> f64 {
        median * self.normal(0.0, spread).exp()
    }

    /// How many events of a Poisson process with this mean.
    pub fn poisson(&mut self, mean: f64) -> u32 {
        let limit = (-mean).exp();
        let (mut k, mut p) = (0, self.next_f64());
        while p > limit && k < 1000 {
            k += 1;
            p *= self.next_f64();
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_have_the_asked_for_shape() {
        let mut rng = Rng::new(3);
        let n = 20_000;
        let mean = (0..n).map(|_| rng.normal(10.0, 2.0)).sum::<f64>() / n as f64;
        assert!((mean - 10.0).abs() < 0.1, "{mean}");
        let mean = (0..n).map(|_| rng.poisson(1.5) as f64).sum::<f64>() / n as f64;
        assert!((mean - 1.5).abs() < 0.05, "{mean}");
        assert_eq!(
            Rng::keyed(1, &[2, 3]).next_u64(),
            Rng::keyed(1, &[2, 3]).next_u64()
        );
        assert_ne!(
            Rng::keyed(1, &[2, 3]).next_u64(),
            Rng::keyed(1, &[3, 2]).next_u64()
        );
    }
}
