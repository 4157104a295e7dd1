//! The binary run by hand, outside Juju: check a resource before attaching
//! it, with the same checks the charm makes at install time.
//!
//! ```text
//! kubernetes-worker check-cni <cni.tgz> [--arch <arch>]
//! kubernetes-worker check-snap <file.snap> --name <kubectl|kubelet|kube-proxy> [--arch <arch>]
//! ```
//!
//! `--arch` defaults to this machine's. Exit 0: the charm would accept it;
//! 1: it would refuse it (the reason is printed); 2: bad usage.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::arch::{self, Arch};
use crate::cni::archive;
use crate::snaps;

const USAGE: &str = "usage:
  kubernetes-worker check-cni <cni.tgz> [--arch amd64|s390x|arm64|ppc64el]
  kubernetes-worker check-snap <file.snap> --name kubectl|kubelet|kube-proxy [--arch ...]";

/// Whether `args` (without argv[0]) ask for a command of this module.
pub fn wants(args: &[String]) -> bool {
    matches!(
        args.first().map(String::as_str),
        Some("check-cni" | "check-snap" | "--help" | "-h")
    )
}

pub fn run(args: &[String]) -> ExitCode {
    match parse(args) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(command) => match check(command) {
            Ok(verdict) => {
                println!("{verdict}");
                ExitCode::SUCCESS
            }
            Err(problem) => {
                eprintln!("{problem}");
                ExitCode::from(1)
            }
        },
        Err(usage) => {
            eprintln!("{usage}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

enum Command {
    Help,
    Cni {
        file: PathBuf,
        arch: Arch,
    },
    Snap {
        file: PathBuf,
        name: String,
        arch: Arch,
    },
}

fn parse(args: &[String]) -> Result<Command, String> {
    let (command, rest) = args.split_first().ok_or("no command")?;
    if command == "--help" || command == "-h" {
        return Ok(Command::Help);
    }
    let mut file = None;
    let mut name = None;
    let mut arch = None;
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--arch" => {
                let value = it.next().ok_or("--arch needs a value")?;
                arch = Some(
                    Arch::ALL
                        .into_iter()
                        .find(|a| a.name() == value)
                        .ok_or_else(|| format!("unknown architecture {value:?}"))?,
                );
            }
            "--name" => name = Some(it.next().ok_or("--name needs a value")?.clone()),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            path if file.is_none() => file = Some(PathBuf::from(path)),
            extra => return Err(format!("unexpected argument {extra:?}")),
        }
    }
    let file = file.ok_or("no file given")?;
    let arch = match arch {
        Some(arch) => arch,
        None => match arch::detect() {
            (_, Some(arch)) => arch,
            (machine, None) => {
                return Err(format!(
                    "this machine ({machine}) is not supported; give --arch"
                ))
            }
        },
    };
    match command.as_str() {
        "check-cni" => Ok(Command::Cni { file, arch }),
        "check-snap" => {
            let name = name.ok_or("check-snap needs --name")?;
            if !snaps::SNAPS.contains(&name.as_str()) {
                return Err(format!("--name must be one of {}", snaps::SNAPS.join(", ")));
            }
            Ok(Command::Snap { file, name, arch })
        }
        other => Err(format!("unknown command {other}")),
    }
}

fn check(command: Command) -> Result<String, String> {
    match command {
        Command::Help => Ok(USAGE.into()),
        Command::Cni { file, arch } => {
            let resource = format!("cni-{arch}");
            let staging =
                tempfile::tempdir().map_err(|e| format!("cannot make a scratch directory: {e}"))?;
            match archive::unpack(&file, staging.path(), arch.name()) {
                Ok(Ok(unpacked)) => Ok(format!(
                    "OK: {} as {resource}: {} {arch} plugins ({})",
                    file.display(),
                    unpacked.plugins.len(),
                    unpacked.plugins.into_iter().collect::<Vec<_>>().join(", ")
                )),
                Ok(Err(refusal)) => Err(refusal.message(&resource)),
                Err((doing, e)) => Err(format!("{doing}: {e}")),
            }
        }
        Command::Snap { file, name, arch } => match snaps::check_file(&name, &file, arch) {
            None => Ok(format!(
                "OK: {} as the {name} resource for {arch}",
                file.display()
            )),
            Some(problem) => Err(problem),
        },
    }
}
