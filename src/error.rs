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
    /// Trouble that stops a hook but is no bug and no broken charm: the
    /// status says it, the hook exits 0 and the next one tries again.
    pub fn interruption(&self) -> Option<crate::problem::Problem> {
        use crate::problem::Problem;
        if let Some(stuck) = self.timed_out() {
            return Some(Problem::waiting(format!(
                "{}; retrying on the next hook",
                charm::quote::bounded(&stuck.to_string(), 300)
            )));
        }
        self.out_of_space().map(|what| {
            Problem::blocked(format!(
                "{}: no space left on device; free some, the next hook tries again",
                charm::quote::bounded(&what, 200)
            ))
        })
    }

    /// What was being written when the disk was full.
    fn out_of_space(&self) -> Option<String> {
        use charm::snap::SnapError;
        let full = |e: &std::io::Error| e.kind() == std::io::ErrorKind::StorageFull;
        match self {
            Error::Io { doing, source } if full(source) => Some(doing.clone()),
            Error::File(e) | Error::State(StateError::File(e)) if full(&e.source) => {
                Some(format!("{} {}", e.action, e.path.display()))
            }
            Error::Snap(SnapError::Io { path, source }) if full(source) => {
                Some(format!("reading {}", path.display()))
            }
            Error::Snap(SnapError::Exec(e)) | Error::Exec { source: e, .. }
                if e.stderr().contains("no space left on device") =>
            {
                Some(e.to_string())
            }
            _ => None,
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn enospc() -> std::io::Error {
        std::io::Error::from_raw_os_error(nix::libc::ENOSPC)
    }

    #[test]
    fn a_full_disk_is_blocked_naming_what_was_written() {
        let e = Error::Io {
            doing: "writing /opt/cni/.kubernetes-worker-staging.x/bridge".into(),
            source: enospc(),
        };
        let p = e.interruption().unwrap();
        assert_eq!(p.kind, crate::problem::ProblemKind::Blocked);
        assert_eq!(
            p.message,
            "writing /opt/cni/.kubernetes-worker-staging.x/bridge: no space left on device; free some, the next hook tries again"
        );
        let e = Error::File(FileError {
            action: "writing",
            path: "/root/cdk/kubelet/config.yaml".into(),
            source: enospc(),
        });
        assert!(e
            .interruption()
            .unwrap()
            .message
            .starts_with("writing /root/cdk/kubelet/config.yaml: no space left on device"));
        // Through tempfile, which wraps the error with its path.
        let wrapped = std::io::Error::new(enospc().kind(), "/x/.tmp123: no space");
        let e = Error::Io {
            doing: "creating a staging directory in /opt/cni".into(),
            source: wrapped,
        };
        assert!(e.interruption().is_some());
        // Other I/O trouble stays an error (a broken machine: Juju retries).
        let e = Error::Io {
            doing: "x".into(),
            source: std::io::Error::from_raw_os_error(nix::libc::EIO),
        };
        assert!(e.interruption().is_none());
    }
}
