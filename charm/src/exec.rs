//! Running other programs (hook tools, `snap`, `systemctl`) with their output
//! captured, so that a failure can say what ran and what it printed.

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Stdio};

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
}

impl ExecError {
    /// The exit code of a program that ran and failed.
    pub fn code(&self) -> Option<i32> {
        match self {
            ExecError::Failed { code, .. } => *code,
            ExecError::Spawn { .. } => None,
        }
    }

    /// What the program printed on stderr, if it ran.
    pub fn stderr(&self) -> &str {
        match self {
            ExecError::Failed { stderr, .. } => stderr,
            ExecError::Spawn { .. } => "",
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

/// Runs `program` (looked up on `PATH`) with `args`, feeding `stdin` if given
/// (otherwise stdin is /dev/null), and returns its output if it exited 0.
pub fn run<S: AsRef<OsStr>>(
    program: &str,
    args: &[S],
    stdin: Option<&[u8]>,
) -> Result<Output, ExecError> {
    let printable: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    let spawn_error = |source| ExecError::Spawn {
        program: program.to_string(),
        args: printable.clone(),
        source,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    // Feed stdin from a thread so a program that writes a lot before it reads
    // cannot deadlock against us.
    let feeder = match (stdin, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            Some(std::thread::spawn(move || pipe.write_all(&data)))
        }
        _ => None,
    };
    let output = child.wait_with_output().map_err(spawn_error)?;
    if let Some(feeder) = feeder {
        // A program may exit without reading all of stdin; its exit status is
        // what counts, so a broken pipe here is not an error of its own.
        let _ = feeder.join();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_stdout_and_feeds_stdin() {
        let out = run("sh", &["-c", "cat; echo done >&2"], Some(b"hello")).unwrap();
        assert_eq!(out.stdout, b"hello");
        assert_eq!(out.stderr, "done\n");
    }

    #[test]
    fn failure_carries_program_args_code_and_stderr() {
        let err = run("sh", &["-c", "echo 'ERROR boom' >&2; exit 3"], None).unwrap_err();
        assert_eq!(err.code(), Some(3));
        assert_eq!(err.stderr(), "ERROR boom\n");
        let text = err.to_string();
        assert!(text.contains("sh -c"), "{text}");
        assert!(text.contains("exited 3"), "{text}");
        assert!(text.ends_with("boom"), "{text}");
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err = run("no-such-program-here", &["x"], None).unwrap_err();
        assert!(matches!(err, ExecError::Spawn { .. }));
        assert!(err.to_string().contains("no-such-program-here x"));
    }

    #[test]
    fn large_stdin_does_not_deadlock() {
        let data = vec![b'x'; 1 << 20];
        let out = run("sh", &["-c", "cat"], Some(&data)).unwrap();
        assert_eq!(out.stdout.len(), data.len());
    }
}
