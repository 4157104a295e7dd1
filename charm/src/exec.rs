//! Running other programs (hook tools, `snap`, `systemctl`) with their output
//! captured, so that a failure can say what ran and what it printed, and
//! with a deadline: a hook holds the machine lock, so a wedged snapd or
//! tool must not hold every other charm on the machine with it.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use thiserror::Error;

/// A finished program that exited 0.
#[derive(Debug, Clone)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

#[derive(Debug, Error)]
pub enum ExecError {
    #[error("could not run {program} {}: {source}", args.join(" "))]
    Spawn {
        program: String,
        args: Vec<String>,
        source: std::io::Error,
    },
    #[error("{program} {} {}: {}", args.join(" "), exit_text(*code), first_line(stderr))]
    Failed {
        program: String,
        args: Vec<String>,
        /// `None` when killed by a signal.
        code: Option<i32>,
        stderr: String,
        stdout: Vec<u8>,
    },
    /// It did not finish within its deadline; it and everything it started
    /// in its process group were killed.
    #[error("{program} {}: no answer within {after:?}; stopped it", args.join(" "))]
    TimedOut {
        program: String,
        args: Vec<String>,
        after: Duration,
    },
}

impl ExecError {
    /// The exit code of a program that ran and failed.
    pub fn code(&self) -> Option<i32> {
        match self {
            ExecError::Failed { code, .. } => *code,
            ExecError::Spawn { .. } | ExecError::TimedOut { .. } => None,
        }
    }

    /// Whether the program was stopped at its deadline.
    pub fn timed_out(&self) -> bool {
        matches!(self, ExecError::TimedOut { .. })
    }

    /// What the program printed on stderr, if it ran.
    pub fn stderr(&self) -> &str {
        match self {
            ExecError::Failed { stderr, .. } => stderr,
            ExecError::Spawn { .. } | ExecError::TimedOut { .. } => "",
        }
    }
}

fn exit_text(code: Option<i32>) -> String {
    match code {
        Some(code) => format!("exited {code}"),
        None => "was killed by a signal".to_string(),
    }
}

/// The message a tool printed, without Go's `ERROR ` prefix and trailing
/// whitespace; the whole text when there is no single line.
fn first_line(stderr: &str) -> String {
    let text = stderr.trim();
    if text.is_empty() {
        return "(no output on stderr)".to_string();
    }
    text.strip_prefix("ERROR ").unwrap_or(text).to_string()
}

/// How long one kind of call may take before it is stopped.
pub mod deadline {
    use std::time::Duration;

    /// A hook tool: the agent answers in milliseconds; seconds mean it is
    /// wedged.
    pub const HOOK_TOOL: Duration = Duration::from_secs(60);
    /// `resource-get` downloads the file from the controller on first use.
    pub const DOWNLOAD: Duration = Duration::from_secs(15 * 60);
    /// A query of the machine (`systemctl is-active`, `snap list`,
    /// `unsquashfs -cat`, `sysctl`).
    pub const QUERY: Duration = Duration::from_secs(60);
    /// A name lookup (`getent`): the resolver's own timeouts (5 s a try,
    /// two tries) with room for a second nameserver.
    pub const LOOKUP: Duration = Duration::from_secs(25);
    /// A change snapd or systemd makes: `snap set` runs the snap's configure
    /// hook, a restart waits for the old process to stop (systemd gives it
    /// 90 s).
    pub const CHANGE: Duration = Duration::from_secs(5 * 60);
    /// `snap install` / `refresh`: a download from the store.
    pub const INSTALL: Duration = Duration::from_secs(15 * 60);
}

/// Caps every deadline, in milliseconds: for tests that need a wedged
/// program to be given up on quickly. Juju replaces a hook's environment,
/// so it is never set in a deployed charm by accident.
pub const DEADLINE_CAP_VAR: &str = "CHARM_EXEC_DEADLINE_CAP_MS";

fn capped(limit: Duration) -> Duration {
    std::env::var(DEADLINE_CAP_VAR)
        .ok()
        .and_then(|ms| ms.parse::<u64>().ok())
        .map_or(limit, |ms| limit.min(Duration::from_millis(ms)))
}

/// Runs `program` (looked up on `PATH`) with `args`, feeding `stdin` if given
/// (otherwise stdin is /dev/null), and returns its output if it exited 0.
/// Past `limit` the program's process group is killed and the call is
/// [`ExecError::TimedOut`].
pub fn run<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    stdin: Option<&[u8]>,
    limit: Duration,
) -> Result<Output, ExecError> {
    let limit = capped(limit);
    let printable: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    let spawn_error = |source| ExecError::Spawn {
        program: program.to_string(),
        args: printable.clone(),
        source,
    };
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that the kill at the deadline reaches
        // whatever it started too.
        .process_group(0)
        .spawn()
        .map_err(spawn_error)?;
    let pid = child.id();
    let feeder = match (stdin, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            // Fed from a thread, so that a program that writes a lot before
            // it reads cannot deadlock against us. A program may exit
            // without reading all of stdin; its exit status is what counts,
            // so a broken pipe is not an error of its own.
            Some(std::thread::spawn(move || drop(pipe.write_all(&data))))
        }
        _ => None,
    };
    // One thread collects the output (std reads both pipes together) and
    // the exit status; this one waits for it with the deadline.
    let (tx, rx) = mpsc::channel();
    let collector = std::thread::spawn(move || drop(tx.send(child.wait_with_output())));
    let output = match rx.recv_timeout(limit.saturating_sub(started.elapsed())) {
        Ok(output) => {
            // Both are done or about to be: no thread outlives the call, so
            // the next spawn never forks a process with threads in flight
            // (which qemu-user, emulating the fork, can deadlock on).
            let _ = collector.join();
            // A feeder still blocked (something the program left behind
            // holds stdin) is left to end with the process.
            if let Some(feeder) = feeder.filter(|f| f.is_finished()) {
                let _ = feeder.join();
            }
            output.map_err(spawn_error)?
        }
        Err(_) => {
            kill_group(pid);
            return Err(ExecError::TimedOut {
                program: program.to_string(),
                args: printable,
                after: limit,
            });
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if output.status.success() {
        Ok(Output {
            stdout: output.stdout,
            stderr,
        })
    } else {
        Err(ExecError::Failed {
            program: program.to_string(),
            args: printable,
            code: output.status.code(),
            stderr,
            stdout: output.stdout,
        })
    }
}

/// Records the hook's intent (see [`crate::intent`]) before running a
/// program that changes the machine; failing to record it fails the call.
pub(crate) fn before_change(program: &str, what: &str) -> Result<(), ExecError> {
    crate::intent::before_change().map_err(|e| ExecError::Spawn {
        program: program.to_string(),
        args: vec![what.to_string()],
        source: std::io::Error::other(e.to_string()),
    })
}

/// SIGKILL to the program's process group. The waiting thread reaps the
/// program itself when it dies, so the group id is not reused before this.
fn kill_group(pid: u32) {
    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;
    if let Ok(pid) = i32::try_from(pid) {
        // Already gone is fine: nothing is left to stop. The program itself
        // too, in case it never got as far as making its group.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn captures_stdout_and_feeds_stdin() {
        let out = run("sh", &["-c", "cat; echo done >&2"], Some(b"hello"), SECOND).unwrap();
        assert_eq!(out.stdout, b"hello");
        assert_eq!(out.stderr, "done\n");
    }

    #[test]
    fn failure_carries_program_args_code_and_stderr() {
        let err = run("sh", &["-c", "echo 'ERROR boom' >&2; exit 3"], None, SECOND).unwrap_err();
        assert_eq!(err.code(), Some(3));
        assert_eq!(err.stderr(), "ERROR boom\n");
        let text = err.to_string();
        assert!(text.contains("sh -c"), "{text}");
        assert!(text.contains("exited 3"), "{text}");
        assert!(text.ends_with("boom"), "{text}");
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err = run("no-such-program-here", &["x"], None, SECOND).unwrap_err();
        assert!(matches!(err, ExecError::Spawn { .. }));
        assert!(err.to_string().contains("no-such-program-here x"));
    }

    #[test]
    fn large_stdin_does_not_deadlock() {
        let data = vec![b'x'; 1 << 20];
        let out = run("sh", &["-c", "cat"], Some(&data), SECOND * 10).unwrap();
        assert_eq!(out.stdout.len(), data.len());
    }

    #[test]
    fn a_program_past_its_deadline_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child");
        let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
        let started = Instant::now();
        let err = run("sh", &["-c", &script], None, Duration::from_millis(300)).unwrap_err();
        assert!(err.timed_out(), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(err.to_string().contains("no answer within 300ms"), "{err}");
        // The grandchild (same process group) is gone too.
        let child: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let gone = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            // Dead, or a zombie waiting for its parent (which is dead too).
            stat.is_empty() || stat.split_whitespace().nth(2) == Some("Z")
        });
        assert!(gone, "sleep {child} still running");
    }

    #[test]
    fn a_grandchild_holding_the_pipes_does_not_hold_the_caller() {
        // The program exits but leaves a process behind with its stdout:
        // the output never ends, and the deadline still applies.
        let started = Instant::now();
        let err = run(
            "sh",
            &["-c", "sleep 300 & echo hi"],
            None,
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(err.timed_out(), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_quick_program_is_not_held_to_the_deadline() {
        let started = Instant::now();
        let out = run("sh", &["-c", "echo ok"], None, Duration::from_secs(60)).unwrap();
        assert_eq!(out.stdout, b"ok\n");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
