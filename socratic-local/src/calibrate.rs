//! Judges measured against human labels of a finished benchmark (docs/statistics.md).

use std::path::{Path, PathBuf};

use socratic_core::calibration::{
    Calibration, CalibrationError, import_labels, stored_calibration,
};
use socratic_core::clock::{Clock, SystemClock};
use socratic_core::id::ManifestId;

use crate::error::{Context, Error};
use crate::history::History;

/// The calibration file a results directory keeps.
pub const CALIBRATION_FILE: &str = "calibration.json";

/// A calibration, and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibrated {
    /// Per judge and dimension, agreement with the human labels.
    pub calibration: Calibration,
    /// `calibration.json` at the top of the results directory.
    pub file: PathBuf,
    /// The manifest's report, written again with the calibration table: at the top of the
    /// results directory when it shows that manifest, otherwise in its folder.
    pub report: PathBuf,
}

/// Imports the labels of `labels` (CSV) into manifest `id` (by default the newest finished)
/// of the results directory `out`, or with no file reads the stored ones, and measures each
/// judge against them, then writes `calibration.json` and the manifest's report again with the
/// calibration table. A file with any problem is refused whole, every problem listed by
/// line, and nothing is stored.
pub async fn calibrate(
    out: &Path,
    labels: Option<&Path>,
    id: Option<ManifestId>,
) -> Result<Calibrated, Error> {
    let history = History::open(out)?;
    let id = history.finished_or(id).await?;
    let repository = history.repository();
    let calibration = match labels {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
            match import_labels(repository, &id, &text, SystemClock.now()).await {
                Ok(calibration) => calibration,
                Err(CalibrationError::Labels(problems)) => {
                    return Err(Error::Labels {
                        path: path.to_owned(),
                        problems,
                    });
                }
                Err(e) => return Err(e).with_context(|| format!("importing {}", path.display())),
            }
        }
        None => stored_calibration(repository, &id)
            .await
            .with_context(|| format!("reading the labels of manifest {id}"))?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "manifest {id} has no human labels; import some with --labels"
                ))
            })?,
    };
    let file = out.join(CALIBRATION_FILE);
    let text = serde_json::to_string_pretty(&calibration).context("writing the calibration")?;
    std::fs::write(&file, text + "\n").map_err(Error::io(&file))?;
    let report = crate::rerender::render(out, Some(id), false).await?.report;
    Ok(Calibrated {
        calibration,
        file,
        report,
    })
}
