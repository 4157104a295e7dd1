//! Kernel tunables, through procps' `sysctl`.

use std::path::Path;

use crate::exec::{self, deadline, ExecError};

/// What `sysctl -p` made of a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// The lines in which sysctl said it could not set a key (`permission
    /// denied on key ...`, `cannot stat /proc/sys/...`), as it printed them.
    pub refused: Vec<String>,
}

/// `sysctl -p <file>`: sets every tunable the file names. procps goes on
/// past a key it cannot set and exits non-zero at the end; those keys are
/// returned, not an error, since inside a container the kernel refuses
/// some by design. Only a sysctl that printed nothing of the kind (it could
/// not run, could not read the file) is an error.
pub fn load(file: &Path) -> Result<Loaded, ExecError> {
    exec::before_change("sysctl", &file.to_string_lossy())?;
    match exec::run(
        "sysctl",
        &[std::ffi::OsStr::new("-p"), file.as_os_str()],
        None,
        deadline::QUERY,
    ) {
        Ok(_) => Ok(Loaded::default()),
        Err(e @ ExecError::Failed { .. }) => {
            let refused: Vec<String> = e
                .stderr()
                .lines()
                .filter(|l| {
                    l.contains("permission denied on key")
                        || l.contains("cannot stat /proc/sys/")
                        || l.contains("setting key")
                })
                .map(|l| l.trim().to_string())
                .collect();
            if refused.is_empty() {
                Err(e)
            } else {
                Ok(Loaded { refused })
            }
        }
        Err(e) => Err(e),
    }
}
