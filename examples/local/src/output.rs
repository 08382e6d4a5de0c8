//! Standard output that a closed pipe cannot crash: `socratic list | head -1` is a normal way
//! to use the command, so a reader that stops early ends the command quietly with status 0.

use std::io::{ErrorKind, Write};

/// Writes formatted text to standard output; a failure is an `Io` error on "standard output",
/// which `main` turns into a quiet success when the pipe was closed.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!($($arg)*))?
    };
}

/// [`out!`] with a newline.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

pub(crate) use {out, outln};

/// Writes and flushes `text`, so a closed pipe shows here rather than at exit.
pub(crate) fn write(text: std::fmt::Arguments<'_>) -> Result<(), socratic_local::Error> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_fmt(text)
        .and_then(|()| stdout.flush())
        .map_err(|source| socratic_local::Error::Io {
            path: "standard output".into(),
            source,
        })
}

/// Whether `error` is only the reader of standard output having gone away.
pub(crate) fn closed_pipe(error: &socratic_local::Error) -> bool {
    matches!(error, socratic_local::Error::Io { source, .. } if source.kind() == ErrorKind::BrokenPipe)
}
