//! Comparing two manifests: did the change between them (a new tutor prompt, a new model
//! version) make each shared model better or worse?
//!
//! Scenarios are the independent units, as in the leaderboard: each model's repetitions are
//! averaged per scenario, and the difference B − A is taken per scenario over the scenarios
//! both manifests scored for that model. Each model gets a Student-t interval of the mean
//! difference and a sign-flip p-value; the p-values are Holm-adjusted across models.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::entity::{RunStatus, RunSummary};
use crate::id::{ManifestId, ModelId, ScenarioId};
use crate::keys;
use crate::repository::{RepoError, Repository, RunFilter};
use crate::stats::Estimate;
use crate::stats::{self, PERMUTATION_RESAMPLES};

/// Each model's mean overall score per scenario, over its scored repetitions.
pub type ScenarioMeans = BTreeMap<ModelId, BTreeMap<ScenarioId, f64>>;

/// One model's change from manifest A to manifest B.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelDifference {
    /// The model.
    pub model: ModelId,
    /// Its mean over the shared scenarios in A.
    pub a_mean: f64,
    /// Its mean over the shared scenarios in B.
    pub b_mean: f64,
    /// The mean per-scenario difference B − A with its 95% interval; `n` is the number of
    /// shared scenarios.
    pub difference: Estimate,
    /// Two-sided sign-flip p-value of "no difference".
    pub p_value: f64,
    /// Holm-adjusted across the compared models.
    pub p_adjusted: f64,
}

/// Two manifests compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestComparison {
    /// The baseline.
    pub a: ManifestId,
    /// The candidate.
    pub b: ManifestId,
    /// Models scored in both on at least one shared scenario, by name.
    pub models: Vec<ModelDifference>,
    /// Models scored in only one of the two.
    pub unmatched: Vec<ModelId>,
    /// Every shared (model, scenario) with its change, largest change first.
    #[serde(default)]
    pub scenarios: Vec<ScenarioChange>,
}

/// One model's change on one scenario: the means of its repetitions in A and in B.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioChange {
    /// The model.
    pub model: ModelId,
    /// The scenario.
    pub scenario: ScenarioId,
    /// Mean overall score in A.
    pub a: f64,
    /// Mean overall score in B.
    pub b: f64,
}

impl ScenarioChange {
    /// B − A.
    pub fn change(&self) -> f64 {
        self.b - self.a
    }
}

/// Reads each model's per-scenario means of a manifest from its curated runs, a page at a
/// time.
pub async fn scenario_means(
    repository: &Repository,
    manifest: &ManifestId,
) -> Result<ScenarioMeans, RepoError> {
    let mut scores: BTreeMap<ModelId, BTreeMap<ScenarioId, Vec<f64>>> = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = repository
            .list_runs(&RunFilter::Manifest(*manifest), 500, cursor)
            .await?;
        for run in page.items.iter().filter(|r| r.status == RunStatus::Curated) {
            let summary = repository
                .get::<RunSummary>(&keys::run_summary(&run.id))
                .await?;
            if let Some(overall) = summary.and_then(|s| s.value.overall) {
                scores
                    .entry(run.tutor.model.clone())
                    .or_default()
                    .entry(run.scenario.clone())
                    .or_default()
                    .push(overall);
            }
        }
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    Ok(scores
        .into_iter()
        .map(|(model, by_scenario)| {
            let means = by_scenario
                .into_iter()
                .filter_map(|(scenario, xs)| stats::mean(&xs).map(|m| (scenario, m)))
                .collect();
            (model, means)
        })
        .collect())
}

/// Compares two sets of scenario means: per model, over the scenarios both scored.
pub fn compare_means(
    a: (&ManifestId, &ScenarioMeans),
    b: (&ManifestId, &ScenarioMeans),
) -> ManifestComparison {
    let (a_id, a_scores) = a;
    let (b_id, b_scores) = b;
    let mut models = Vec::new();
    let mut unmatched = Vec::new();
    let mut scenarios = Vec::new();
    for model in a_scores
        .keys()
        .chain(b_scores.keys().filter(|m| !a_scores.contains_key(*m)))
    {
        let (Some(sa), Some(sb)) = (a_scores.get(model), b_scores.get(model)) else {
            unmatched.push(model.clone());
            continue;
        };
        let shared: Vec<(f64, f64)> = sa
            .iter()
            .filter_map(|(scenario, x)| {
                let y = sb.get(scenario)?;
                scenarios.push(ScenarioChange {
                    model: model.clone(),
                    scenario: scenario.clone(),
                    a: *x,
                    b: *y,
                });
                Some((*x, *y))
            })
            .collect();
        if shared.is_empty() {
            unmatched.push(model.clone());
            continue;
        }
        let diffs: Vec<f64> = shared.iter().map(|(x, y)| y - x).collect();
        let seed = seed(a_id, b_id, model);
        let Some(difference) = stats::t_interval_mean(&diffs) else {
            continue;
        };
        let p_value = stats::sign_flip_p_value(&diffs, PERMUTATION_RESAMPLES, seed);
        let firsts: Vec<f64> = shared.iter().map(|(x, _)| *x).collect();
        let seconds: Vec<f64> = shared.iter().map(|(_, y)| *y).collect();
        models.push(ModelDifference {
            model: model.clone(),
            a_mean: stats::mean(&firsts).unwrap_or_default(),
            b_mean: stats::mean(&seconds).unwrap_or_default(),
            difference,
            p_value,
            p_adjusted: p_value,
        });
    }
    let adjusted = stats::holm(&models.iter().map(|m| m.p_value).collect::<Vec<_>>());
    for (model, p) in models.iter_mut().zip(adjusted) {
        model.p_adjusted = p;
    }
    // Largest change first; ties in a stable order.
    scenarios.sort_by(|x, y| {
        y.change()
            .abs()
            .total_cmp(&x.change().abs())
            .then_with(|| (&x.model, &x.scenario).cmp(&(&y.model, &y.scenario)))
    });
    ManifestComparison {
        a: *a_id,
        b: *b_id,
        models,
        unmatched,
        scenarios,
    }
}

/// Reads both manifests' scores and compares them.
pub async fn compare_manifests(
    repository: &Repository,
    a: &ManifestId,
    b: &ManifestId,
) -> Result<ManifestComparison, RepoError> {
    let a_scores = scenario_means(repository, a).await?;
    let b_scores = scenario_means(repository, b).await?;
    Ok(compare_means((a, &a_scores), (b, &b_scores)))
}

/// Reproducible resampling: the same two manifests always give the same intervals.
fn seed(a: &ManifestId, b: &ManifestId, model: &ModelId) -> u64 {
    stats::seed_of(&format!("compare/{a}/{b}/{model}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(id: &str) -> ModelId {
        ModelId::new(id).expect("valid id")
    }

    fn scenario(i: usize) -> ScenarioId {
        ScenarioId::new(format!("s{i}")).expect("valid id")
    }

    fn ids() -> (ManifestId, ManifestId) {
        (
            "01J0000000000000000000000A".parse().expect("id"),
            "01J0000000000000000000000B".parse().expect("id"),
        )
    }

    #[test]
    fn a_known_improvement_is_measured_on_shared_scenarios_only() {
        let (a_id, b_id) = ids();
        let base = [3.0, 3.5, 2.5, 4.0, 3.0, 2.0, 3.5, 4.5];
        let mut a = ScenarioMeans::new();
        let mut b = ScenarioMeans::new();
        // The tutor gains exactly 0.5 on each of the eight scenarios B shares with A; a ninth
        // scenario only in B must not count.
        a.insert(
            model("tutor"),
            base.iter()
                .enumerate()
                .map(|(i, x)| (scenario(i), *x))
                .collect(),
        );
        let mut improved: BTreeMap<_, _> = base
            .iter()
            .enumerate()
            .map(|(i, x)| (scenario(i), x + 0.5))
            .collect();
        improved.insert(scenario(99), 1.0);
        b.insert(model("tutor"), improved);
        // The same on both sides: no difference.
        let same: BTreeMap<_, _> = base
            .iter()
            .enumerate()
            .map(|(i, x)| (scenario(i), *x))
            .collect();
        a.insert(model("steady"), same.clone());
        b.insert(model("steady"), same);
        // Only in A.
        a.insert(model("retired"), BTreeMap::from([(scenario(0), 3.0)]));

        let comparison = compare_means((&a_id, &a), (&b_id, &b));
        assert_eq!(comparison.unmatched, vec![model("retired")]);
        let tutor = comparison
            .models
            .iter()
            .find(|m| m.model == model("tutor"))
            .expect("tutor compared");
        assert_eq!(tutor.difference.n, 8);
        assert!((tutor.difference.mean - 0.5).abs() < 1e-12);
        assert_eq!(tutor.difference.interval(), Some((0.5, 0.5)));
        assert!((tutor.b_mean - tutor.a_mean - 0.5).abs() < 1e-12);
        // Exact sign-flip test: only the all-positive and all-negative assignments are as
        // extreme, 2 of 2^8.
        assert!((tutor.p_value - 2.0 / 256.0).abs() < 1e-12);
        let steady = comparison
            .models
            .iter()
            .find(|m| m.model == model("steady"))
            .expect("steady compared");
        assert_eq!(steady.difference.mean, 0.0);
        assert_eq!(steady.p_value, 1.0);
        // Holm over two models: the smaller p doubles.
        assert!((tutor.p_adjusted - 4.0 / 256.0).abs() < 1e-12);
    }
}
