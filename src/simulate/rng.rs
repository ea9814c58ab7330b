//! Seeded random streams and the few distributions the simulator draws from.
//!
//! Every component draws from its own substream of the one scheme in `stats::rng` (same seed,
//! different stream number), so
//! changing one component (say, admissions) leaves the draws of the others unchanged.
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, StandardNormal};

use crate::stats::rng::{substream, tags};

/// Stream numbers of the simulator's components.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    Design = 1,
    People = 2,
    Latent = 3,
    Items = 4,
    Missing = 5,
    Admissions = 6,
}

/// The random stream of one component.
pub struct Rng(ChaCha8Rng);

impl Rng {
    /// The component's substream of the shared scheme ([`crate::stats::rng::substream`]):
    /// tag [`crate::stats::rng::tags::SIMULATOR`], index = the component's number.
    pub fn new(seed: u64, stream: Stream) -> Rng {
        Rng(substream(seed, tags::SIMULATOR, stream as u64))
    }

    /// Uniform on [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    /// Uniform integer in 0..n (n > 0; 0 when n == 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            self.0.random_range(0..n)
        }
    }

    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    pub fn std_normal(&mut self) -> f64 {
        StandardNormal.sample(&mut self.0)
    }

    pub fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        mean + sd * self.std_normal()
    }

    /// Standard exponential.
    pub fn exp1(&mut self) -> f64 {
        -(1.0 - self.uniform()).ln()
    }

    /// Gamma(shape, scale); `shape` > 0 checked by the configuration.
    pub fn gamma(&mut self, shape: f64, scale: f64) -> f64 {
        match Gamma::new(shape, scale) {
            Ok(g) => g.sample(&mut self.0),
            Err(_) => shape * scale,
        }
    }

    /// Binomial(n, p) by summing Bernoulli draws (n is small here).
    pub fn binomial(&mut self, n: u32, p: f64) -> u32 {
        (0..n).filter(|_| self.bernoulli(p)).count() as u32
    }

    /// Index drawn with probabilities proportional to `weights` (non-negative, positive sum).
    pub fn categorical(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut u = self.uniform() * total;
        for (i, w) in weights.iter().enumerate() {
            if u < *w {
                return i;
            }
            u -= w;
        }
        weights.iter().rposition(|w| *w > 0.0).unwrap_or(0)
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i + 1);
            xs.swap(i, j);
        }
    }
}

/// The logistic function.
pub fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}
