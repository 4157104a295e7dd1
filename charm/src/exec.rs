//! Running other programs (hook tools, `snap`, `systemctl`) with their output
//! captured, so that a failure can say what ran and what it printed, and
//! with a deadline: a hook holds the machine lock, so a wedged snapd or
//! tool must not hold every other charm on the machine with it.

use std::ffi::OsStr;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

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
    /// It started, but its pipes could not be polled or read; it and
    /// everything it started were killed.
    #[error("{program} {}: lost contact with it ({source}); stopped it", args.join(" "))]
    Lost {
        program: String,
        args: Vec<String>,
        source: std::io::Error,
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
            ExecError::Spawn { .. } | ExecError::Lost { .. } | ExecError::TimedOut { .. } => None,
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
            ExecError::Spawn { .. } | ExecError::Lost { .. } | ExecError::TimedOut { .. } => "",
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
///
/// One thread does it all (`poll` on the pipes, then the exit status): a
/// hook never forks while another of its threads runs or is exiting.
/// qemu-user, which the suites run three architectures' binaries in,
/// emulates a fork beside other threads poorly (a hook tool call once
/// went unanswered for 60 s there, with a thread a call), and a thread a
/// call cost a hook there about as much as the call itself.
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
    let mut pipes = Pipes {
        input: child.stdin.take().zip(stdin),
        fed: 0,
        stdout: child.stdout.take(),
        stderr: child.stderr.take(),
        out: Vec::new(),
        err: Vec::new(),
    };
    let finished = pipes.drain(started, limit).and_then(|closed| {
        if closed {
            exited_by(&mut child, started, limit)
        } else {
            Ok(None)
        }
    });
    let status = match finished {
        Ok(Some(status)) => status,
        Ok(None) => {
            kill_group(pid);
            reap(&mut child);
            return Err(ExecError::TimedOut {
                program: program.to_string(),
                args: printable,
                after: limit,
            });
        }
        Err(source) => {
            kill_group(pid);
            reap(&mut child);
            return Err(ExecError::Lost {
                program: program.to_string(),
                args: printable,
                source,
            });
        }
    };
    let stderr = String::from_utf8_lossy(&pipes.err).into_owned();
    if status.success() {
        Ok(Output {
            stdout: pipes.out,
            stderr,
        })
    } else {
        Err(ExecError::Failed {
            program: program.to_string(),
            args: printable,
            code: status.code(),
            stderr,
            stdout: pipes.out,
        })
    }
}

/// The child's three pipes, as far as they are still open, and what came
/// through them.
struct Pipes<'a> {
    input: Option<(ChildStdin, &'a [u8])>,
    fed: usize,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    out: Vec<u8>,
    err: Vec<u8>,
}

impl Pipes<'_> {
    /// Feeds stdin and reads both outputs until all three are closed
    /// (true) or the deadline passes (false).
    fn drain(&mut self, started: Instant, limit: Duration) -> std::io::Result<bool> {
        for fd in [
            self.input.as_ref().map(|(p, _)| p.as_fd()),
            self.stdout.as_ref().map(|p| p.as_fd()),
            self.stderr.as_ref().map(|p| p.as_fd()),
        ]
        .into_iter()
        .flatten()
        {
            nonblocking(fd)?;
        }
        if self.input.as_ref().is_some_and(|(_, data)| data.is_empty()) {
            self.input = None;
        }
        while self.input.is_some() || self.stdout.is_some() || self.stderr.is_some() {
            let left = limit.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Ok(false);
            }
            let [input, stdout, stderr] = self.wait_ready(left)?;
            if input {
                self.feed()?;
            }
            if stdout {
                read_available(&mut self.stdout, &mut self.out)?;
            }
            if stderr {
                read_available(&mut self.stderr, &mut self.err)?;
            }
        }
        Ok(true)
    }

    /// Which of stdin, stdout and stderr can be written or read now (or
    /// were closed at the other end), waiting at most `left`.
    fn wait_ready(&self, left: Duration) -> std::io::Result<[bool; 3]> {
        let done = PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL;
        let mut fds = Vec::with_capacity(3);
        let mut slots = [None; 3];
        let wanted = [
            (
                self.input.as_ref().map(|(p, _)| p.as_fd()),
                PollFlags::POLLOUT,
            ),
            (self.stdout.as_ref().map(|p| p.as_fd()), PollFlags::POLLIN),
            (self.stderr.as_ref().map(|p| p.as_fd()), PollFlags::POLLIN),
        ];
        for (slot, (fd, events)) in wanted.into_iter().enumerate() {
            if let Some(fd) = fd {
                slots[slot] = Some(fds.len());
                fds.push(PollFd::new(fd, events));
            }
        }
        // Rounded up, so that a wait never ends just short of the deadline.
        let millis = left.as_millis().saturating_add(1).min(i32::MAX as u128);
        let timeout = PollTimeout::try_from(millis as i32).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(std::io::Error::from(e)),
        }
        Ok(slots.map(|slot| {
            slot.and_then(|i| fds[i].revents())
                .is_some_and(|r| r.intersects(done | PollFlags::POLLIN | PollFlags::POLLOUT))
        }))
    }

    /// Writes what stdin takes now; closes it when all is written or the
    /// program stopped reading (its exit status is what counts, so a
    /// program that exits without reading all of stdin is no error here).
    fn feed(&mut self) -> std::io::Result<()> {
        let Some((pipe, data)) = &mut self.input else {
            return Ok(());
        };
        while self.fed < data.len() {
            match pipe.write(&data[self.fed..]) {
                Ok(0) => break,
                Ok(n) => self.fed += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::BrokenPipe => break,
                Err(e) => return Err(e),
            }
        }
        self.input = None;
        Ok(())
    }
}

/// Reads what `pipe` holds now into `into`; closes it at end of file.
fn read_available<R: Read>(pipe: &mut Option<R>, into: &mut Vec<u8>) -> std::io::Result<()> {
    let Some(reader) = pipe else {
        return Ok(());
    };
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => {
                *pipe = None;
                return Ok(());
            }
            Ok(n) => into.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn nonblocking(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL).map_err(std::io::Error::from)?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags)).map_err(std::io::Error::from)?;
    Ok(())
}

/// The exit status once the program has closed its outputs: almost always
/// at once; a program that closed them and went on is given until the
/// deadline (None past it).
fn exited_by(
    child: &mut Child,
    started: Instant,
    limit: Duration,
) -> std::io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_micros(200);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let left = limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Ok(None);
        }
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Collects a killed program's exit, for a moment: one that cannot die
/// (stuck in the kernel) is left behind rather than holding the hook.
fn reap(child: &mut Child) {
    for _ in 0..100 {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
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

/// SIGKILL to the program's process group. The program is reaped only
/// after this, so its group id cannot have been reused.
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
    fn outputs_that_never_end_or_a_program_that_never_exits_meet_the_deadline() {
        for script in [
            // The program exits but leaves a process behind with its
            // stdout: the output never ends.
            "sleep 300 & echo hi",
            // It closes its outputs and goes on: no exit.
            "exec >&- 2>&-; sleep 300",
        ] {
            let started = Instant::now();
            let err = run("sh", &["-c", script], None, Duration::from_millis(300)).unwrap_err();
            assert!(err.timed_out(), "{script}: {err}");
            assert!(started.elapsed() < Duration::from_secs(5), "{script}");
        }
    }

    #[test]
    fn empty_stdin_is_closed_at_once_and_both_outputs_are_kept_apart() {
        let script = "cat; head -c 200000 /dev/zero; head -c 100000 /dev/zero >&2";
        let out = run("sh", &["-c", script], Some(b""), SECOND * 10).unwrap();
        assert_eq!(out.stdout.len(), 200_000);
        assert_eq!(out.stderr.len(), 100_000);
    }

    #[test]
    fn a_program_that_reads_no_stdin_is_judged_by_its_exit_status() {
        let data = vec![b'x'; 1 << 20];
        let out = run("sh", &["-c", "echo ok"], Some(&data), SECOND * 10).unwrap();
        assert_eq!(out.stdout, b"ok\n");
        let err = run("sh", &["-c", "exit 4"], Some(&data), SECOND * 10).unwrap_err();
        assert_eq!(err.code(), Some(4));
    }

    #[test]
    fn a_quick_program_is_not_held_to_the_deadline() {
        let started = Instant::now();
        let out = run("sh", &["-c", "echo ok"], None, Duration::from_secs(60)).unwrap();
        assert_eq!(out.stdout, b"ok\n");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
