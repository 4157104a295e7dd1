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
        self.change(&["restart"], unit)
    }

    pub fn start(&self, unit: &str) -> Result<(), ExecError> {
        self.change(&["start"], unit)
    }

    /// Enables `unit` and starts it if it is not running (a running one is
    /// left as it is).
    pub fn enable_now(&self, unit: &str) -> Result<(), ExecError> {
        self.change(&["enable", "--now"], unit)
    }

    pub fn disable_now(&self, unit: &str) -> Result<(), ExecError> {
        self.change(&["disable", "--now"], unit)
    }

    /// A change to `unit`: the hook's intent mark first, then systemctl,
    /// with the deadline of a change (a stop waits for the old process).
    fn change(&self, verb: &[&str], unit: &str) -> Result<(), ExecError> {
        exec::before_change("systemctl", unit)?;
        let mut args = verb.to_vec();
        args.push(unit);
        exec::run("systemctl", &args, None, deadline::CHANGE).map(drop)
    }
}
