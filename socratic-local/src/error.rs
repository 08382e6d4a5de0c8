//! Why an operation on a results directory did not complete.

use std::path::PathBuf;

use socratic_core::entity::Problems;

use crate::catalog::{CatalogError, InitError};
use crate::models::ModelsFileError;

/// Why an operation did not complete. Each variant names what is wrong, so a caller can tell
/// the user exactly what to fix; nothing was half-written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option or an input cannot be used as given.
    #[error("{0}")]
    Invalid(String),
    /// The models file has problems, each named with its entry and field.
    #[error(transparent)]
    Models(#[from] ModelsFileError),
    /// The catalog directory has problems, each named with its file and field.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// `init` wrote nothing, or not everything.
    #[error(transparent)]
    Init(#[from] InitError),
    /// The manifest does not plan: every problem, by field.
    #[error("the manifest is invalid:\n{}", crate::indented(.0.0.iter().map(ToString::to_string)))]
    InvalidManifest(Problems),
    /// A label file was refused whole: every problem, by line.
    #[error("{}", crate::problem_list(&path.display().to_string(), &problems.0.iter().map(ToString::to_string).collect::<Vec<_>>()))]
    Labels {
        /// The file.
        path: PathBuf,
        /// Its problems.
        problems: Problems,
    },
    /// Real models did not answer the one-request check made before planning: one line per
    /// model, naming it, its endpoint and the error.
    #[error("preflight failed before anything was planned (skip it with --no-preflight):\n{}", crate::indented(.0.iter().cloned()))]
    Preflight(Vec<String>),
    /// What was asked for is not in the results directory.
    #[error("{0}")]
    NotFound(String),
    /// The results directory cannot be used: held by another process, missing its database,
    /// or its database cannot be opened.
    #[error(transparent)]
    Results(#[from] socratic_sqlite::ResultsError),
    /// A bundle was refused: unreadable, of another version, changed, unsafe, or in conflict
    /// with the target directory.
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    /// A push stopped: a conflict, a missing table or bucket, nothing to push.
    #[error(transparent)]
    Push(#[from] crate::push::PushError),
    /// The admin API of a deployment could not be used.
    #[cfg(feature = "remote")]
    #[error(transparent)]
    Remote(Box<crate::remote::RemoteError>),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A step failed in the store, the blobs, the queues or a stage.
    #[error("{context}: {source}")]
    Failed {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// A failure to read or write `path`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// What a step of the layers below was doing when it failed.
pub(crate) trait Context<T> {
    /// The error as [`Error::Failed`] of `what`.
    fn context(self, what: &str) -> Result<T, Error>;

    /// The error as [`Error::Failed`] of what `what` says.
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> Result<T, Error> {
        self.with_context(|| what.to_owned())
    }

    fn with_context(self, what: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Failed {
            context: what(),
            source: Box::new(source),
        })
    }
}
