//! Power before the run: the smallest difference between two tutors a design can detect, and
//! how many scenarios would detect a given one.
//!
//! Two tutors are compared on the scenarios both ran, by the mean of their per-scenario
//! differences. Planned as a paired t test (Cohen, "Statistical Power Analysis for the
//! Behavioral Sciences", 1988, ch. 2; the same computation as statsmodels' `TTestPower`):
//! with `n` scenarios and a per-scenario difference of standard deviation `σ`, a true
//! difference `Δ` is detected with power `P(|T'| > t_crit)`, `T'` noncentral t with `n − 1`
//! degrees of freedom and noncentrality `Δ √n / σ`. With several tutors every pair is tested
//! and Holm-adjusted; the first comparison Holm makes is at `α / pairs`, so the plan uses that
//! level, which is what the leaderboard's separations need.

use serde::{Deserialize, Serialize};

use super::{ln_gamma, student_t_quantile};

/// The power a plan is sized for.
pub const TARGET_POWER: f64 = 0.8;

/// The most scenarios a plan is sized up to.
const MAX_SCENARIOS: u32 = 100_000;

/// How scores vary, for planning: the spread of a per-scenario difference between two tutors,
/// and how much of it is repetition noise that more repetitions average away.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesignVariance {
    /// Standard deviation of the per-scenario difference between two tutors' scenario means,
    /// in points of the rubric's scale, at `repetitions` repetitions.
    pub difference_sd: f64,
    /// Standard deviation of one run's overall score about its scenario's mean (repetition
    /// noise); `None` when no scenario ran twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repetition_sd: Option<f64>,
    /// Repetitions per scenario it was measured at.
    pub repetitions: u32,
    /// Scenarios it was measured on (0 for the default).
    pub scenarios: u32,
}

impl DesignVariance {
    /// The default where no finished benchmark says better: a per-scenario difference between
    /// two tutors of standard deviation 0.6 beyond repetition noise of 0.5 per run, in points
    /// of a 1–5 scale (0.73 at 3 repetitions). A side simulation of rubric-score shapes puts
    /// the detectable difference at 8 scenarios × 3 repetitions near 0.8–1.1 points; this
    /// gives 1.05 with three tutors.
    pub const DEFAULT: DesignVariance = DesignVariance {
        difference_sd: 0.927_361_849_549_570_4,
        repetition_sd: Some(0.5),
        repetitions: 1,
        scenarios: 0,
    };

    /// The standard deviation of a per-scenario difference at `repetitions` repetitions: the
    /// scenarios' own part stays, the repetition noise of each tutor's mean shrinks as `1/r`.
    pub fn difference_sd_at(&self, repetitions: u32) -> f64 {
        let Some(noise) = self.repetition_sd else {
            return self.difference_sd;
        };
        let per_difference = |r: u32| 2.0 * noise * noise / f64::from(r.max(1));
        let scenario_part =
            (self.difference_sd.powi(2) - per_difference(self.repetitions)).max(0.0);
        (scenario_part + per_difference(repetitions)).sqrt()
    }
}

/// What a design can detect, at [`TARGET_POWER`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Power {
    /// Pairs of tutors compared.
    pub pairs: u32,
    /// Scenarios each pair shares.
    pub scenarios: u32,
    /// Repetitions per scenario.
    pub repetitions: u32,
    /// The level each comparison is planned at: α over the pairs (Holm's first step).
    pub alpha: f64,
    /// The per-scenario difference's standard deviation the plan assumes.
    pub difference_sd: f64,
    /// The smallest difference in points detected with 80% power; `None` with fewer than two
    /// scenarios or no pair to compare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detectable: Option<f64>,
    /// Scenarios (at these repetitions) that would detect a difference of 0.25 points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenarios_for_quarter_point: Option<u32>,
    /// Scenarios that would detect a difference of 0.5 points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenarios_for_half_point: Option<u32>,
}

impl Power {
    /// The power of a design of `tutors` tutors on `scenarios` scenarios × `repetitions`,
    /// comparisons at level `alpha` Holm-adjusted over every pair, scores varying as
    /// `variance` says.
    pub fn of(
        tutors: usize,
        scenarios: u32,
        repetitions: u32,
        alpha: f64,
        variance: &DesignVariance,
    ) -> Self {
        let pairs = u32::try_from(tutors * tutors.saturating_sub(1) / 2).unwrap_or(u32::MAX);
        let alpha = alpha / f64::from(pairs.max(1));
        let sd = variance.difference_sd_at(repetitions);
        let compared = pairs > 0 && sd > 0.0;
        let needed = |difference: f64| {
            compared
                .then(|| scenarios_to_detect(difference / sd, alpha, TARGET_POWER))
                .flatten()
        };
        Self {
            pairs,
            scenarios,
            repetitions,
            alpha,
            difference_sd: sd,
            detectable: (compared && scenarios >= 2)
                .then(|| detectable_effect(scenarios, alpha, TARGET_POWER) * sd),
            scenarios_for_quarter_point: needed(0.25),
            scenarios_for_half_point: needed(0.5),
        }
    }
}

/// Two-sided power of a one-sample (paired) t test of `n` differences at level `alpha`, when
/// the true mean difference is `effect` standard deviations.
pub fn paired_t_power(effect: f64, n: u32, alpha: f64) -> f64 {
    if n < 2 {
        return 0.0;
    }
    let df = f64::from(n - 1);
    let critical = student_t_quantile(1.0 - alpha / 2.0, df);
    let shift = effect * f64::from(n).sqrt();
    1.0 - noncentral_t_cdf(critical, df, shift) + noncentral_t_cdf(-critical, df, shift)
}

/// The smallest effect (in standard deviations) `n` differences detect with `power`.
pub fn detectable_effect(n: u32, alpha: f64, power: f64) -> f64 {
    let (mut low, mut high) = (0.0_f64, 1.0_f64);
    while paired_t_power(high, n, alpha) < power && high < 1e6 {
        high *= 2.0;
    }
    for _ in 0..60 {
        let middle = 0.5 * (low + high);
        if paired_t_power(middle, n, alpha) < power {
            low = middle;
        } else {
            high = middle;
        }
    }
    high
}

/// The fewest differences that detect `effect` standard deviations with `power`; `None`
/// beyond 100,000, or for no effect.
pub fn scenarios_to_detect(effect: f64, alpha: f64, power: f64) -> Option<u32> {
    if effect <= 0.0 || paired_t_power(effect, MAX_SCENARIOS, alpha) < power {
        return None;
    }
    let (mut low, mut high) = (1_u32, MAX_SCENARIOS);
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if paired_t_power(effect, middle, alpha) < power {
            low = middle;
        } else {
            high = middle;
        }
    }
    Some(high.max(2))
}

/// The distribution function of the noncentral t with `df` degrees of freedom and
/// noncentrality `shift`: `P(T' ≤ t) = E[Φ(t U − shift)]`, `U = √(χ²_df / df)`, integrated
/// over U's density by Simpson's rule.
pub fn noncentral_t_cdf(t: f64, df: f64, shift: f64) -> f64 {
    const STEPS: usize = 2000;
    // U has mean near 1 and spread about 1/√(2 df): nothing of it lies beyond this.
    let top = 1.0 + 12.0 / df.sqrt();
    let h = top / STEPS as f64;
    let log_norm = std::f64::consts::LN_2 + (df / 2.0) * (df / 2.0).ln() - ln_gamma(df / 2.0);
    let density = |u: f64| {
        if u <= 0.0 {
            return if df == 1.0 { log_norm.exp() } else { 0.0 };
        }
        (log_norm + (df - 1.0) * u.ln() - df * u * u / 2.0).exp()
    };
    let integrand = |u: f64| normal_cdf(t * u - shift) * density(u);
    let mut total = integrand(0.0) + integrand(top);
    for i in 1..STEPS {
        let weight = if i % 2 == 1 { 4.0 } else { 2.0 };
        total += weight * integrand(i as f64 * h);
    }
    (total * h / 3.0).clamp(0.0, 1.0)
}

/// The standard normal distribution function, to about 1e-15: `erf` by its series of
/// positive terms below 6 standard deviations, the tails beyond.
pub fn normal_cdf(x: f64) -> f64 {
    if x < -8.0 {
        return 0.0;
    }
    if x > 8.0 {
        return 1.0;
    }
    let z = x.abs() / std::f64::consts::SQRT_2;
    // erf(z) = 2/√π e^(−z²) Σ 2ⁿ z^(2n+1) / (1·3·…·(2n+1))
    let (mut term, mut sum) = (z, z);
    for n in 1..400 {
        term *= 2.0 * z * z / f64::from(2 * n + 1);
        sum += term;
        if term < 1e-17 * sum {
            break;
        }
    }
    let erf = 2.0 / std::f64::consts::PI.sqrt() * (-z * z).exp() * sum;
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn power_matches_statsmodels_ttestpower() {
        // statsmodels 0.15.0, TTestPower().power(effect_size, nobs, alpha, 'two-sided').
        for (effect, n, alpha, expected) in [
            (0.5, 8, 0.05, 0.232_077_004_638_991_42),
            (1.0, 8, 0.05 / 3.0, 0.446_543_473_112_791_36),
            (1.2, 8, 0.05 / 3.0, 0.618_656_579_172_597_1),
            (0.3, 48, 0.05 / 3.0, 0.352_469_082_437_802_5),
            (0.8, 16, 0.05 / 6.0, 0.575_675_762_713_302_6),
            (2.0, 4, 0.05, 0.754_983_917_114_010_9),
        ] {
            let power = paired_t_power(effect, n, alpha);
            assert!(
                close(power, expected, 1e-6),
                "{effect} {n} {alpha}: {power}"
            );
        }
    }

    #[test]
    fn detectable_effects_and_scenarios_needed_match_statsmodels() {
        // TTestPower().solve_power(effect_size=None, nobs=n, alpha, power=0.8).
        for (n, alpha, expected) in [
            (8, 0.05, 1.156_035_271_959_959),
            (8, 0.05 / 3.0, 1.450_343_041_929_203),
            (16, 0.05 / 3.0, 0.896_179_024_437_471_8),
            (48, 0.05 / 3.0, 0.481_810_093_183_609_2),
            (24, 0.005, 0.815_387_687_815_475_2),
        ] {
            let effect = detectable_effect(n, alpha, TARGET_POWER);
            assert!(close(effect, expected, 1e-5), "{n} {alpha}: {effect}");
        }
        // solve_power(effect_size, nobs=None, ...) gives a fractional number of
        // observations; a plan needs the next whole scenario.
        for (effect, alpha, fractional) in [
            (0.25 / 0.73, 0.05 / 3.0, 92.148_692_527_180_09),
            (0.5 / 0.73, 0.05 / 3.0, 25.248_037_170_142_43),
            (0.5, 0.05, 33.367_131_184_317_79_f64),
        ] {
            assert_eq!(
                scenarios_to_detect(effect, alpha, TARGET_POWER),
                Some(fractional.ceil() as u32)
            );
        }
        assert_eq!(scenarios_to_detect(0.0, 0.05, TARGET_POWER), None);
    }

    #[test]
    fn the_default_plan_of_three_tutors_at_eight_scenarios_detects_about_a_point() {
        let power = Power::of(3, 8, 3, 0.05, &DesignVariance::DEFAULT);
        assert_eq!((power.pairs, power.scenarios), (3, 8));
        let detectable = power.detectable.unwrap();
        assert!((0.8..=1.1).contains(&detectable), "{detectable}");
        let quarter = power.scenarios_for_quarter_point.unwrap();
        assert!((55..=115).contains(&quarter), "{quarter}");
        assert!(power.scenarios_for_half_point.unwrap() < quarter);
        // More repetitions average the noise away; the scenarios' own spread stays.
        assert!(
            Power::of(3, 8, 10, 0.05, &DesignVariance::DEFAULT)
                .detectable
                .unwrap()
                < detectable
        );
        // Fewer than two scenarios, or one tutor: no figure.
        assert_eq!(
            Power::of(3, 1, 3, 0.05, &DesignVariance::DEFAULT).detectable,
            None
        );
        assert_eq!(
            Power::of(1, 8, 3, 0.05, &DesignVariance::DEFAULT).detectable,
            None
        );
    }

    #[test]
    fn the_normal_distribution_function_is_exact_to_a_few_ulps() {
        // Values from scipy.stats.norm.cdf.
        for (x, expected) in [
            (0.0, 0.5),
            (1.0, 0.841_344_746_068_542_9),
            (-1.959_963_984_540_054, 0.025),
            (3.0, 0.998_650_101_968_369_9),
            (-5.0, 2.866_515_718_791_939e-7),
        ] {
            assert!(
                close(normal_cdf(x), expected, 1e-14),
                "{x}: {}",
                normal_cdf(x)
            );
        }
    }
}
