//! The worker's errors: each says what was being done and with what.
//! Expected trouble (a missing resource, a relation not ready) is not an
//! error: it is a status. These are for bugs and broken environments, and
//! make the hook exit non-zero so that Juju retries.

use charm::files::FileError;
use charm::state::StateError;
use charm::tools::ToolError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{doing}: {source}")]
    Tool {
        doing: &'static str,
        source: ToolError,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Resource(charm::resources::ResourceError),
    #[error("{doing}: {source}")]
    Io {
        doing: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Snap(#[from] charm::snap::SnapError),
    #[error("{doing}: {source}")]
    Exec {
        doing: &'static str,
        source: charm::exec::ExecError,
    },
}

impl Error {
    /// The program that was stopped at its deadline, if that is what went
    /// wrong: a wedged tool or snapd is waited out, not a hook error.
    pub fn timed_out(&self) -> Option<&charm::exec::ExecError> {
        use charm::exec::ExecError;
        use charm::resources::ResourceError;
        use charm::snap::SnapError;
        let exec = match self {
            Error::Tool {
                source: ToolError::Exec(e),
                ..
            }
            | Error::Resource(ResourceError::Tool(ToolError::Exec(e)))
            | Error::Snap(SnapError::Exec(e))
            | Error::Exec { source: e, .. } => e,
            _ => return None,
        };
        matches!(exec, ExecError::TimedOut { .. }).then_some(exec)
    }
}

/// Adds what was being done to a hook tool failure.
pub trait ToolContext<T> {
    fn doing(self, doing: &'static str) -> Result<T, Error>;
}

impl<T> ToolContext<T> for Result<T, ToolError> {
    fn doing(self, doing: &'static str) -> Result<T, Error> {
        self.map_err(|source| Error::Tool { doing, source })
    }
}
