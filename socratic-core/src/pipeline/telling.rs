//! One telling measure, two detectors.
//!
//! A tutor *tells* on a turn when it hands the student the answer. The measure every telling
//! figure uses is the judges' majority `reveals_answer` flag, when the rubric has that flag
//! and judges scored; the verbatim answer-key detector ([`crate::answer_key::AnswerKey`]) is
//! the independent second opinion, and the measure itself where no judge can flag telling.
//! telling@k and "told before the student reached it" follow `MathDial` (Macina et al., 2023).
//! How far the two detectors agree over turns is Cohen's kappa, with a 95% interval from
//! resampling scenarios, and the turns they disagree on are listed.

use std::collections::BTreeMap;

use crate::answer_key::GoalTimeline;
use crate::entity::{
    DetectorAgreement, MAX_DISAGREEMENTS, TellingDetector, TellingDisagreement, TurnTelling,
};
use crate::id::{ModelId, RunId, ScenarioId};
use crate::stats::{self, PairCounts};

/// Resamples of scenarios behind the detectors' kappa interval.
const RESAMPLES: usize = 1000;

/// What one run says of telling, for the figures of its tutor and manifest.
#[derive(Debug, Clone, Copy)]
pub struct RunTelling<'a> {
    /// The run.
    pub run: RunId,
    /// Its tutor.
    pub tutor: &'a ModelId,
    /// Its scenario.
    pub scenario: &'a ScenarioId,
    /// The first turn whose student reply states a goal.
    pub reached: Option<u32>,
    /// The first turn the judges' majority flagged as telling.
    pub judged_told: Option<u32>,
    /// The first turn the verbatim detector calls telling.
    pub verbatim_told: Option<u32>,
    /// Per turn, both detectors.
    pub turns: &'a [TurnTelling],
}

/// The detector of a manifest's runs: the judges' flag when any judge flagged (or cleared)
/// any turn, the verbatim detector otherwise.
pub fn detector<'a>(runs: impl IntoIterator<Item = &'a RunTelling<'a>>) -> TellingDetector {
    if runs
        .into_iter()
        .any(|run| run.turns.iter().any(|t| t.judges.is_some()))
    {
        TellingDetector::Judges
    } else {
        TellingDetector::Verbatim
    }
}

impl RunTelling<'_> {
    /// Whether the tutor told before the student stated a goal, or without the student ever
    /// stating one, by `detector`.
    pub fn told_first(&self, detector: TellingDetector) -> bool {
        let told = match detector {
            TellingDetector::Judges => self.judged_told,
            TellingDetector::Verbatim => self.verbatim_told,
        };
        GoalTimeline {
            reached: self.reached,
            told,
        }
        .told_first()
    }
}

/// How far the detectors agree over the turns of `runs` that both judged; `None` when no turn
/// was judged by both. The interval resamples scenarios, seeded by `seed`.
pub fn agreement<'a>(
    runs: impl IntoIterator<Item = &'a RunTelling<'a>>,
    seed: u64,
) -> Option<DetectorAgreement> {
    let mut by_scenario: BTreeMap<&ScenarioId, PairCounts> = BTreeMap::new();
    let mut all = PairCounts::new(0, 1);
    let (mut turns, mut both, mut judges_only, mut verbatim_only) = (0u32, 0u32, 0u32, 0u32);
    for run in runs {
        for turn in run.turns {
            let Some(judges) = turn.judges else {
                continue;
            };
            turns += 1;
            match (judges, turn.verbatim) {
                (true, true) => both += 1,
                (true, false) => judges_only += 1,
                (false, true) => verbatim_only += 1,
                (false, false) => {}
            }
            by_scenario
                .entry(run.scenario)
                .or_insert_with(|| PairCounts::new(0, 1))
                .add(u8::from(judges), u8::from(turn.verbatim));
            all.add(u8::from(judges), u8::from(turn.verbatim));
        }
    }
    if turns == 0 {
        return None;
    }
    let clusters: Vec<PairCounts> = by_scenario.into_values().collect();
    // On two levels, quadratic weights are Cohen's unweighted kappa.
    Some(DetectorAgreement {
        turns,
        both,
        judges_only,
        verbatim_only,
        kappa: all.kappa(),
        kappa_ci: stats::cluster_bootstrap_sums(
            &clusters,
            &PairCounts::new(0, 1),
            PairCounts::kappa,
            RESAMPLES,
            seed,
        ),
    })
}

/// The turns of `runs` the detectors disagree on, in the order given, at most
/// [`MAX_DISAGREEMENTS`].
pub fn disagreements<'a>(
    runs: impl IntoIterator<Item = &'a RunTelling<'a>>,
) -> Vec<TellingDisagreement> {
    runs.into_iter()
        .flat_map(|run| {
            run.turns.iter().filter_map(move |t| {
                let judges = t.judges?;
                (judges != t.verbatim).then(|| TellingDisagreement {
                    run: run.run,
                    tutor: run.tutor.clone(),
                    scenario: run.scenario.clone(),
                    turn: t.turn,
                    judges,
                    verbatim: t.verbatim,
                })
            })
        })
        .take(MAX_DISAGREEMENTS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turns(spec: &[(Option<bool>, bool)]) -> Vec<TurnTelling> {
        spec.iter()
            .enumerate()
            .map(|(i, &(judges, verbatim))| TurnTelling {
                turn: u32::try_from(i + 1).unwrap(),
                judges,
                verbatim,
            })
            .collect()
    }

    #[test]
    fn the_detectors_kappa_and_their_disagreements_are_counted_over_turns_both_judged() {
        let tutor = ModelId::new("t").unwrap();
        let scenarios: Vec<ScenarioId> = (0..4)
            .map(|i| ScenarioId::new(format!("S{i}")).unwrap())
            .collect();
        // Per scenario: told by both, told by neither, and one turn each disagrees on.
        let spec = turns(&[
            (Some(true), true),
            (Some(false), false),
            (Some(true), false),
            (Some(false), true),
            (None, true),
        ]);
        let runs: Vec<RunTelling<'_>> = scenarios
            .iter()
            .map(|scenario| RunTelling {
                run: RunId::from_ulid(ulid::Ulid::new()),
                tutor: &tutor,
                scenario,
                reached: None,
                judged_told: Some(1),
                verbatim_told: Some(1),
                turns: &spec,
            })
            .collect();
        let found = agreement(&runs, 7).unwrap();
        assert_eq!(
            (
                found.turns,
                found.both,
                found.judges_only,
                found.verbatim_only
            ),
            (16, 4, 4, 4)
        );
        // Observed agreement 1/2, chance agreement 1/2 (both say yes half the time): 0.
        assert!(found.kappa.unwrap().abs() < 1e-12);
        let found = disagreements(&runs);
        assert_eq!(found.len(), 8);
        assert!(found.iter().all(|d| d.judges != d.verbatim && d.turn >= 3));
        assert_eq!(detector(&runs), TellingDetector::Judges);
        let unjudged = turns(&[(None, true)]);
        let verbatim_only = [RunTelling {
            turns: &unjudged,
            ..runs[0]
        }];
        assert_eq!(detector(&verbatim_only), TellingDetector::Verbatim);
        assert_eq!(agreement(&verbatim_only, 7), None);
    }

    #[test]
    fn told_first_reads_the_detector_s_turn() {
        let (tutor, scenario) = (ModelId::new("t").unwrap(), ScenarioId::new("S").unwrap());
        let run = RunTelling {
            run: RunId::from_ulid(ulid::Ulid::new()),
            tutor: &tutor,
            scenario: &scenario,
            reached: Some(2),
            judged_told: Some(2),
            verbatim_told: Some(3),
            turns: &[],
        };
        assert!(
            run.told_first(TellingDetector::Judges),
            "told as the student reached it"
        );
        assert!(
            !run.told_first(TellingDetector::Verbatim),
            "after the student reached it"
        );
    }
}
