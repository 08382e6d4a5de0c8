//! From run summaries to a leaderboard a user can trust: intervals over scenarios that hold on
//! the rubric's bounded scale, power, paired comparisons with Holm's correction, tied rank groups, and judge agreement.

use std::collections::{BTreeMap, BTreeSet};

use super::telling::{self, RunTelling};
use crate::clock::Timestamp;
use crate::entity::Violation;
use crate::entity::{
    JudgeAgreement, Manifest, ManifestSummary, ModelSummary, PairwiseComparison, RoleUsage, Rubric,
    RunStatus, RunSummary, TurnTelling, Vector, VectorSummary,
};
use crate::id::{ModelId, RunId, ScenarioId};
use crate::llm::Role;
use crate::repository::RunRecord;
use crate::stats::{self, Estimate, PERMUTATION_RESAMPLES};

/// The significance level for separating rank groups (after Holm's adjustment).
pub const ALPHA: f64 = 0.05;

/// A seed derived from the manifest and a label, so resampling is reproducible.
fn seed(manifest: &Manifest, label: &str) -> u64 {
    stats::seed_of(&format!("{}/{label}", manifest.hash))
}

/// Per-scenario means of one model: scenario → (vector, overall, per-dimension).
struct ScenarioScores {
    vector: Vector,
    overall: f64,
    dimensions: BTreeMap<String, f64>,
    /// The runs' overall scores' squared deviations from `overall`, summed, and the runs.
    spread: (f64, usize),
}

/// Averages each model's repetitions per scenario, since scenarios (not turns or runs) are
/// the independent units.
/// What the leaderboard needs of one run, and no more: its coordinates, status and summary,
/// and its judges' ratings for the agreement. Small, so a manifest of any size is summarised
/// one run record at a time without holding turns and judgments.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDigest {
    /// The tutor.
    pub tutor: ModelId,
    /// The scenario.
    pub scenario: ScenarioId,
    /// The repetition.
    pub repetition: u32,
    /// The run's status.
    pub status: RunStatus,
    /// What the leaderboard reads of its summary, once curated.
    pub summary: Option<SummaryDigest>,
    /// Per dimension, one unit per judged turn that at least two judges scored.
    pub agreement_units: BTreeMap<String, Vec<Vec<f64>>>,
}

impl RunDigest {
    /// The digest of a run from its summary alone: the judges' ratings it records
    /// ([`RunSummary::judge_ratings`]) give the agreement units, so the judgments need not be
    /// read.
    pub fn of_summary(run: &crate::entity::Run, mut summary: Option<RunSummary>) -> Self {
        let agreement_units = summary
            .as_mut()
            .and_then(|s| s.judge_ratings.take())
            .unwrap_or_default()
            .into_iter()
            .map(|(dim, turns)| {
                let units = turns
                    .into_iter()
                    .map(|scores| scores.into_iter().map(f64::from).collect())
                    .collect();
                (dim, units)
            })
            .collect();
        Self {
            tutor: run.tutor.model.clone(),
            scenario: run.scenario.clone(),
            repetition: run.repetition,
            status: run.status,
            summary: summary.map(SummaryDigest::from),
            agreement_units,
        }
    }

    /// The digest of a run record.
    pub fn of(record: &RunRecord, rubric: &Rubric) -> Self {
        let run = &record.run.value;
        let turns: BTreeSet<u32> = record.judgments.iter().map(|j| j.turn).collect();
        let mut agreement_units: BTreeMap<String, Vec<Vec<f64>>> = BTreeMap::new();
        for dim in &rubric.dimensions {
            for turn in &turns {
                let ratings: Vec<f64> = record
                    .judgments
                    .iter()
                    .filter(|j| j.turn == *turn)
                    .filter_map(|j| j.verdict())
                    .filter_map(|v| v.scores.get(&dim.name))
                    .map(|s| f64::from(*s))
                    .collect();
                if ratings.len() >= 2 {
                    agreement_units
                        .entry(dim.name.clone())
                        .or_default()
                        .push(ratings);
                }
            }
        }
        Self {
            tutor: run.tutor.model.clone(),
            scenario: run.scenario.clone(),
            repetition: run.repetition,
            status: run.status,
            summary: record.summary.as_ref().map(SummaryDigest::from),
            agreement_units,
        }
    }
}

/// What the leaderboard reads of a run's summary ([`RunSummary`]), and no more: about a
/// quarter of its size in memory, so that the digests of a manifest of many thousand runs
/// stay small. Maps are sorted vectors of pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryDigest {
    /// The run.
    pub run: RunId,
    /// The tutor.
    pub tutor: ModelId,
    /// The scenario.
    pub scenario: ScenarioId,
    /// The scenario's vector.
    pub vector: Vector,
    /// Weighted overall score.
    pub overall: Option<f64>,
    /// Mean score per dimension, by name.
    pub dimension_means: Vec<(String, f64)>,
    /// Share of scored turns that passed.
    pub compliance: Option<f64>,
    /// The first turn that leaked the answer.
    pub answer_leak_turn: Option<u32>,
    /// The first turn whose student reply states a goal.
    pub goal_reached_turn: Option<u32>,
    /// The first turn whose tutor message tells the answer, by the verbatim detector.
    pub goal_told_turn: Option<u32>,
    /// Per turn, what the two telling detectors said.
    pub telling: Vec<TurnTelling>,
    /// Violations observed, by kind.
    pub violations: Vec<(Violation, u32)>,
    /// Turns with at least one scored judgment.
    pub scored_turns: u32,
    /// Judgments without scores.
    pub unscored_judgments: u32,
    /// Calls, tokens and cost per role.
    pub usage: Vec<(Role, RoleUsage)>,
    /// The tutor's call latencies.
    pub tutor_latencies_ms: Vec<u64>,
}

impl From<RunSummary> for SummaryDigest {
    fn from(summary: RunSummary) -> Self {
        let mut tutor_latencies_ms = summary.tutor_latencies_ms;
        tutor_latencies_ms.shrink_to_fit();
        Self {
            run: summary.run,
            tutor: summary.tutor,
            scenario: summary.scenario,
            vector: summary.vector,
            overall: summary.overall,
            dimension_means: summary.dimension_means.into_iter().collect(),
            compliance: summary.compliance,
            answer_leak_turn: summary.answer_leak_turn,
            goal_reached_turn: summary.goal_reached_turn,
            goal_told_turn: summary.goal_told_turn,
            telling: summary.telling,
            violations: summary.violations.into_iter().collect(),
            scored_turns: summary.scored_turns,
            unscored_judgments: summary.unscored_judgments,
            usage: summary.usage.into_iter().collect(),
            tutor_latencies_ms,
        }
    }
}

impl From<&RunSummary> for SummaryDigest {
    fn from(summary: &RunSummary) -> Self {
        Self::from(summary.clone())
    }
}

/// The share of `summaries` for which `holds` does; `None` without summaries.
fn share(summaries: &[&SummaryDigest], holds: impl Fn(&SummaryDigest) -> bool) -> Option<f64> {
    (!summaries.is_empty())
        .then(|| summaries.iter().filter(|s| holds(s)).count() as f64 / summaries.len() as f64)
}

/// How many of `records` are in `status`.
fn count_status<'a>(records: impl Iterator<Item = &'a RunDigest>, status: RunStatus) -> u32 {
    u32::try_from(records.filter(|r| r.status == status).count()).unwrap_or(u32::MAX)
}

fn per_scenario(records: &[RunDigest]) -> BTreeMap<ModelId, BTreeMap<ScenarioId, ScenarioScores>> {
    let mut grouped: BTreeMap<(ModelId, ScenarioId), Vec<&SummaryDigest>> = BTreeMap::new();
    for record in records {
        if let Some(summary) = &record.summary
            && summary.overall.is_some()
        {
            grouped
                .entry((summary.tutor.clone(), summary.scenario.clone()))
                .or_default()
                .push(summary);
        }
    }
    let mut out: BTreeMap<ModelId, BTreeMap<ScenarioId, ScenarioScores>> = BTreeMap::new();
    for ((model, scenario), summaries) in grouped {
        let overall: Vec<f64> = summaries.iter().filter_map(|s| s.overall).collect();
        let mut dimensions: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for s in &summaries {
            for (name, value) in &s.dimension_means {
                dimensions.entry(name.clone()).or_default().push(*value);
            }
        }
        let mean = stats::mean(&overall).unwrap_or_default();
        let scores = ScenarioScores {
            vector: summaries[0].vector,
            overall: mean,
            spread: (
                overall.iter().map(|x| (x - mean).powi(2)).sum(),
                overall.len(),
            ),
            dimensions: dimensions
                .into_iter()
                .filter_map(|(k, v)| stats::mean(&v).map(|m| (k, m)))
                .collect(),
        };
        out.entry(model).or_default().insert(scenario, scores);
    }
    out
}

/// Computes a manifest's summary from every run record.
pub fn summarize_manifest(
    manifest: &Manifest,
    rubric: &Rubric,
    records: &[RunRecord],
    now: Timestamp,
) -> ManifestSummary {
    let digests = records.iter().map(|r| RunDigest::of(r, rubric)).collect();
    summarize_digests(manifest, rubric, digests, now)
}

/// Computes a manifest's summary from the digest of every run.
pub fn summarize_digests(
    manifest: &Manifest,
    rubric: &Rubric,
    mut records: Vec<RunDigest>,
    now: Timestamp,
) -> ManifestSummary {
    // Sums of floats depend on their order; fix it by the runs' coordinates (not their ids,
    // which differ between two runs of the same manifest) so the same data always gives the
    // same numbers.
    records.sort_by(|a, b| {
        (&a.tutor, &a.scenario, a.repetition).cmp(&(&b.tutor, &b.scenario, b.repetition))
    });
    let records = records.as_slice();
    let scores = per_scenario(records);
    let tutors: Vec<ModelId> = manifest
        .request
        .tutors
        .iter()
        .map(|t| t.model.clone())
        .collect();
    let empty = BTreeMap::new();
    // The scenarios every model with a score scored. Ranks and profiles use only these, so a
    // model whose runs failed on the hard scenarios is not averaged over the easy ones only.
    let common: BTreeSet<&ScenarioId> = tutors
        .iter()
        .filter_map(|m| scores.get(m).filter(|s| !s.is_empty()))
        .map(|s| s.keys().collect::<BTreeSet<_>>())
        .reduce(|a, b| a.intersection(&b).copied().collect())
        .unwrap_or_default();
    let planned: BTreeSet<&ScenarioId> = manifest.request.scenarios.iter().collect();
    // The scale an overall score lies on: from the lowest level of any dimension to the
    // highest (one scale, 1 to 5, in the default rubric).
    let scale = rubric
        .dimensions
        .iter()
        .map(|d| d.scale.min)
        .min()
        .unwrap_or(1)
        ..=rubric
            .dimensions
            .iter()
            .map(|d| d.scale.max)
            .max()
            .unwrap_or(5);
    let told: Vec<RunTelling<'_>> = records
        .iter()
        .filter_map(|r| r.summary.as_ref())
        .map(|s| RunTelling {
            run: s.run,
            tutor: &s.tutor,
            scenario: &s.scenario,
            reached: s.goal_reached_turn,
            judged_told: s.answer_leak_turn,
            verbatim_told: s.goal_told_turn,
            turns: &s.telling,
        })
        .collect();
    let detector = telling::detector(&told);

    let mut rows: Vec<ModelSummary> = tutors
        .iter()
        .map(|model| {
            let mine = scores.get(model).unwrap_or(&empty);
            let basis: Vec<&ScenarioScores> = mine
                .iter()
                .filter(|(scenario, _)| common.contains(scenario))
                .map(|(_, scores)| scores)
                .collect();
            let overall: Vec<f64> = basis.iter().map(|s| s.overall).collect();
            // Means on the rubric's scale: the level-prior interval, seeded per model and
            // figure so the same scores always give the same interval.
            let interval = |values: &[f64], scale: std::ops::RangeInclusive<u8>, what: &str| {
                stats::scale_interval(values, scale, seed(manifest, &format!("{model}/{what}")))
            };
            let mut dimensions = BTreeMap::new();
            for dim in &rubric.dimensions {
                let values: Vec<f64> = basis
                    .iter()
                    .filter_map(|s| s.dimensions.get(&dim.name))
                    .copied()
                    .collect();
                if let Some(estimate) = interval(&values, dim.scale.min..=dim.scale.max, &dim.name)
                {
                    dimensions.insert(dim.name.clone(), estimate);
                }
            }
            let mut by_vector = BTreeMap::new();
            for vector in Vector::ALL {
                let values: Vec<f64> = basis
                    .iter()
                    .filter(|s| s.vector == vector)
                    .map(|s| s.overall)
                    .collect();
                if let Some(estimate) = interval(&values, scale.clone(), vector.as_str()) {
                    by_vector.insert(vector, estimate);
                }
            }
            let own: Vec<&RunDigest> = records.iter().filter(|r| &r.tutor == model).collect();
            let stopped: BTreeSet<&ScenarioId> = own
                .iter()
                .filter(|r| matches!(r.status, RunStatus::Failed | RunStatus::Skipped))
                .map(|r| &r.scenario)
                .collect();
            let (failed_scenarios, unscored_scenarios): (Vec<ScenarioId>, Vec<ScenarioId>) =
                planned
                    .iter()
                    .filter(|s| !mine.contains_key(**s))
                    .map(|s| (*s).clone())
                    .partition(|s| stopped.contains(s));
            let summaries: Vec<_> = own.iter().filter_map(|r| r.summary.as_ref()).collect();
            let scored: u32 = summaries.iter().map(|s| s.scored_turns).sum();
            let passing: f64 = summaries
                .iter()
                .map(|s| s.compliance.unwrap_or(0.0) * f64::from(s.scored_turns))
                .sum();
            let mut usage: BTreeMap<Role, RoleUsage> = BTreeMap::new();
            let mut violations = BTreeMap::new();
            for s in &summaries {
                for (role, u) in &s.usage {
                    let entry = usage.entry(*role).or_default();
                    entry.calls += u.calls;
                    entry.usage = entry.usage + u.usage;
                    entry.cost_usd += u.cost_usd;
                }
                for (v, n) in &s.violations {
                    *violations.entry(*v).or_insert(0) += n;
                }
            }
            let own_told: Vec<&RunTelling<'_>> = told.iter().filter(|t| t.tutor == model).collect();
            let latencies: Vec<f64> = summaries
                .iter()
                .flat_map(|s| s.tutor_latencies_ms.iter().map(|l| *l as f64))
                .collect();
            ModelSummary {
                manifest: manifest.id,
                model: model.clone(),
                overall: interval(&overall, scale.clone(), "overall"),
                dimensions,
                by_vector,
                rank_group: None,
                letters: String::new(),
                scenarios_planned: u32::try_from(planned.len()).unwrap_or(u32::MAX),
                scenarios_scored: u32::try_from(mine.len()).unwrap_or(u32::MAX),
                failed_scenarios,
                unscored_scenarios,
                runs: u32::try_from(summaries.len()).unwrap_or(u32::MAX),
                failed_runs: count_status(own.iter().copied(), RunStatus::Failed),
                skipped_runs: count_status(own.iter().copied(), RunStatus::Skipped),
                compliance: (scored > 0).then(|| passing / f64::from(scored)),
                unscored_judgments: summaries.iter().map(|s| s.unscored_judgments).sum(),
                runs_with_answer_leak: u32::try_from(
                    summaries
                        .iter()
                        .filter(|s| s.answer_leak_turn.is_some())
                        .count(),
                )
                .unwrap_or(u32::MAX),
                success_rate: share(&summaries, |s| s.goal_reached_turn.is_some()),
                telling_rate: (!own_told.is_empty()).then(|| {
                    own_told.iter().filter(|t| t.told_first(detector)).count() as f64
                        / own_told.len() as f64
                }),
                telling_agreement: telling::agreement(
                    own_told.iter().copied(),
                    seed(manifest, &format!("telling/{model}")),
                ),
                violations,
                cost_usd: usage.values().map(|u| u.cost_usd).sum(),
                usage,
                latency_p50_ms: stats::percentile(&latencies, 0.5),
                latency_p95_ms: stats::percentile(&latencies, 0.95),
            }
        })
        .collect();

    // Best first; on equal scores, the model that scored more of the plan; models without a
    // score last, unranked, in manifest order.
    rows.sort_by(|a, b| {
        let key = |r: &ModelSummary| r.overall.map_or(f64::NEG_INFINITY, |e| e.mean);
        key(b)
            .total_cmp(&key(a))
            .then(b.scenarios_scored.cmp(&a.scenarios_scored))
    });

    let ranked = rows.iter().take_while(|r| r.overall.is_some()).count();
    let comparisons = compare(manifest, &rows[..ranked], &scores);
    assign_rank_groups(&mut rows[..ranked], &comparisons);
    let scenarios_needed = scenarios_needed(&comparisons);
    let design_variance = design_variance(manifest, &rows[..ranked], &scores);
    let power = stats::Power::of(
        tutors.len(),
        u32::try_from(planned.len()).unwrap_or(u32::MAX),
        manifest.request.repetitions,
        ALPHA,
        design_variance
            .as_ref()
            .unwrap_or(&stats::DesignVariance::DEFAULT),
    );

    let vectors = Vector::ALL
        .into_iter()
        .filter_map(|vector| {
            let models: BTreeMap<ModelId, Estimate> = rows
                .iter()
                .filter_map(|r| r.by_vector.get(&vector).map(|e| (r.model.clone(), *e)))
                .collect();
            (!models.is_empty()).then_some(VectorSummary {
                manifest: manifest.id,
                vector,
                models,
            })
        })
        .collect();

    ManifestSummary {
        manifest: manifest.id,
        label: manifest.request.label.clone(),
        rubric: rubric.id.clone(),
        dimensions: rubric.dimensions.iter().map(|d| d.name.clone()).collect(),
        pass_threshold: rubric.pass_threshold,
        runs: u32::try_from(records.len()).unwrap_or(u32::MAX),
        failed_runs: count_status(records.iter(), RunStatus::Failed),
        skipped_runs: count_status(records.iter(), RunStatus::Skipped),
        rejudge_of: manifest.request.rejudge_of,
        scenarios_needed,
        self_judging: manifest
            .request
            .judges
            .iter()
            .filter(|j| manifest.request.tutors.iter().any(|t| t.model == j.model))
            .map(|j| j.model.clone())
            .collect(),
        stopped_by_budget: records.iter().any(|r| r.status == RunStatus::Skipped),
        unscored_judgments: rows.iter().map(|r| r.unscored_judgments).sum(),
        cost_usd: rows.iter().map(|r| r.cost_usd).sum(),
        judge_agreement: judge_agreement(manifest, rubric, records, manifest.request.judges.len()),
        telling_detector: detector,
        telling_agreement: telling::agreement(&told, seed(manifest, "telling")),
        telling_disagreements: telling::disagreements(&told),
        design_variance,
        power: Some(power),
        leaderboard: rows,
        vectors,
        comparisons,
        computed_at: now,
    }
}

/// How this benchmark's scores varied, for planning the next: the spread of the per-scenario
/// difference between two ranked models, pooled over every pair (each weighted by its
/// degrees of freedom), and the repetition noise pooled over every model's scenarios. `None`
/// when no pair shares two scenarios.
fn design_variance(
    manifest: &Manifest,
    rows: &[ModelSummary],
    scores: &BTreeMap<ModelId, BTreeMap<ScenarioId, ScenarioScores>>,
) -> Option<stats::DesignVariance> {
    let (mut squares, mut freedom, mut scenarios) = (0.0, 0usize, 0usize);
    for (i, a) in rows.iter().enumerate() {
        for b in &rows[i + 1..] {
            let (Some(sa), Some(sb)) = (scores.get(&a.model), scores.get(&b.model)) else {
                continue;
            };
            let diffs: Vec<f64> = sa
                .iter()
                .filter_map(|(s, x)| sb.get(s).map(|y| x.overall - y.overall))
                .collect();
            if let Some(mean) = stats::mean(&diffs).filter(|_| diffs.len() >= 2) {
                squares += diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>();
                freedom += diffs.len() - 1;
                scenarios = scenarios.max(diffs.len());
            }
        }
    }
    if freedom == 0 {
        return None;
    }
    let (noise, noise_freedom) = scores
        .values()
        .flat_map(BTreeMap::values)
        .filter(|s| s.spread.1 >= 2)
        .fold((0.0, 0usize), |(sum, df), s| {
            (sum + s.spread.0, df + s.spread.1 - 1)
        });
    Some(stats::DesignVariance {
        difference_sd: (squares / freedom as f64).sqrt(),
        repetition_sd: (noise_freedom > 0).then(|| (noise / noise_freedom as f64).sqrt()),
        repetitions: manifest.request.repetitions,
        scenarios: u32::try_from(scenarios).unwrap_or(u32::MAX),
    })
}

/// Paired comparisons of every pair of models on the scenarios both have scores for:
/// a t interval of the mean difference and a sign-flip p-value, Holm-adjusted together.
fn compare(
    manifest: &Manifest,
    rows: &[ModelSummary],
    scores: &BTreeMap<ModelId, BTreeMap<ScenarioId, ScenarioScores>>,
) -> Vec<PairwiseComparison> {
    let empty = BTreeMap::new();
    let mut comparisons = Vec::new();
    for (i, a) in rows.iter().enumerate() {
        for b in &rows[i + 1..] {
            let sa = scores.get(&a.model).unwrap_or(&empty);
            let sb = scores.get(&b.model).unwrap_or(&empty);
            let shared: BTreeSet<&ScenarioId> = sa.keys().filter(|k| sb.contains_key(*k)).collect();
            let diffs: Vec<f64> = shared
                .iter()
                .map(|s| sa[*s].overall - sb[*s].overall)
                .collect();
            let label = format!("{}-vs-{}", a.model, b.model);
            let difference = stats::t_interval_mean(&diffs).unwrap_or(Estimate {
                mean: 0.0,
                ci_low: None,
                ci_high: None,
                n: 0,
                caution: Some(stats::Caution::FewScenarios),
            });
            let p_value =
                stats::sign_flip_p_value(&diffs, PERMUTATION_RESAMPLES, seed(manifest, &label));
            comparisons.push(PairwiseComparison {
                a: a.model.clone(),
                b: b.model.clone(),
                difference,
                p_value,
                p_adjusted: p_value,
            });
        }
    }
    let adjusted = stats::holm(&comparisons.iter().map(|c| c.p_value).collect::<Vec<_>>());
    for (comparison, p) in comparisons.iter_mut().zip(adjusted) {
        comparison.p_adjusted = p;
    }
    comparisons
}

/// Tie groups as a compact letter display: two models share a letter exactly when no
/// comparison separates them (Holm-adjusted p < [`ALPHA`] on at least one shared scenario).
/// Built by insertion and absorption (Piepho 2004): start from one group of every model, split
/// each group that holds a separated pair into the group without one and the group without
/// the other, and drop groups inside other groups. Letters go to groups in the order of their
/// best member, so `a` holds the leader; a model's rank group is its first letter's place.
fn assign_rank_groups(rows: &mut [ModelSummary], comparisons: &[PairwiseComparison]) {
    let index: BTreeMap<&ModelId, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (&r.model, i))
        .collect();
    let separated: Vec<(usize, usize)> = comparisons
        .iter()
        .filter(|c| c.p_adjusted < ALPHA && c.difference.n > 0)
        .filter_map(|c| Some((*index.get(&c.a)?, *index.get(&c.b)?)))
        .collect();
    let groups = letter_groups(rows.len(), &separated);
    for (i, row) in rows.iter_mut().enumerate() {
        let mine: Vec<usize> = (0..groups.len())
            .filter(|g| groups[*g].contains(&i))
            .collect();
        row.rank_group = mine
            .first()
            .map(|g| u32::try_from(g + 1).unwrap_or(u32::MAX));
        row.letters = mine.iter().map(|g| letter(*g)).collect();
    }
}

/// The tie groups of models `0..n` (in leaderboard order) given the separated pairs, each a
/// set of model indices, ordered by their best member.
fn letter_groups(n: usize, separated: &[(usize, usize)]) -> Vec<BTreeSet<usize>> {
    if n == 0 {
        return Vec::new();
    }
    let mut groups: Vec<BTreeSet<usize>> = vec![(0..n).collect()];
    for &(a, b) in separated {
        let mut next = Vec::with_capacity(groups.len() + 1);
        for group in groups {
            if group.contains(&a) && group.contains(&b) {
                let mut without_a = group.clone();
                without_a.remove(&a);
                let mut without_b = group;
                without_b.remove(&b);
                next.push(without_a);
                next.push(without_b);
            } else {
                next.push(group);
            }
        }
        // Absorb: a group inside another says nothing more.
        let mut kept: Vec<BTreeSet<usize>> = Vec::with_capacity(next.len());
        for (i, group) in next.iter().enumerate() {
            let inside_another = next
                .iter()
                .enumerate()
                .any(|(j, other)| j != i && group.is_subset(other) && (group != other || j < i));
            if !group.is_empty() && !inside_another {
                kept.push(group.clone());
            }
        }
        groups = kept;
    }
    groups.sort_by_key(|g| g.iter().copied().collect::<Vec<_>>());
    groups
}

/// The letter of group `g`: `a` to `z`, then `aa`, `ab`, … (never reached in practice).
fn letter(g: usize) -> String {
    const LETTERS: &[u8; 26] = b"abcdefghijklmnopqrstuvwxyz";
    if g < 26 {
        char::from(LETTERS[g]).to_string()
    } else {
        format!("{}{}", letter(g / 26 - 1), letter(g % 26))
    }
}

/// When no comparison can reach significance, because even the most lopsided result on the
/// scenarios a pair shares would not survive Holm's correction: the number of shared scenarios
/// that would make it possible. `None` when a separation is possible (or nothing is compared).
fn scenarios_needed(comparisons: &[PairwiseComparison]) -> Option<u32> {
    let pairs = comparisons.len() as f64;
    let shared = comparisons.iter().map(|c| c.difference.n).max()?;
    let attainable = |n: u32| pairs * stats::smallest_sign_flip_p(n as usize);
    if attainable(shared) < ALPHA {
        return None;
    }
    (shared + 1..=u32::try_from(stats::EXACT_PERMUTATION_MAX_N + 1).unwrap_or(u32::MAX))
        .find(|n| attainable(*n) < ALPHA)
}

/// Krippendorff's alpha (interval) per dimension over turns scored by at least two judges, and
/// with exactly two judges their quadratic-weighted kappa; each with a 95% interval from
/// resampling scenarios.
fn judge_agreement(
    manifest: &Manifest,
    rubric: &Rubric,
    records: &[RunDigest],
    judges: usize,
) -> BTreeMap<String, JudgeAgreement> {
    if judges < 2 {
        return BTreeMap::new();
    }
    rubric
        .dimensions
        .iter()
        .map(|dim| {
            // Per scenario, the sums alpha and kappa are computed from: one pass over the
            // units, and each resample adds one summary per scenario.
            let score = |x: f64| (0.0..=255.0).contains(&x).then(|| x.round() as u8);
            let no_pairs = stats::PairCounts::new(dim.scale.min, dim.scale.max);
            let mut by_scenario: BTreeMap<&ScenarioId, (stats::AlphaSums, stats::PairCounts)> =
                BTreeMap::new();
            let mut units = 0usize;
            for record in records {
                let Some(ratings) = record.agreement_units.get(&dim.name) else {
                    continue;
                };
                let (sums, pairs) = by_scenario
                    .entry(&record.scenario)
                    .or_insert_with(|| (stats::AlphaSums::default(), no_pairs.clone()));
                for unit in ratings {
                    units += 1;
                    *sums += &stats::AlphaSums::unit(unit);
                    // Ratings come in the judges' order, so with two judges each unit is a pair.
                    if let [first, second] = unit.as_slice()
                        && let (Some(first), Some(second)) = (score(*first), score(*second))
                    {
                        pairs.add(first, second);
                    }
                }
            }
            let (alphas, pairs): (Vec<_>, Vec<_>) = by_scenario.into_values().unzip();
            let all_alpha: stats::AlphaSums = alphas.iter().copied().sum();
            let mut all_pairs = no_pairs.clone();
            pairs.iter().for_each(|p| all_pairs += p);
            let seed = |what: &str| seed(manifest, &format!("agreement/{}/{what}", dim.name));
            let two = judges == 2;
            let agreement = JudgeAgreement {
                krippendorff_alpha: all_alpha.alpha(),
                alpha_ci: stats::cluster_bootstrap_sums(
                    &alphas,
                    &stats::AlphaSums::default(),
                    stats::AlphaSums::alpha,
                    AGREEMENT_RESAMPLES,
                    seed("alpha"),
                ),
                weighted_kappa: if two { all_pairs.kappa() } else { None },
                kappa_ci: if two {
                    stats::cluster_bootstrap_sums(
                        &pairs,
                        &no_pairs,
                        stats::PairCounts::kappa,
                        AGREEMENT_RESAMPLES,
                        seed("kappa"),
                    )
                } else {
                    None
                },
                units: u32::try_from(units).unwrap_or(u32::MAX),
            };
            (dim.name.clone(), agreement)
        })
        .collect()
}

/// Resamples of scenarios behind each agreement interval.
const AGREEMENT_RESAMPLES: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    fn display(n: usize, separated: &[(usize, usize)]) -> Vec<String> {
        let groups = letter_groups(n, separated);
        (0..n)
            .map(|i| {
                (0..groups.len())
                    .filter(|g| groups[*g].contains(&i))
                    .map(letter)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn letters_share_exactly_the_unseparated_pairs() {
        // Nothing separated: one group.
        assert_eq!(display(3, &[]), ["a", "a", "a"]);
        // Everything separated: one group each.
        assert_eq!(display(3, &[(0, 1), (0, 2), (1, 2)]), ["a", "b", "c"]);
        // Only the ends separated: the middle model ties with both.
        assert_eq!(display(3, &[(0, 2)]), ["a", "ab", "b"]);
        // The second separated from both neighbours, the first and third tied: a leader-based
        // grouping would put the third in a group of its own.
        assert_eq!(display(3, &[(0, 1), (1, 2)]), ["a", "b", "a"]);
        // Four models, a chain of ties: 0–1, 1–2, 2–3 unseparated, everything else separated.
        assert_eq!(
            display(4, &[(0, 2), (0, 3), (1, 3)]),
            ["a", "ab", "bc", "c"]
        );
    }

    #[test]
    fn every_pair_shares_a_letter_exactly_when_not_separated() {
        let n = 6;
        // Every subset of the 15 pairs of 6 models would be slow; take a fixed spread of them.
        let pairs: Vec<(usize, usize)> = (0..n)
            .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
            .collect();
        for mask in (0u32..1 << pairs.len()).step_by(97) {
            let separated: Vec<(usize, usize)> = pairs
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, p)| *p)
                .collect();
            let letters = display(n, &separated);
            for &(a, b) in &pairs {
                let share = letters[a].chars().any(|c| letters[b].contains(c));
                assert_eq!(
                    share,
                    !separated.contains(&(a, b)),
                    "models {a} and {b}, separated {separated:?}: {letters:?}"
                );
            }
            assert!(letters.iter().all(|l| !l.is_empty()));
        }
    }
}
