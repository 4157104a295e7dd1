//! Killing the running hook at one of its external calls, as a reboot, an
//! agent restart or the OOM killer would: just before the call (it never
//! happens) or just after it (it happened, the hook never learns).
//!
//! Every tool and machine program counts itself here while a hook runs, so
//! the harness also learns how many external calls a hook made; that is
//! what failure injection iterates over.

use serde::{Deserialize, Serialize};

use crate::store::Layout;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Moment {
    Before,
    After,
}

/// Where to kill the next hook.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KillPlan {
    /// The call (0-based, counting every tool and program call of the
    /// hook) at which to kill it, and when.
    pub at: Option<(u32, Moment)>,
    /// Count only calls whose `program args...` starts with this.
    #[serde(default)]
    pub matching: Option<String>,
    /// Matching calls so far (all calls when nothing is matched).
    #[serde(default)]
    pub matched: u32,
    /// Calls made so far by the running hook.
    pub seen: u32,
    /// Whether the plan fired in the running (or last) hook.
    pub fired: bool,
    /// The call, counted over every hook from when the plan was set, at
    /// which to kill whichever hook makes it.
    #[serde(default)]
    pub at_overall: Option<(u32, Moment)>,
    /// Calls made by all hooks since the plan was set.
    #[serde(default)]
    pub overall: u32,
    /// Kill the next hook this long after it starts (if it still runs):
    /// for work the charm does in-process, between calls.
    #[serde(default)]
    pub after_time: Option<std::time::Duration>,
}

impl Layout {
    pub fn kill_file(&self) -> std::path::PathBuf {
        self.dir.join("kill.json")
    }
}

/// Counts a call of the running hook; says whether to kill it around
/// this call. A plan fires once.
pub fn count_call(layout: &Layout, program: &str, args: &[String]) -> Option<Moment> {
    let line = std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    layout
        .with(&layout.kill_file(), |plan: &mut KillPlan| {
            plan.seen += 1;
            let overall = plan.overall;
            plan.overall += 1;
            if let Some((at, moment)) = plan.at_overall {
                if at == overall {
                    plan.at_overall = None;
                    plan.fired = true;
                    return (Some(moment), true);
                }
            }
            if plan
                .matching
                .as_ref()
                .is_some_and(|m| !line.starts_with(m.as_str()))
            {
                return (None, true);
            }
            let index = plan.matched;
            plan.matched += 1;
            let moment = match plan.at {
                Some((at, moment)) if at == index && !plan.fired => {
                    plan.fired = true;
                    Some(moment)
                }
                _ => None,
            };
            (moment, true)
        })
        .ok()
        .flatten()
}

/// SIGKILL to the hook (this call's parent: the charm's binary, which
/// `dispatch` execs), then this process ends as the hook's children do
/// when their parent is gone.
pub fn kill_hook() -> ! {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::{getppid, Pid};
    let parent = getppid();
    if parent != Pid::from_raw(1) {
        let _ = kill(parent, Signal::SIGKILL);
    }
    std::process::exit(137)
}
