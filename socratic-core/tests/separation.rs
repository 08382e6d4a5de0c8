//! What the scenario bank buys: six simulated tutors whose true scores differ by a large
//! amount are told apart on the full bank, equal tutors stay tied, and the eight-scenario
//! starter set cannot separate six tutors at all (and says how many scenarios it would need).

use std::collections::BTreeMap;

use socratic_core::canonical::content_hash;
use socratic_core::clock::Timestamp;
use socratic_core::defaults::{Defaults, ScenarioSet};
use socratic_core::entity::{
    Manifest, ManifestRequest, ManifestSummary, ModelConfig, RunStatus, RunSummary,
};
use socratic_core::id::{ManifestId, ModelId, RunId};
use socratic_core::pipeline::{RunDigest, summarize_digests};
use socratic_core::stats::SplitMix64;

/// True mean scores of the six tutors: pairs of equal tutors, 0.8 apart on the 1–5 scale.
const TRUE_MEANS: [f64; 6] = [4.0, 4.0, 3.2, 3.2, 2.4, 2.4];
/// Differences at least this large are "large": with the noise below, about 1.2 standard
/// deviations of a paired per-scenario difference (Cohen's d above 0.8).
const LARGE: f64 = 0.8;
const TURNS: usize = 3;
const TRIALS: u64 = 30;

fn normal(rng: &mut SplitMix64) -> f64 {
    // Box–Muller; 1 − u keeps the logarithm finite.
    let (u, v) = (1.0 - rng.next_f64(), rng.next_f64());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

fn tutor(i: usize) -> ModelId {
    ModelId::new(format!("tutor-{}", i + 1)).expect("valid id")
}

/// One benchmark: each scenario has a difficulty shared by every tutor (sd 0.5), and each
/// turn's 1–5 score adds the tutor's true mean and the judge's noise (sd 0.8), rounded.
fn benchmark(defaults: &Defaults, set: ScenarioSet, seed: u64) -> ManifestSummary {
    let scenarios = defaults.scenario_set(set);
    let request = ManifestRequest {
        tutor_prompt: defaults.tutor_prompt.id.clone(),
        judge_prompt: defaults.judge_prompt.id.clone(),
        rubric: defaults.rubric.id.clone(),
        scenarios: scenarios.iter().map(|s| s.id.clone()).collect(),
        tutors: (0..TRUE_MEANS.len())
            .map(|i| ModelConfig {
                model: tutor(i),
                temperature: 0.7,
            })
            .collect(),
        student: None,
        judges: vec![ModelConfig {
            model: ModelId::new("judge").expect("valid id"),
            temperature: 0.0,
        }],
        turns: TURNS as u32,
        repetitions: 1,
        max_tokens: 512,
        label: None,
        rejudge_of: None,
        allow_self_judging: false,
    };
    let manifest = Manifest {
        id: ManifestId::from_ulid(ulid::Ulid::from(u128::from(seed) + 1)),
        hash: content_hash(&request).expect("hashes"),
        run_count: (TRUE_MEANS.len() * scenarios.len()) as u64,
        request,
        catalog_hashes: BTreeMap::new(),
        created_at: Timestamp::from_millis(0),
    };
    let mut rng = SplitMix64::new(seed);
    let mut digests = Vec::new();
    for scenario in &scenarios {
        let difficulty = 0.5 * normal(&mut rng);
        for (i, mean) in TRUE_MEANS.iter().enumerate() {
            let turns: Vec<f64> = (0..TURNS)
                .map(|_| {
                    (mean + difficulty + 0.8 * normal(&mut rng))
                        .round()
                        .clamp(1.0, 5.0)
                })
                .collect();
            let overall = turns.iter().sum::<f64>() / TURNS as f64;
            let run = RunId::from_ulid(ulid::Ulid::from((digests.len() + 1) as u128));
            let summary = RunSummary {
                run,
                manifest: manifest.id,
                tutor: tutor(i),
                scenario: scenario.id.clone(),
                vector: scenario.vector,
                rubric: defaults.rubric.id.clone(),
                dimension_means: defaults
                    .rubric
                    .dimensions
                    .iter()
                    .map(|d| (d.name.clone(), overall))
                    .collect(),
                overall: Some(overall),
                min: None,
                max: None,
                median: None,
                std_dev: None,
                compliance: None,
                half_life: None,
                answer_leak_turn: None,
                goal_reached_turn: None,
                goal_told_turn: None,
                telling: Vec::new(),
                judge_ratings: None,
                violations: BTreeMap::new(),
                scored_turns: TURNS as u32,
                unscored_judgments: 0,
                usage: BTreeMap::new(),
                tutor_latencies_ms: Vec::new(),
                computed_at: Timestamp::from_millis(0),
            };
            digests.push(RunDigest {
                tutor: tutor(i),
                scenario: scenario.id.clone(),
                repetition: 0,
                status: RunStatus::Curated,
                summary: Some(summary.into()),
                agreement_units: BTreeMap::new(),
            });
        }
    }
    summarize_digests(
        &manifest,
        &defaults.rubric,
        digests,
        Timestamp::from_millis(0),
    )
}

/// Every pair of tutors, by index.
fn pairs() -> Vec<(usize, usize)> {
    let n = TRUE_MEANS.len();
    (0..n)
        .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
        .collect()
}

/// Whether tutors `a` and `b` share a letter of the compact letter display.
fn tied(summary: &ManifestSummary, a: usize, b: usize) -> bool {
    let letters = |i: usize| {
        summary
            .leaderboard
            .iter()
            .find(|row| row.model == tutor(i))
            .map(|row| row.letters.clone())
            .expect("every tutor is on the leaderboard")
    };
    let (la, lb) = (letters(a), letters(b));
    la.chars().any(|c| lb.contains(c))
}

#[test]
fn six_tutors_on_the_full_bank_are_separated_when_their_difference_is_large() {
    let defaults = Defaults::load().expect("defaults load");
    let pairs = pairs();
    let (mut large_pairs, mut large_pairs_separated) = (0u32, 0u32);
    let (mut equal_pairs, mut equal_pairs_tied) = (0u32, 0u32);
    for trial in 0..TRIALS {
        let summary = benchmark(&defaults, ScenarioSet::Full, 1000 + trial);
        assert_eq!(
            summary.scenarios_needed, None,
            "48 scenarios can separate six"
        );
        for &(a, b) in &pairs {
            let gap = (TRUE_MEANS[a] - TRUE_MEANS[b]).abs();
            if gap >= LARGE {
                large_pairs += 1;
                large_pairs_separated += u32::from(!tied(&summary, a, b));
            } else if gap == 0.0 {
                equal_pairs += 1;
                equal_pairs_tied += u32::from(tied(&summary, a, b));
            }
        }
        // Rank group 1 holds only the best pair (one of them alone when an equal pair is
        // separated by chance, which Holm's correction keeps rare).
        let leaders: std::collections::BTreeSet<&ModelId> = summary
            .leaderboard
            .iter()
            .filter(|row| row.rank_group == Some(1))
            .map(|row| &row.model)
            .collect();
        let (first, second) = (tutor(0), tutor(1));
        let best: std::collections::BTreeSet<&ModelId> = [&first, &second].into();
        assert!(
            !leaders.is_empty() && leaders.is_subset(&best),
            "trial {trial}: {leaders:?}"
        );
    }
    assert_eq!(
        large_pairs_separated, large_pairs,
        "every pair 0.8 or more apart is separated in every trial"
    );
    // Holm's correction keeps the chance of separating any equal pair near 5% or below.
    let tied_share = f64::from(equal_pairs_tied) / f64::from(equal_pairs);
    assert!(
        tied_share >= 0.9,
        "equal tutors tied in {equal_pairs_tied} of {equal_pairs} cases"
    );
    eprintln!(
        "large differences separated in {large_pairs_separated}/{large_pairs}; equal tutors \
         tied in {equal_pairs_tied}/{equal_pairs}"
    );
}

#[test]
fn the_starter_set_cannot_separate_six_tutors_and_says_how_many_scenarios_it_needs() {
    let defaults = Defaults::load().expect("defaults load");
    let summary = benchmark(&defaults, ScenarioSet::Starter, 7);
    let needed = summary
        .scenarios_needed
        .expect("eight scenarios cannot separate six tutors");
    assert!(
        needed > 8 && needed <= 48,
        "needs {needed}, more than the starter's 8 and no more than the bank's 48"
    );
    for (a, b) in pairs() {
        assert!(tied(&summary, a, b), "tutors {a} and {b} tied at n = 8");
    }
}
