//! The `cis-benchmark` action: the worker-node checks of the CIS
//! Kubernetes Benchmark, evaluated by the charm itself against this node
//! as kube-bench evaluates them ([`checks`], on what [`audit`] reads),
//! reported in kube-bench's text and JSON ([`report`]) under
//! `/home/ubuntu/kube-bench-results/`, as today's charm saves them. No
//! download, no kube-bench binary: it runs air-gapped on every
//! architecture the charm builds for.
//!
//! `apply` fixes what fails: `conservative` the files' modes and owners,
//! `dangerous` also kubelet's flags (through the flags the charm gives
//! kubelet, recorded in the journal so that every later hook keeps them).
//! `reset` undoes exactly what was applied.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use charm::files;
use serde::Deserialize;

use crate::daemons;
use crate::error::{Error, ToolContext};
use crate::facts::{FileChange, FileMode};
use crate::journal::JournalFile;
use crate::node::Node;
use crate::unit_state::Recorded;

mod audit;
mod checks;
#[cfg(test)]
mod referee;
mod report;
#[cfg(test)]
mod tests;

use checks::{Audit, File, State};

/// In the ubuntu user's home, where today's charm saves the reports.
pub const RESULTS_DIR: &str = "kube-bench-results";
/// That home, where the machine has no ubuntu account.
const HOME: &str = "/home/ubuntu";

#[derive(Deserialize)]
struct Params {
    #[serde(default = "none")]
    apply: String,
}

fn none() -> String {
    "none".into()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    None,
    Conservative,
    Dangerous,
    Reset,
}

/// Runs the benchmark, applies or resets as asked, and reports.
/// `configure` converges the node after kubelet's flags changed.
pub fn action(
    node: &Node,
    recorded: &mut Recorded,
    journal: &mut JournalFile,
    id: &str,
    configure: &mut dyn FnMut(&mut Recorded, &mut JournalFile) -> Result<(), Error>,
) -> Result<(), Error> {
    let tools = node.tools;
    let params: Params = tools
        .action_get()
        .doing("reading the action's parameters")?;
    let level = match params.apply.as_str() {
        "none" => Level::None,
        "conservative" => Level::Conservative,
        "dangerous" => Level::Dangerous,
        "reset" => Level::Reset,
        other => {
            return tools
                .action_fail(&format!(
                    "Invalid \"apply\" parameter: {}; use none, conservative, dangerous or reset",
                    crate::validate::quoted(other)
                ))
                .doing("failing the action")
        }
    };
    if level == Level::Reset {
        let undone = reset(node, recorded, journal, configure)?;
        let results = BTreeMap::from([
            (
                "summary".to_string(),
                "Reset is complete. Re-run with \"apply=none\" to generate a new report."
                    .to_string(),
            ),
            ("undone".to_string(), list_or_none(&undone)),
        ]);
        return tools
            .action_set(&results)
            .doing("reporting the action's results");
    }
    let audited = audit::Audited::read(node.root);
    let report = report::run(&audited);
    let (mut results, refused) = match save(node, &report, id)? {
        Saved::Written(results) => (results, None),
        Saved::Refused(results, why) => (results, Some(why)),
    };
    if level != Level::None {
        let flags_before = recorded.journal.cis.kubelet_flags.clone();
        let (applied, left) = apply(node, recorded, journal, &audited, &report, level)?;
        if recorded.journal.cis.kubelet_flags != flags_before {
            configure(recorded, journal)?;
        }
        results.insert(
            "summary".into(),
            format!(
                "Applied {} remediations. Re-run with \"apply=none\" to generate a new report.",
                applied.len()
            ),
        );
        results.insert("applied".into(), list_or_none(&applied));
        results.insert("not-applied".into(), list_or_none(&left));
    }
    log::info!(
        "CIS benchmark {}: {} pass, {} fail, {} warn, {} info",
        checks::VERSION,
        report.counts.pass,
        report.counts.fail,
        report.counts.warn,
        report.counts.info
    );
    tools
        .action_set(&results)
        .doing("reporting the action's results")?;
    match refused {
        Some(why) => tools.action_fail(&why).doing("failing the action"),
        None => Ok(()),
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join("; ")
    }
}

/// Writes the text and JSON reports in the ubuntu user's
/// `kube-bench-results` (where `juju scp` fetches them as that user); the
/// action's results that say where they are and what they hold. The user
/// owns that directory: they are written by descriptor, never through a
/// link placed there, and a directory that is not as it should be is
/// refused with the reason (the reports' findings are in the results
/// anyway).
fn save(node: &Node, report: &report::Report, id: &str) -> Result<Saved, Error> {
    let mut results = BTreeMap::from([
        ("summary".into(), report.summary()),
        ("checks".into(), report.not_passed()),
        ("benchmark".into(), checks::VERSION.into()),
    ]);
    // Where today's charm saves them. With no ubuntu account (not a
    // cloud image), no user controls that path: root keeps the reports.
    let ubuntu = match node.ubuntu_user()? {
        Some(ubuntu) => ubuntu,
        None => {
            files::ensure_dir(&node.root.path(HOME), 0o755)?;
            crate::node::config_files::Account {
                owner: files::Owner { uid: 0, gid: 0 },
                home: HOME.into(),
            }
        }
    };
    let home = node.root.path(&ubuntu.home);
    for (kind, key, body) in [
        ("text", "report", report.text()),
        ("json", "report-json", report.json()),
    ] {
        let file = format!("results-{kind}-{id}");
        let path = format!("{}/{RESULTS_DIR}/{file}", ubuntu.home.trim_end_matches('/'));
        match files::write_in_owned_dir(
            &home,
            RESULTS_DIR,
            &file,
            body.as_bytes(),
            0o644,
            ubuntu.owner,
        ) {
            Ok(_) => {}
            Err(e) if e.action == files::REFUSED => {
                log::warn!("not saving the CIS reports: {e}");
                return Ok(Saved::Refused(
                    results,
                    format!("the reports were not saved: {e}"),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        results.insert(key.into(), format!("juju scp {}:{path} .", node.unit));
    }
    Ok(Saved::Written(results))
}

/// The reports saved, or why not (the action then fails, its findings in
/// its results).
enum Saved {
    Written(BTreeMap<String, String>),
    Refused(BTreeMap<String, String>, String),
}

/// The mode each file the charm writes has (what every hook gives it
/// back): a file check on one of these is fixed by giving it that mode,
/// and not recorded, since it is not a change away from the charm's
/// configuration.
fn charm_mode(path: &str) -> Option<u32> {
    match path {
        daemons::CA | daemons::KUBELET_CONFIG => Some(0o644),
        daemons::KUBELET_KUBECONFIG | daemons::PROXY_KUBECONFIG => Some(0o600),
        _ => None,
    }
}

/// kubelet's flags `dangerous` sets, by check: today's charm's.
const KUBELET_REMEDIES: [(&str, &str, &str); 2] = [
    ("4.2.9", "event-qps", "0"),
    ("4.2.13", "tls-cipher-suites", checks::STRONG_CIPHERS),
];

/// Fixes what failed or warned and can be fixed at this level. Returns
/// what it applied and what it left, each with its check's number.
fn apply(
    node: &Node,
    recorded: &mut Recorded,
    journal: &mut JournalFile,
    audited: &audit::Audited,
    report: &report::Report,
    level: Level,
) -> Result<(Vec<String>, Vec<String>), Error> {
    let (mut applied, mut left) = (Vec::new(), Vec::new());
    let operator_flags = recorded
        .options
        .as_ref()
        .map(|o| o.kubelet_extra_args.clone())
        .unwrap_or_default();
    for finding in &report.findings {
        if !matches!(finding.outcome.state, State::Fail | State::Warn) {
            continue;
        }
        let id = finding.check.id;
        match finding.check.audit {
            Audit::Mode(file) | Audit::Owner(file) => {
                let owner = matches!(finding.check.audit, Audit::Owner(_));
                match fix_file(node, recorded, journal, audited, file, owner)? {
                    Ok(done) => applied.push(format!("{id}: {done}")),
                    Err(why) => left.push(format!("{id}: {why}")),
                }
            }
            Audit::Kubelet { .. } => {
                let remedy = KUBELET_REMEDIES.iter().find(|(check, ..)| *check == id);
                match (remedy, level) {
                    (Some((_, flag, _)), _) if operator_flags.contains_key(*flag) => left.push(
                        format!("{id}: kubelet-extra-args sets {flag}; change it there"),
                    ),
                    (Some((_, flag, value)), Level::Dangerous) => {
                        recorded
                            .journal
                            .cis
                            .kubelet_flags
                            .insert(flag.to_string(), value.to_string());
                        journal.persist(&recorded.journal)?;
                        applied.push(format!("{id}: kubelet --{flag}={value}"));
                    }
                    (Some(_), _) => {
                        left.push(format!("{id}: changes kubelet's flags (apply=dangerous)"))
                    }
                    (None, _) => left.push(format!("{id}: no remediation the charm can apply")),
                }
            }
        }
    }
    Ok((applied, left))
}

/// Gives a file the mode or owner its check asks for: the charm's own
/// files the mode the charm writes them with; others their mode without
/// the bits 644 does not allow, or root:root, recorded ahead for reset.
fn fix_file(
    node: &Node,
    recorded: &mut Recorded,
    journal: &mut JournalFile,
    audited: &audit::Audited,
    file: File,
    owner: bool,
) -> Result<Result<String, String>, Error> {
    let Some(path) = audited.paths.get(&file) else {
        return Ok(Err("the file does not exist".into()));
    };
    // As it is now: an earlier check's fix may have changed it.
    let Some(before) = current_mode(node, path) else {
        return Ok(Err("the file does not exist".into()));
    };
    let ours = charm_mode(path);
    let after = if owner {
        FileMode {
            uid: 0,
            gid: 0,
            ..before
        }
    } else {
        FileMode {
            mode: ours.unwrap_or(before.mode & 0o644),
            ..before
        }
    };
    if ours.is_none() {
        // A second apply keeps what the file had before the first.
        let files = &mut recorded.journal.cis.files;
        let first_before = files.get(path).map_or(before, |change| change.before);
        files.insert(
            path.clone(),
            FileChange {
                before: first_before,
                after,
            },
        );
        journal.persist(&recorded.journal)?;
    }
    set_mode(node, path, after)?;
    Ok(Ok(if owner {
        format!("chown root:root {path}")
    } else {
        format!("chmod {:o} {path}", after.mode)
    }))
}

fn current_mode(node: &Node, path: &str) -> Option<FileMode> {
    std::fs::metadata(node.root.path(path))
        .ok()
        .map(|m| FileMode {
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
        })
}

fn set_mode(node: &Node, path: &str, to: FileMode) -> Result<(), Error> {
    let full = node.root.path(path);
    let failed = |doing: &str, e: std::io::Error| Error::Io {
        doing: format!("{doing} {path}"),
        source: e,
    };
    charm::intent::before_change()?;
    let meta = std::fs::metadata(&full).map_err(|e| failed("inspecting", e))?;
    if meta.uid() != to.uid || meta.gid() != to.gid {
        std::os::unix::fs::chown(&full, Some(to.uid), Some(to.gid))
            .map_err(|e| failed("changing the owner of", e))?;
    }
    if meta.mode() & 0o7777 != to.mode {
        std::fs::set_permissions(&full, std::fs::Permissions::from_mode(to.mode))
            .map_err(|e| failed("changing the mode of", e))?;
    }
    log::info!(
        "cis-benchmark: {path} now mode {:o}, owner {}:{}",
        to.mode,
        to.uid,
        to.gid
    );
    Ok(())
}

/// Undoes what apply recorded: kubelet's flags go (and the node is
/// converged without them); each file gets back the mode and owner it
/// had, where it still has what apply gave it (a file changed since is
/// left as it is). Returns what it undid.
fn reset(
    node: &Node,
    recorded: &mut Recorded,
    journal: &mut JournalFile,
    configure: &mut dyn FnMut(&mut Recorded, &mut JournalFile) -> Result<(), Error>,
) -> Result<Vec<String>, Error> {
    let mut undone = Vec::new();
    let files = recorded.journal.cis.files.clone();
    for (path, change) in &files {
        if current_mode(node, path) == Some(change.after) {
            set_mode(node, path, change.before)?;
            undone.push(format!(
                "{path}: mode {:o}, owner {}:{}",
                change.before.mode, change.before.uid, change.before.gid
            ));
        } else {
            log::info!("cis-benchmark reset: {path} changed since it was applied; left as it is");
        }
    }
    let flags = std::mem::take(&mut recorded.journal.cis.kubelet_flags);
    recorded.journal.cis.files.clear();
    journal.persist(&recorded.journal)?;
    for flag in flags.keys() {
        undone.push(format!("kubelet --{flag}"));
    }
    if !flags.is_empty() {
        configure(recorded, journal)?;
    }
    Ok(undone)
}
