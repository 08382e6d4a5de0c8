//! Human labelling: which judged turns people score, and their scores saved one at a time.
//!
//! [`sample_turns`] draws a stratified, seeded sample of a manifest's judged tutor turns: every
//! tutor, every vector, and early and late turns are represented before any stratum gives a
//! second turn, and the same seed draws the same turns in the same order, so two raters can
//! label the same sample apart. [`save_label`] and [`skip_turn`] store one answer at once, merged
//! under the stored item's version so that raters writing together lose nothing.
//! [`labels_csv`] writes the stored labels in the format [`crate::calibration`] imports.

use std::collections::BTreeMap;

use crate::calibration::{
    CalibrationError, LabelRow, RunRef, check_labels, manifest_and_rubric, merge_labels, records_of,
};
use crate::clock::Timestamp;
use crate::entity::{HumanLabel, HumanLabels, Problems, SkippedTurn, Vector};
use crate::id::{ManifestId, ModelId, RunId};
use crate::keys;
use crate::repository::{RepoError, Repository, RunRecord};
use crate::stats::SplitMix64;

/// Turns offered for labelling when the caller does not say.
pub const DEFAULT_SAMPLE: usize = 30;

/// The longest rater name accepted.
pub const MAX_RATER_LEN: usize = 64;

/// Where a turn falls in its dialogue: the first half (rounded up) is early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// The first half of the dialogue.
    Early,
    /// The second half.
    Late,
}

impl Phase {
    /// The phase of turn `index` of a run of `turns` turns.
    pub fn of(index: u32, turns: u32) -> Self {
        if u64::from(index) * 2 <= u64::from(turns) + 1 {
            Self::Early
        } else {
            Self::Late
        }
    }
}

/// One judged tutor turn drawn for labelling, with the stratum it was drawn from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampledTurn {
    /// The run.
    pub run: RunId,
    /// The turn, from 1.
    pub turn: u32,
    /// The tutor (never shown to a rater).
    pub tutor: ModelId,
    /// The scenario's vector.
    pub vector: Vector,
    /// Early or late in its dialogue.
    pub phase: Phase,
}

/// Draws up to `size` judged tutor turns of `records`, stratified by tutor, vector and phase
/// and in random order, from `seed`. Strata are visited in turn, one turn from each, until the
/// sample is full, so a sample at least as large as the number of strata holds every one.
/// A turn is judged when at least one judgment of it is stored.
pub fn sample_turns(records: &[RunRecord], size: usize, seed: u64) -> Vec<SampledTurn> {
    let mut strata: BTreeMap<(ModelId, Vector, Phase), Vec<SampledTurn>> = BTreeMap::new();
    let mut ordered: Vec<&RunRecord> = records.iter().collect();
    ordered.sort_by_key(|r| r.run.value.id);
    for record in ordered {
        let run = &record.run.value;
        for turn in &record.turns {
            if !record.judgments.iter().any(|j| j.turn == turn.index) {
                continue;
            }
            let phase = Phase::of(turn.index, run.turns);
            strata
                .entry((run.tutor.model.clone(), run.vector, phase))
                .or_default()
                .push(SampledTurn {
                    run: run.id,
                    turn: turn.index,
                    tutor: run.tutor.model.clone(),
                    vector: run.vector,
                    phase,
                });
        }
    }
    let mut rng = SplitMix64::new(seed);
    let mut strata: Vec<Vec<SampledTurn>> = strata.into_values().collect();
    for stratum in &mut strata {
        shuffle(stratum, &mut rng);
        // Drawn from the back.
        stratum.reverse();
    }
    shuffle(&mut strata, &mut rng);
    let mut sample = Vec::new();
    while sample.len() < size && strata.iter().any(|s| !s.is_empty()) {
        for stratum in &mut strata {
            if sample.len() == size {
                break;
            }
            if let Some(turn) = stratum.pop() {
                sample.push(turn);
            }
        }
    }
    shuffle(&mut sample, &mut rng);
    sample
}

/// Fisher–Yates.
fn shuffle<T>(items: &mut [T], rng: &mut SplitMix64) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i + 1));
    }
}

/// The problem with a rater's name, if any: it is written into CSV files and shown on pages,
/// so it must be short, printable and without surrounding spaces.
pub fn rater_problem(rater: &str) -> Option<String> {
    if rater.trim().is_empty() {
        Some("the rater's name is empty".to_owned())
    } else if rater.trim() != rater {
        Some(format!(
            "the rater's name {rater:?} starts or ends with a space"
        ))
    } else if rater.chars().count() > MAX_RATER_LEN {
        Some(format!(
            "the rater's name is longer than {MAX_RATER_LEN} characters"
        ))
    } else if rater.chars().any(char::is_control) {
        Some(format!(
            "the rater's name {rater:?} holds a control character"
        ))
    } else {
        None
    }
}

/// Checks `label` against manifest `id` (its run, turn, the rubric's dimension and scale, the
/// rater's name) and stores it at once, replacing the same rater's earlier score of that slot.
/// A label with a problem is refused with every problem listed, and nothing is stored.
pub async fn save_label(
    repository: &Repository,
    id: &ManifestId,
    label: HumanLabel,
    now: Timestamp,
) -> Result<HumanLabels, CalibrationError> {
    let (manifest, rubric) = manifest_and_rubric(repository, id).await?;
    let records = records_of(repository, id, [label.run].into()).await?;
    let row = LabelRow {
        line: 1,
        run: RunRef::Id(label.run),
        turn: label.turn,
        dimension: label.dimension.clone(),
        score: label.score,
        rater: label.rater.clone(),
    };
    let mut problems = Problems::new();
    check_labels(
        &manifest,
        &rubric,
        std::slice::from_ref(&row),
        std::slice::from_ref(&label),
        &records,
        &mut problems,
    );
    if let Some(problem) = label.rater.as_deref().and_then(rater_problem) {
        problems.push("rater", problem);
    }
    if !problems.is_empty() {
        return Err(CalibrationError::Labels(problems));
    }
    Ok(merge_labels(repository, id, &[label], &[], now).await?)
}

/// Stores that `skip.rater` skipped a turn of manifest `id`, so that it is not offered to them
/// again; a turn the manifest lacks is refused.
pub async fn skip_turn(
    repository: &Repository,
    id: &ManifestId,
    skip: SkippedTurn,
    now: Timestamp,
) -> Result<HumanLabels, CalibrationError> {
    let records = records_of(repository, id, [skip.run].into()).await?;
    let mut problems = Problems::new();
    match records.get(&skip.run) {
        None => problems.push(
            "run",
            format!("run {} is not a run of manifest {id}", skip.run),
        ),
        Some(record) if !record.turns.iter().any(|t| t.index == skip.turn) => problems.push(
            "turn",
            format!("run {} has no turn {}", skip.run, skip.turn),
        ),
        Some(_) => {}
    }
    if let Some(problem) = skip.rater.as_deref().and_then(rater_problem) {
        problems.push("rater", problem);
    }
    if !problems.is_empty() {
        return Err(CalibrationError::Labels(problems));
    }
    Ok(merge_labels(repository, id, &[], &[skip], now).await?)
}

/// The stored labels of manifest `id`, if any.
pub async fn stored_labels(
    repository: &Repository,
    id: &ManifestId,
) -> Result<Option<HumanLabels>, RepoError> {
    Ok(repository
        .get::<HumanLabels>(&keys::human_labels(id))
        .await?
        .map(|v| v.value))
}

/// Manifest `id`'s stored labels as CSV in the format [`crate::calibration`] imports
/// (`run_id,turn,dimension,score,rater`), each run named by its coordinates so that the file
/// also calibrates the manifest's re-judges; and how many labels it holds.
pub async fn labels_csv(
    repository: &Repository,
    id: &ManifestId,
) -> Result<(String, usize), CalibrationError> {
    let labels = stored_labels(repository, id)
        .await?
        .map(|l| l.labels)
        .unwrap_or_default();
    let records = records_of(repository, id, labels.iter().map(|l| l.run).collect()).await?;
    let mut csv = String::from("run_id,turn,dimension,score,rater\n");
    for label in &labels {
        let run = records.get(&label.run).map_or_else(
            || RunRef::Id(label.run),
            |r| RunRef::Coordinates {
                tutor: r.run.value.tutor.model.clone(),
                scenario: r.run.value.scenario.clone(),
                repetition: r.run.value.repetition,
            },
        );
        csv.push_str(&format!(
            "{run},{},{},{},{}\n",
            label.turn,
            csv_field(&label.dimension),
            label.score,
            label.rater.as_deref().map(csv_field).unwrap_or_default()
        ));
    }
    Ok((csv, labels.len()))
}

/// A CSV field, quoted when it holds a comma or a quote.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_split_a_dialogue_in_half_rounding_up() {
        let phases = |turns| -> Vec<Phase> { (1..=turns).map(|i| Phase::of(i, turns)).collect() };
        assert_eq!(phases(1), [Phase::Early]);
        assert_eq!(phases(2), [Phase::Early, Phase::Late]);
        assert_eq!(phases(3), [Phase::Early, Phase::Early, Phase::Late]);
        assert_eq!(
            phases(4),
            [Phase::Early, Phase::Early, Phase::Late, Phase::Late]
        );
    }

    #[test]
    fn rater_names_must_be_short_printable_and_trimmed() {
        assert_eq!(rater_problem("Lee, A."), None);
        assert_eq!(rater_problem("Zoë"), None);
        for bad in ["", "  ", " ana", "ana ", "a\nb", "a\tb"] {
            assert!(rater_problem(bad).is_some(), "{bad:?}");
        }
        assert!(rater_problem(&"x".repeat(MAX_RATER_LEN + 1)).is_some());
        assert_eq!(rater_problem(&"x".repeat(MAX_RATER_LEN)), None);
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("ana"), "ana");
        assert_eq!(csv_field("Lee, A."), "\"Lee, A.\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
