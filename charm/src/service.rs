//! systemd services, through `systemctl`.

use crate::exec::{self, deadline, ExecError};

#[derive(Debug, Clone, Copy, Default)]
pub struct Systemctl;

impl Systemctl {
    /// `systemctl is-active <unit>`: exit 0 means active; any other exit is
    /// an answer ("inactive", "failed", ...), not an error.
    pub fn is_active(&self, unit: &str) -> Result<bool, ExecError> {
        match exec::run("systemctl", &["is-active", unit], None, deadline::QUERY) {
            Ok(_) => Ok(true),
            Err(ExecError::Failed { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn restart(&self, unit: &str) -> Result<(), ExecError> {
        exec::before_change("systemctl", unit)?;
        exec::run("systemctl", &["restart", unit], None, deadline::CHANGE).map(drop)
    }

    pub fn start(&self, unit: &str) -> Result<(), ExecError> {
        exec::before_change("systemctl", unit)?;
        exec::run("systemctl", &["start", unit], None, deadline::CHANGE).map(drop)
    }

    /// Enables `unit` and starts it if it is not running (a running one is
    /// left as it is).
    pub fn enable_now(&self, unit: &str) -> Result<(), ExecError> {
        exec::before_change("systemctl", unit)?;
        exec::run(
            "systemctl",
            &["enable", "--now", unit],
            None,
            deadline::CHANGE,
        )
        .map(drop)
    }

    pub fn disable_now(&self, unit: &str) -> Result<(), ExecError> {
        exec::before_change("systemctl", unit)?;
        exec::run(
            "systemctl",
            &["disable", "--now", unit],
            None,
            deadline::CHANGE,
        )
        .map(drop)
    }
}
