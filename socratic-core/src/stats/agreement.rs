//! Agreement between raters: Krippendorff's alpha (interval metric) and quadratic-weighted
//! kappa, as sums over units, so any union of groups of units is summed, not recomputed.

/// Krippendorff's alpha with the interval metric. `units[u]` holds the ratings of unit `u`
/// (one per rater who rated it); units with fewer than two ratings are not pairable and are
/// ignored. `None` when fewer than two pairable values exist or there is no variation at all.
/// One pass over the ratings: see [`AlphaSums`].
pub fn krippendorff_alpha_interval(units: &[Vec<f64>]) -> Option<f64> {
    units
        .iter()
        .map(|u| AlphaSums::unit(u))
        .sum::<AlphaSums>()
        .alpha()
}

/// Krippendorff's alpha (interval metric) as sums, so that alpha over any union of groups of
/// units is alpha of the sum of their sums: one pass over the ratings, and a bootstrap
/// resample of groups costs one addition per group ([`cluster_bootstrap_sums`]).
///
/// The interval metric's disagreements are variances, so nothing sums over pairs: a unit's
/// observed disagreement, the sum over its ordered pairs of ratings of `(a − b)²`, is
/// `2 (m Σa² − (Σa)²)` for its `m` ratings, and the expected one over all `n` pairable values
/// is `2 (n Σx² − (Σx)²) / (n (n − 1))` (Krippendorff, "Computing Krippendorff's
/// Alpha-Reliability", 2011, with the interval metric `δ² = (a − b)²`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AlphaSums {
    /// Pairable values.
    pub values: f64,
    /// Their sum.
    pub sum: f64,
    /// The sum of their squares.
    pub sum_of_squares: f64,
    /// Over units, the within-unit disagreement divided by the unit's ratings less one.
    pub observed: f64,
}

impl AlphaSums {
    /// The sums of one unit's ratings; nothing for a unit with fewer than two.
    pub fn unit(ratings: &[f64]) -> Self {
        if ratings.len() < 2 {
            return Self::default();
        }
        let m = ratings.len() as f64;
        let sum: f64 = ratings.iter().sum();
        let sum_of_squares: f64 = ratings.iter().map(|x| x * x).sum();
        // Σ (x − mean)², from the mean rather than the raw sums, so equal ratings give 0.
        let mean = sum / m;
        let spread: f64 = ratings.iter().map(|x| (x - mean).powi(2)).sum();
        Self {
            values: m,
            sum,
            sum_of_squares,
            observed: 2.0 * m * spread / (m - 1.0),
        }
    }

    /// Alpha over the units summed; `None` with fewer than two values or no variation.
    pub fn alpha(&self) -> Option<f64> {
        let n = self.values;
        if n < 2.0 {
            return None;
        }
        let spread = (n * self.sum_of_squares - self.sum * self.sum).max(0.0);
        let expected = 2.0 * spread / (n * (n - 1.0));
        // Rounding leaves equal values a spread of a few ulps of the squares, not zero.
        let tolerance = 1e-12 * (self.sum_of_squares / n).max(1.0);
        (expected > tolerance).then(|| 1.0 - (self.observed / n) / expected)
    }
}

impl std::ops::AddAssign<&AlphaSums> for AlphaSums {
    fn add_assign(&mut self, other: &AlphaSums) {
        self.values += other.values;
        self.sum += other.sum;
        self.sum_of_squares += other.sum_of_squares;
        self.observed += other.observed;
    }
}

impl std::iter::Sum for AlphaSums {
    fn sum<I: Iterator<Item = AlphaSums>>(iter: I) -> Self {
        iter.fold(Self::default(), |mut total, sums| {
            total += &sums;
            total
        })
    }
}

/// Two raters' scores on an integer scale as counts of each pair of scores, so quadratic
/// weighted kappa over any union of groups is kappa of the sum of their counts.
#[derive(Debug, Clone, PartialEq)]
pub struct PairCounts {
    min: u8,
    max: u8,
    /// Row-major `levels × levels` counts: first rater's score, second rater's score.
    counts: Vec<f64>,
}

impl PairCounts {
    /// No pair yet, on the scale `min..=max`.
    pub fn new(min: u8, max: u8) -> Self {
        let levels = usize::from(max.saturating_sub(min)) + 1;
        Self {
            min,
            max,
            counts: vec![0.0; levels * levels],
        }
    }

    fn levels(&self) -> usize {
        usize::from(self.max.saturating_sub(self.min)) + 1
    }

    /// Counts a pair of scores, each clamped to the scale.
    pub fn add(&mut self, first: u8, second: u8) {
        let index = |x: u8| usize::from(x.clamp(self.min, self.max) - self.min);
        let cell = index(first) * self.levels() + index(second);
        self.counts[cell] += 1.0;
    }

    /// Cohen's kappa with quadratic weights; `None` without pairs, on a one-level scale, or
    /// when chance agreement is perfect.
    pub fn kappa(&self) -> Option<f64> {
        let k = self.levels();
        let n: f64 = self.counts.iter().sum();
        if n == 0.0 || k < 2 {
            return None;
        }
        let (mut row, mut col) = (vec![0.0; k], vec![0.0; k]);
        for (cell, count) in self.counts.iter().enumerate() {
            row[cell / k] += count / n;
            col[cell % k] += count / n;
        }
        let weight = |i: usize, j: usize| ((i as f64 - j as f64) / (k - 1) as f64).powi(2);
        let (mut disagreement, mut chance) = (0.0, 0.0);
        for (cell, count) in self.counts.iter().enumerate() {
            let (i, j) = (cell / k, cell % k);
            disagreement += weight(i, j) * count / n;
            chance += weight(i, j) * row[i] * col[j];
        }
        (chance > 0.0).then(|| 1.0 - disagreement / chance)
    }
}

impl std::ops::AddAssign<&PairCounts> for PairCounts {
    fn add_assign(&mut self, other: &PairCounts) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
    }
}

/// [`cluster_bootstrap`](super::cluster_bootstrap) of a statistic of sums: each cluster is
/// summarised once (its [`AlphaSums`], its [`PairCounts`]), and a resample adds the sums of
/// the clusters it draws, so a resample costs one addition per cluster whatever the number of
/// units. The clusters are drawn as `cluster_bootstrap` draws them.
pub fn cluster_bootstrap_sums<S: Clone + for<'a> std::ops::AddAssign<&'a S>>(
    clusters: &[S],
    zero: &S,
    statistic: impl Fn(&S) -> Option<f64>,
    resamples: usize,
    seed: u64,
) -> Option<(f64, f64)> {
    let n = clusters.len();
    super::resampled_interval(n, resamples, seed, |rng| {
        let mut total = zero.clone();
        for _ in 0..n {
            total += &clusters[rng.below(n)];
        }
        statistic(&total)
    })
}

/// Cohen's kappa with quadratic weights for two raters on an integer scale `min..=max`.
/// `None` for empty or mismatched input, or when chance agreement is perfect.
pub fn weighted_kappa_quadratic(a: &[u8], b: &[u8], min: u8, max: u8) -> Option<f64> {
    if a.is_empty() || a.len() != b.len() || min >= max {
        return None;
    }
    let mut counts = PairCounts::new(min, max);
    for (&x, &y) in a.iter().zip(b) {
        counts.add(x, y);
    }
    counts.kappa()
}
