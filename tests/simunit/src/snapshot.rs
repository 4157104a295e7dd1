//! Hooks recorded with the unit's whole state at their start, so that a
//! test can run any one of them again from exactly there: failure
//! injection kills each hook at each of its calls without replaying every
//! hook before it, which made its cost grow with the square of the calls.
//!
//! The state is everything in the simulation's directory that a hook or a
//! test can change: `unit.json`, `machine.json`, the kill plan, the machine
//! root, the charm dir (less its binaries), the uploads. The tools and the
//! charm's binaries are left where they are: nothing changes them, and a
//! copy of a debug binary per hook would cost more than the hook.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::harness::{Event, HookRun, Sim};
use crate::kill::Moment;

/// A hook as it was about to run, with where its starting state is kept.
#[derive(Clone)]
pub struct HookStart {
    /// Its place among the recorded hooks, from 0.
    pub index: usize,
    /// The hook's (or action's) name.
    pub name: String,
    dir: PathBuf,
    event: Event,
}

/// What the observer of [`Sim::record_hooks`] is told.
pub enum Recorded<'a> {
    /// The hook is about to run; its state is saved.
    Before(&'a HookStart),
    /// It ran (and, if killed, was retried as the agent does).
    After(&'a HookStart, &'a HookRun),
}

type Observer = Box<dyn FnMut(&Sim, Recorded) + Send>;

pub(crate) struct Recorder {
    dir: PathBuf,
    count: usize,
    observer: Observer,
}

impl Recorder {
    pub(crate) fn before(&mut self, sim: &Sim, event: &Event) -> HookStart {
        let start = HookStart {
            index: self.count,
            name: event.name.clone(),
            dir: self.dir.join(self.count.to_string()),
            event: event.clone(),
        };
        self.count += 1;
        copy_state(&sim.layout().dir, &start.dir);
        (self.observer)(sim, Recorded::Before(&start));
        start
    }

    pub(crate) fn after(&mut self, sim: &Sim, start: &HookStart, run: &HookRun) {
        (self.observer)(sim, Recorded::After(start, run));
    }
}

impl Sim {
    /// From now on, saves the unit's state under `dir` at the start of
    /// every hook and action, and tells `observer` before and after each.
    pub fn record_hooks(&self, dir: &Path, observer: impl FnMut(&Sim, Recorded) + Send + 'static) {
        *self.recorder().lock().expect("recorder") = Some(Recorder {
            dir: dir.to_path_buf(),
            count: 0,
            observer: Box::new(observer),
        });
    }

    /// Stops what [`Sim::record_hooks`] started.
    pub fn stop_recording(&self) {
        *self.recorder().lock().expect("recorder") = None;
    }

    /// Puts the unit back in the state it had at `start` and runs that
    /// hook again, killed at its call `kill` (0-based, every tool and
    /// program call counted) if given; a killed hook is retried as the
    /// agent retries it. Whatever the test keeps outside the simulation
    /// (an API server) is the test's to put back.
    pub fn replay(&self, start: &HookStart, kill: Option<(u32, Moment)>) -> HookRun {
        let dir = &self.layout().dir;
        for entry in state_entries(dir) {
            remove(&entry);
        }
        copy_state(&start.dir, dir);
        if let Some((at, moment)) = kill {
            self.plan_kill(at, moment, None);
        }
        self.run_once(start.event.clone())
    }
}

/// The entries of a simulation's directory (or of a copy of one) that
/// hold state: all but the tools, the machine's programs and the charm's
/// binaries.
fn state_entries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the simulation's directory") {
        let entry = entry.expect("directory entry");
        let name = entry.file_name();
        if ["tools", "sbin", "sim"].iter().any(|n| name == *n) {
            continue;
        }
        if name == "charm" && entry.path().is_dir() {
            for inner in std::fs::read_dir(entry.path()).expect("read the charm dir") {
                let inner = inner.expect("directory entry");
                if inner.file_name() != "bin" {
                    out.push(inner.path());
                }
            }
        } else {
            out.push(entry.path());
        }
    }
    out
}

fn copy_state(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("charm")).expect("snapshot directory");
    for entry in state_entries(from) {
        let rel = entry.strip_prefix(from).expect("inside the directory");
        copy(&entry, &to.join(rel));
    }
}

fn remove(path: &Path) {
    let meta = path.symlink_metadata().expect("stat");
    if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
    .unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
}

/// Copies a file, link or tree keeping mode, owner and modification time,
/// as `cp -a` does.
fn copy(from: &Path, to: &Path) {
    let meta = from
        .symlink_metadata()
        .unwrap_or_else(|e| panic!("stat {}: {e}", from.display()));
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = std::fs::read_link(from).expect("readlink");
        std::os::unix::fs::symlink(target, to).expect("symlink");
    } else if kind.is_dir() {
        std::fs::create_dir(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
        for entry in std::fs::read_dir(from).expect("readdir") {
            let entry = entry.expect("entry");
            copy(&entry.path(), &to.join(entry.file_name()));
        }
    } else if kind.is_file() {
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        let file = std::fs::File::open(to).expect("open the copy");
        file.set_modified(meta.modified().expect("mtime"))
            .expect("set mtime");
    } else {
        panic!("{}: not a file, link or directory", from.display());
    }
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid())).expect("chown the copy");
    if !kind.is_symlink() {
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .expect("chmod the copy");
    }
}
