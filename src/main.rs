//! kubernetes-worker: the hook binary of the Kubernetes worker charm.
//!
//! Juju's unit agent runs the charm's `dispatch`, which execs this binary
//! for the machine's architecture once per hook or action. The event comes
//! from `JUJU_DISPATCH_PATH` (argv[0] for agents older than 2.8); everything
//! else from the hook tools. `KUBERNETES_WORKER_ROOT` (default `/`) moves
//! every machine path the charm touches under another directory, for tests.
//!
//! Run by hand, `kubernetes-worker check-cni|check-snap ...` checks a
//! resource before it is attached (see `cli`).
//!
//! Exit codes: 0 when the hook did its work or met expected trouble (a
//! missing resource, a relation not ready: the unit's status then says what
//! to do); 1 for a bug or a broken environment, logged with what failed, so
//! that the agent marks the hook failed and retries it.

mod actions;
mod adoption;
mod arch;
mod args;
mod cis;
mod cli;
mod cloud;
mod cni;
mod config;
mod cos;
mod daemons;
mod drain;
mod elf;
mod error;
mod facts;
mod identity;
mod ingress;
mod install;
mod journal;
mod kubeapi;
mod kubeconfig;
mod node;
mod problem;
mod reads;
mod relations;
mod roll;
mod skew;
mod snaps;
mod unit_state;
mod upgrade;
mod validate;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod today;
mod worker;

use std::process::ExitCode;

use charm::HookContext;
use log::LevelFilter;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Juju runs hooks with no arguments; with arguments, an operator runs
    // a check by hand.
    if cli::wants(&args) {
        return cli::run(&args);
    }
    let argv0 = std::env::args().next();
    let ctx = match HookContext::from_env(argv0.as_deref()) {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("kubernetes-worker: {e}");
            return ExitCode::FAILURE;
        }
    };
    charm::logging::init(Some(LevelFilter::Info));
    let started = std::time::Instant::now();
    let code = match worker::handle(&ctx) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{} failed: {e}", ctx.event.name());
            ExitCode::FAILURE
        }
    };
    report_cost(&ctx.event.name(), started);
    code
}

/// One routine line (stdout, which the agent logs at DEBUG) with what the
/// hook cost this process itself: wall time, CPU and peak memory, the
/// hook tools and other programs it ran not included.
fn report_cost(event: &str, started: std::time::Instant) {
    use nix::sys::resource::{getrusage, UsageWho};
    use nix::sys::time::TimeValLike;
    let Ok(usage) = getrusage(UsageWho::RUSAGE_SELF) else {
        return;
    };
    log::debug!(
        "{event} done: wall {} us, cpu user {} us sys {} us, peak rss {} KiB",
        started.elapsed().as_micros(),
        usage.user_time().num_microseconds(),
        usage.system_time().num_microseconds(),
        peak_rss_kib().unwrap_or(0)
    );
}

/// This image's peak resident memory. Not getrusage's ru_maxrss: that keeps
/// the high-water mark of the image before exec, i.e. of the forked agent.
/// This is the process's own accounting, not machine state, so it is read
/// from the real /proc, not under the machine root.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
