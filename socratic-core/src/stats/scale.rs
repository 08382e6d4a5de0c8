//! The interval of a mean of values on a bounded scale (1 to 5 rubric scores, and averages of
//! them): a Bayesian bootstrap with a weak Dirichlet prior over the scale's levels.
//!
//! Rubric scores pile up at the scale's ends: a good tutor scores mostly 4 and 5, a poor one
//! 1 and 2, and some scenarios are all-or-nothing. There a t interval, or the percentile
//! bootstrap, undercovers badly at 8 scenarios (72–92% on ceiling and two-point shapes): a
//! sample of eight 5s gives them no width at all, though the true mean is below 5.
//!
//! The method is the Bayesian bootstrap (Rubin, 1981) with a Dirichlet process prior whose
//! base measure puts a pseudo-observation of weight [`LEVEL_PRIOR`] on each level of the scale
//! (Ferguson, 1973): the posterior of the mean is that of `Σ wᵢ pᵢ` over the scenarios' values
//! and the levels, with `w ~ Dirichlet(1, …, 1, α, …, α)`. Its quantiles follow the skew of
//! the data towards the ceiling or the floor, and the prior keeps an all-5 sample from a
//! zero-width interval. Like the percentile bootstrap, the posterior's spread is the plug-in
//! one, too narrow at few scenarios; its deviations from the posterior mean are widened by
//! `√(n / (n − 1))`, the small-sample factor of Hesterberg's expanded percentile interval
//! ("What teachers should know about the bootstrap", 2015). Scenarios are the resampling unit
//! (Miller, "Adding error bars to evals", 2024): their repetitions and turns are averaged into
//! them first.
//!
//! The coverage this gives on a family of score shapes is in `docs/statistics.md`, and a test
//! (`interval_coverage_and_type_one_error_…` in `stats`) holds it.

use std::ops::RangeInclusive;

use super::{Caution, Estimate, SplitMix64, mean, sorted_percentile};

/// The weight of the prior's pseudo-observation at each level of the scale.
pub const LEVEL_PRIOR: f64 = 0.2;

/// Posterior draws behind each interval.
pub const SCALE_RESAMPLES: usize = 1000;

/// The mean of `xs`, values on the scale `levels` (its integer levels, e.g. `1..=5`), with a
/// 95% interval from the level-prior Bayesian bootstrap, seeded by `seed`. With one value
/// there is no interval; with fewer than [`RELIABLE_SCENARIOS`](super::RELIABLE_SCENARIOS)
/// values or no spread, the estimate carries a [`Caution`].
pub fn scale_interval(xs: &[f64], levels: RangeInclusive<u8>, seed: u64) -> Option<Estimate> {
    let levels: Vec<f64> = levels.map(f64::from).collect();
    PosteriorDraws::new(xs.len(), levels.len(), SCALE_RESAMPLES, seed).estimate(xs, &levels)
}

/// Dirichlet weights for `values` data points followed by `levels` pseudo-observations, one
/// row a draw. They depend only on the counts and the seed, so one set serves every sample of
/// the same size.
pub(super) struct PosteriorDraws {
    values: usize,
    levels: usize,
    /// Row-major: `draws × (values + levels)`, each row summing to 1.
    weights: Vec<f64>,
}

impl PosteriorDraws {
    pub(super) fn new(values: usize, levels: usize, draws: usize, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let width = values + levels;
        let mut weights = Vec::with_capacity(draws * width);
        for _ in 0..draws {
            let row = weights.len();
            // Dirichlet(1, …, 1, α, …, α) as normalised Gamma draws: Gamma(1) is Exp(1).
            for _ in 0..values {
                weights.push(-(1.0 - rng.next_f64()).ln());
            }
            for _ in 0..levels {
                weights.push(gamma(&mut rng, LEVEL_PRIOR));
            }
            let total: f64 = weights[row..].iter().sum();
            weights[row..].iter_mut().for_each(|w| *w /= total);
        }
        Self {
            values,
            levels,
            weights,
        }
    }

    /// The estimate of `xs` (as many as the draws were made for) on the scale `levels`.
    pub(super) fn estimate(&self, xs: &[f64], levels: &[f64]) -> Option<Estimate> {
        let point = mean(xs)?;
        let n = xs.len();
        debug_assert_eq!((n, levels.len()), (self.values, self.levels));
        let spread = xs.iter().any(|x| (x - point).abs() > 1e-12);
        let caution = Caution::of(n, spread || n < 2);
        let mut estimate = Estimate {
            mean: point,
            ci_low: None,
            ci_high: None,
            n: u32::try_from(n).unwrap_or(u32::MAX),
            caution,
        };
        let (Some(&bottom), Some(&top)) = (levels.first(), levels.last()) else {
            return Some(estimate);
        };
        if n < 2 {
            return Some(estimate);
        }
        let points: Vec<f64> = xs.iter().chain(levels).copied().collect();
        let width = points.len();
        let mut means: Vec<f64> = self
            .weights
            .chunks_exact(width)
            .map(|row| row.iter().zip(&points).map(|(w, p)| w * p).sum())
            .collect();
        if means.is_empty() {
            return Some(estimate);
        }
        means.sort_by(f64::total_cmp);
        let total = n as f64 + LEVEL_PRIOR * levels.len() as f64;
        let centre = (xs.iter().sum::<f64>() + LEVEL_PRIOR * levels.iter().sum::<f64>()) / total;
        let widen = (n as f64 / (n as f64 - 1.0)).sqrt();
        let low = centre - widen * (centre - sorted_percentile(&means, 0.025));
        let high = centre + widen * (sorted_percentile(&means, 0.975) - centre);
        // On the scale, and around the sample's own mean, which the leaderboard shows.
        estimate.ci_low = Some(low.clamp(bottom, top).min(point));
        estimate.ci_high = Some(high.clamp(bottom, top).max(point));
        Some(estimate)
    }
}

/// A Gamma(`shape`, 1) draw: Marsaglia and Tsang (2000), boosted for a shape below 1
/// (`Gamma(a) = Gamma(a + 1) · U^(1/a)`).
fn gamma(rng: &mut SplitMix64, shape: f64) -> f64 {
    if shape < 1.0 {
        let u = 1.0 - rng.next_f64();
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = standard_normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = 1.0 - rng.next_f64();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A standard normal draw (Box–Muller).
fn standard_normal(rng: &mut SplitMix64) -> f64 {
    let u = 1.0 - rng.next_f64();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * rng.next_f64()).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_draws_have_their_shape_s_mean_and_variance() {
        let mut rng = SplitMix64::new(3);
        for shape in [0.2, 1.0, 2.5] {
            let draws: Vec<f64> = (0..200_000).map(|_| gamma(&mut rng, shape)).collect();
            let m = mean(&draws).unwrap();
            let v = draws.iter().map(|x| (x - m).powi(2)).sum::<f64>() / draws.len() as f64;
            // Gamma(k, 1): mean k, variance k.
            assert!(
                (m - shape).abs() < 0.02 * shape.max(1.0),
                "{shape}: mean {m}"
            );
            assert!(
                (v - shape).abs() < 0.05 * shape.max(1.0),
                "{shape}: variance {v}"
            );
        }
    }

    #[test]
    fn an_all_five_sample_gets_an_interval_below_the_ceiling_and_the_mean_stays_the_sample_s() {
        let estimate = scale_interval(&[5.0; 8], 1..=5, 11).unwrap();
        assert_eq!(estimate.mean, 5.0);
        let (low, high) = estimate.interval().unwrap();
        assert_eq!(high, 5.0);
        assert!(low < 4.9 && low > 3.0, "{low}");
        assert_eq!(estimate.caution, Some(Caution::NoSpread));
        let one = scale_interval(&[4.0], 1..=5, 11).unwrap();
        assert_eq!((one.interval(), one.n), (None, 1));
        let many: Vec<f64> = (0..20).map(|i| f64::from(1 + i % 5)).collect();
        assert_eq!(scale_interval(&many, 1..=5, 11).unwrap().caution, None);
        assert_eq!(
            scale_interval(&many[..8], 1..=5, 11).unwrap().caution,
            Some(Caution::FewScenarios)
        );
        assert_eq!(scale_interval(&[], 1..=5, 11), None);
    }
}
