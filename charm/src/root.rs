//! The machine's filesystem as the charm sees it. Every absolute path the
//! charm reads or writes goes through a [`MachineRoot`], so that a test can
//! run the real binary against a scratch directory; the default is `/`.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct MachineRoot {
    base: PathBuf,
}

impl MachineRoot {
    pub fn new(base: impl Into<PathBuf>) -> MachineRoot {
        MachineRoot { base: base.into() }
    }

    /// The root named by the environment variable `var`, or `/`.
    pub fn from_env(var: &str) -> MachineRoot {
        match std::env::var_os(var) {
            Some(base) if !base.is_empty() => MachineRoot::new(base),
            _ => MachineRoot::new("/"),
        }
    }

    /// Where the machine path `abs` (e.g. `/opt/cni/bin`) is.
    pub fn path(&self, abs: impl AsRef<Path>) -> PathBuf {
        let abs = abs.as_ref();
        let relative = abs.strip_prefix("/").unwrap_or(abs);
        self.base.join(relative)
    }

    pub fn base(&self) -> &Path {
        &self.base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_under_the_base() {
        let root = MachineRoot::new("/tmp/scratch");
        assert_eq!(
            root.path("/opt/cni/bin"),
            PathBuf::from("/tmp/scratch/opt/cni/bin")
        );
        assert_eq!(
            MachineRoot::new("/").path("/etc/hosts"),
            PathBuf::from("/etc/hosts")
        );
    }
}
