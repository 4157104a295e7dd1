//! A `log` backend for hooks.
//!
//! The agent logs a hook's stdout at DEBUG and its stderr at WARNING, and
//! every `juju-log` call is a process start and a round trip to the agent.
//! So each record goes where its level belongs: below WARN to stdout, WARN
//! and above to stderr (both through env_logger), and INFO and above also to
//! `juju-log`, which is what an operator reads in `juju debug-log`. Routine
//! detail is DEBUG and costs no tool call.

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::tools::{HookTools, LogLevel};

struct HookLogger {
    stdout: env_logger::Logger,
    stderr: env_logger::Logger,
    /// `None` outside a hook (no agent to talk to).
    juju: Option<(HookTools, LevelFilter)>,
}

impl Log for HookLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.stdout.enabled(metadata) || self.stderr.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if record.level() <= Level::Warn {
            self.stderr.log(record);
        } else {
            self.stdout.log(record);
        }
        let Some((tools, level)) = &self.juju else {
            return;
        };
        if record.level() > *level {
            return;
        }
        let juju_level = match record.level() {
            Level::Error => LogLevel::Error,
            Level::Warn => LogLevel::Warning,
            Level::Info => LogLevel::Info,
            Level::Debug | Level::Trace => LogLevel::Debug,
        };
        let message = record.args().to_string();
        // One argument may not exceed the kernel's 128 KiB (MAX_ARG_STRLEN):
        // a long value quoted in a message must not fail every later hook.
        let message = crate::quote::bounded(&message, JUJU_LOG_MAX);
        if let Err(e) = tools.juju_log(juju_level, &message) {
            // Not logged through `log`: that would recurse.
            eprintln!("juju-log failed ({e}); the message was: {message}");
        }
    }

    fn flush(&self) {
        self.stdout.flush();
        self.stderr.flush();
    }
}

/// The most characters of one message sent to `juju-log`.
pub const JUJU_LOG_MAX: usize = 8 * 1024;

fn env_logger_to(target: env_logger::Target, level: LevelFilter) -> env_logger::Logger {
    env_logger::Builder::new()
        .target(target)
        .filter_level(level)
        .format_timestamp(None)
        .format_target(false)
        .build()
}

/// Installs the hook logger. `juju_level` is the most verbose level that also
/// goes to `juju-log`; `None` when not running under an agent.
pub fn init(juju_level: Option<LevelFilter>) {
    let logger = HookLogger {
        stdout: env_logger_to(env_logger::Target::Stdout, LevelFilter::Debug),
        stderr: env_logger_to(env_logger::Target::Stderr, LevelFilter::Warn),
        juju: juju_level.map(|level| (HookTools, level)),
    };
    // Only fails if a logger is already installed, which leaves that one.
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(LevelFilter::Debug);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_juju_log_line_is_bounded() {
        let long = "x".repeat(200_000);
        assert!(crate::quote::bounded(&long, JUJU_LOG_MAX).len() < JUJU_LOG_MAX + 40);
    }
}
