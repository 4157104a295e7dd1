//! Snaps: the `snap` CLI for changes, and the metadata snapd lays out
//! (`/snap/<name>/current/meta/snap.yaml`) for what is installed, which
//! costs no process start.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::exec::{self, deadline, ExecError};
use crate::root::MachineRoot;

#[derive(Debug, thiserror::Error)]
pub enum SnapError {
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("{} is not a snap: it is not a squashfs image", path.display())]
    NotSquashfs { path: PathBuf },
    #[error("{}: cannot read meta/snap.yaml: {reason}", path.display())]
    BadMetadata { path: PathBuf, reason: String },
    #[error("{command} printed what it should not: {reason}")]
    BadOutput { command: String, reason: String },
    #[error("reading {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a snap says of itself in `meta/snap.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapMeta {
    pub name: String,
    pub version: String,
    /// `all` when the snap does not say.
    pub architectures: Vec<String>,
    pub confinement: String,
}

#[derive(Deserialize)]
struct RawSnapYaml {
    name: String,
    #[serde(default)]
    version: serde_yaml::Value,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    confinement: Option<String>,
}

impl SnapMeta {
    pub fn parse(yaml: &[u8], origin: &Path) -> Result<SnapMeta, SnapError> {
        let raw: RawSnapYaml =
            serde_yaml::from_slice(yaml).map_err(|e| SnapError::BadMetadata {
                path: origin.to_path_buf(),
                reason: e.to_string(),
            })?;
        // YAML reads `version: 1.30` as the number 1.3; snapd takes the
        // text as written, and so must we (1.30 is not 1.3).
        let version = match raw.version {
            serde_yaml::Value::String(s) => s,
            serde_yaml::Value::Null => String::new(),
            other => written_text(yaml, "version").unwrap_or_else(|| {
                serde_yaml::to_string(&other)
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            }),
        };
        Ok(SnapMeta {
            name: raw.name,
            version,
            architectures: if raw.architectures.is_empty() {
                vec!["all".into()]
            } else {
                raw.architectures
            },
            confinement: raw.confinement.unwrap_or_else(|| "strict".into()),
        })
    }

    pub fn supports(&self, arch: &str) -> bool {
        self.architectures.iter().any(|a| a == "all" || a == arch)
    }
}

/// The scalar of top-level `key` as written in a block-style YAML map (as
/// snap.yaml is), without a trailing comment.
fn written_text(yaml: &[u8], key: &str) -> Option<String> {
    let text = String::from_utf8_lossy(yaml);
    let prefix = format!("{key}:");
    let value = text.lines().find_map(|line| line.strip_prefix(&prefix))?;
    let value = value.split(" #").next().unwrap_or(value).trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// The installed snap `name`, if any, from the metadata snapd mounted.
pub fn installed(root: &MachineRoot, name: &str) -> Result<Option<SnapMeta>, SnapError> {
    let path = root.path(format!("/snap/{name}/current/meta/snap.yaml"));
    match std::fs::read(&path) {
        Ok(yaml) => SnapMeta::parse(&yaml, &path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SnapError::Io { path, source }),
    }
}

/// Whether the installed revision of `name` came from a local file (snapd
/// numbers those `x1`, `x2`, ...): refreshing it from the store needs
/// `--amend`.
pub fn installed_from_file(root: &MachineRoot, name: &str) -> bool {
    std::fs::read_link(root.path(format!("/snap/{name}/current")))
        .is_ok_and(|rev| rev.to_string_lossy().starts_with('x'))
}

/// Reads a snap file's metadata without installing it: checks it is a
/// squashfs image, then asks `unsquashfs` for `meta/snap.yaml`.
pub fn inspect_file(path: &Path) -> Result<SnapMeta, SnapError> {
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(path).and_then(|mut f| {
        use std::io::Read;
        f.read_exact(&mut magic)
    });
    match read {
        Ok(()) if &magic == b"hsqs" => {}
        Ok(()) => return Err(SnapError::NotSquashfs { path: path.into() }),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(SnapError::NotSquashfs { path: path.into() })
        }
        Err(source) => {
            return Err(SnapError::Io {
                path: path.into(),
                source,
            })
        }
    }
    let out = exec::run(
        "unsquashfs",
        &[
            std::ffi::OsStr::new("-cat"),
            path.as_os_str(),
            std::ffi::OsStr::new("meta/snap.yaml"),
        ],
        None,
        deadline::QUERY,
    )
    .map_err(|e| match e {
        e @ (ExecError::TimedOut { .. } | ExecError::Lost { .. }) => SnapError::Exec(e),
        e => SnapError::BadMetadata {
            path: path.into(),
            reason: e.stderr().trim().to_string(),
        },
    })?;
    SnapMeta::parse(&out.stdout, path)
}

/// Whether `unsquashfs` can be run here (snapd depends on squashfs-tools,
/// so on a machine with snapd it normally can).
pub fn can_inspect_files() -> bool {
    exec::run("unsquashfs", &["-version"], None, deadline::QUERY).is_ok()
}

/// snapd runs one change per snap at a time and refuses another meanwhile
/// ("snap \"x\" has \"install-snap\" change in progress", exit 10). A
/// change takes seconds to minutes; waiting for it is the hook's job.
const BUSY_EXIT: i32 = 10;
const BUSY_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

fn is_busy(e: &ExecError) -> bool {
    e.code() == Some(BUSY_EXIT) || e.stderr().contains("change in progress")
}

/// Where snapd keeps the file of each installed revision
/// (`<name>_<revision>.snap`), the one it mounts.
pub fn revision_file(root: &MachineRoot, name: &str, revision: &str) -> PathBuf {
    root.path(format!("/var/lib/snapd/snaps/{name}_{revision}.snap"))
}

/// The revision of `name` that is current (`123` from the store, `x<n>`
/// for a file), read from the link snapd keeps.
pub fn current_revision(root: &MachineRoot, name: &str) -> Option<String> {
    std::fs::read_link(root.path(format!("/snap/{name}/current")))
        .ok()
        .map(|rev| rev.to_string_lossy().into_owned())
}

/// A channel as snapd records it: `<track>/<risk>[/<branch>]`, the track
/// `latest` and the risk `stable` filled in where left out.
pub fn normalize_channel(channel: &str) -> String {
    const RISKS: [&str; 4] = ["stable", "candidate", "beta", "edge"];
    let parts: Vec<&str> = channel.split('/').collect();
    match parts.as_slice() {
        [risk] if RISKS.contains(risk) => format!("latest/{risk}"),
        [track] => format!("{track}/stable"),
        [risk, branch] if RISKS.contains(risk) => format!("latest/{risk}/{branch}"),
        _ => channel.to_string(),
    }
}

/// What the store serves on each channel of a snap, as `snap info
/// --unicode=never` shows it under `channels:`: channel -> version. A
/// closed channel shown as `^` serves what the riskier-named channel
/// above it in its track serves (snapd follows it there); one shown as
/// `--` serves nothing and is left out. `None` when there is no
/// `channels:` section: snapd prints none when it could not reach the
/// store.
pub fn parse_info_channels(stdout: &str) -> Option<std::collections::BTreeMap<String, String>> {
    let mut lines = stdout.lines().skip_while(|l| l.trim_end() != "channels:");
    lines.next()?;
    let mut channels = std::collections::BTreeMap::new();
    let mut above: Option<(String, String)> = None;
    for line in lines.take_while(|l| l.starts_with(' ')) {
        let Some((channel, rest)) = line.trim().split_once(':') else {
            continue;
        };
        let track = channel.split('/').next().unwrap_or_default();
        let version = match rest.split_whitespace().next() {
            Some("^") => above
                .as_ref()
                .filter(|(t, _)| t == track)
                .map(|(_, v)| v.clone()),
            Some("--") | None => None,
            Some(version) => Some(version.to_string()),
        };
        match version {
            Some(version) => {
                channels.insert(channel.to_string(), version.clone());
                above = Some((track.to_string(), version));
            }
            None => above = None,
        }
    }
    Some(channels)
}

/// One installed snap as `snap list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub version: String,
    pub revision: String,
    /// The channel it follows; `None` for a snap installed from a file
    /// (or a snapd too old to say).
    pub tracking: Option<String>,
    /// Held from automatic refreshes (snapd 2.58+ notes `held`).
    pub held: bool,
}

/// `snap list`'s table: columns found by their heading, since snapd added
/// some over the years (Tracking in 2.36, Publisher for Developer).
pub fn parse_list(stdout: &str) -> Vec<Listed> {
    let mut lines = stdout.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let heading: Vec<&str> = header.split_whitespace().collect();
    let column = |name: &str| heading.iter().position(|h| *h == name);
    let (Some(name), Some(version), Some(rev)) = (column("Name"), column("Version"), column("Rev"))
    else {
        return Vec::new();
    };
    let (tracking, notes) = (column("Tracking"), column("Notes"));
    lines
        .filter_map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            if cells.len() != heading.len() {
                return None;
            }
            let tracking = tracking
                .map(|i| cells[i])
                .filter(|t| *t != "-" && !t.is_empty())
                .map(str::to_string);
            let held = notes.is_some_and(|i| cells[i].split(',').any(|n| n == "held"));
            Some(Listed {
                name: cells[name].to_string(),
                version: cells[version].to_string(),
                revision: cells[rev].to_string(),
                tracking,
                held,
            })
        })
        .collect()
}

/// A snap's configuration as `snap get -d` prints it: each top-level key
/// with its value as snapd stores it (a value that reads as JSON is that
/// JSON: `v=0` is the number 0).
pub type SnapConfig = std::collections::BTreeMap<String, serde_json::Value>;

/// The `snap` command.
#[derive(Debug, Clone, Copy, Default)]
pub struct SnapCli;

impl SnapCli {
    fn snap(&self, args: &[&str], limit: std::time::Duration) -> Result<String, SnapError> {
        exec::before_change("snap", &args.join(" "))?;
        let started = std::time::Instant::now();
        loop {
            match exec::run("snap", args, None, limit) {
                Ok(out) => return Ok(out.stdout_str()),
                Err(e) if is_busy(&e) && started.elapsed() < BUSY_WAIT => {
                    log::debug!(
                        "snap {}: another change is in progress; waiting",
                        args.join(" ")
                    );
                    std::thread::sleep(BUSY_PAUSE);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// `snap list <names>`: those of `names` that are installed (none is
    /// not an error). Changes nothing.
    pub fn list(&self, names: &[&str]) -> Result<Vec<Listed>, SnapError> {
        let mut args = vec!["list"];
        args.extend(names);
        match exec::run("snap", &args, None, deadline::QUERY) {
            Ok(out) => Ok(parse_list(&out.stdout_str())),
            Err(e) if e.code().is_some() && e.stderr().contains("no matching snaps") => {
                Ok(Vec::new())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// What the store serves on each channel of `name` (see
    /// [`parse_info_channels`]); `None` when snapd could not ask the
    /// store. Changes nothing.
    pub fn channels(
        &self,
        name: &str,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>, SnapError> {
        let out = exec::run(
            "snap",
            &["info", "--unicode=never", name],
            None,
            deadline::QUERY,
        )?;
        Ok(parse_info_channels(&out.stdout_str()))
    }

    /// `snap get -d <name>`: every key set on the snap. Changes nothing.
    pub fn config(&self, name: &str) -> Result<SnapConfig, SnapError> {
        match exec::run("snap", &["get", "-d", name], None, deadline::QUERY) {
            Ok(out) => {
                let text = out.stdout_str();
                serde_json::from_str(&text).map_err(|e| SnapError::BadOutput {
                    command: format!("snap get -d {name}"),
                    reason: e.to_string(),
                })
            }
            Err(e) if e.code().is_some() && e.stderr().contains("has no configuration") => {
                Ok(SnapConfig::new())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `snap install <name> --channel=<channel> [--classic]`.
    pub fn install_from_store(
        &self,
        name: &str,
        channel: &str,
        classic: bool,
    ) -> Result<String, SnapError> {
        let channel = format!("--channel={channel}");
        let mut args = vec!["install", name, channel.as_str()];
        if classic {
            args.push("--classic");
        }
        self.snap(&args, deadline::INSTALL)
    }

    /// `snap refresh <name> --channel=<channel> [--classic] [--amend]`;
    /// `--amend` moves a snap installed from a file back to the store.
    pub fn refresh(
        &self,
        name: &str,
        channel: &str,
        classic: bool,
        amend: bool,
    ) -> Result<String, SnapError> {
        let channel = format!("--channel={channel}");
        let mut args = vec!["refresh", name, channel.as_str()];
        if classic {
            args.push("--classic");
        }
        if amend {
            args.push("--amend");
        }
        self.snap(&args, deadline::INSTALL)
    }

    /// `snap install --dangerous [--classic] <file>`.
    pub fn install_file(&self, file: &Path, classic: bool) -> Result<String, SnapError> {
        let file = file.to_string_lossy();
        let mut args = vec!["install", "--dangerous"];
        if classic {
            args.push("--classic");
        }
        args.push(&file);
        self.snap(&args, deadline::INSTALL)
    }

    /// `snap refresh --hold <names>`: no automatic refresh of these snaps,
    /// so that only the charm changes their revision. `Ok(false)` when
    /// snapd is too old to hold (before 2.58 it has no `--hold`).
    pub fn hold(&self, names: &[&str]) -> Result<bool, SnapError> {
        let mut args = vec!["refresh", "--hold"];
        args.extend(names);
        match self.snap(&args, deadline::CHANGE) {
            Ok(_) => Ok(true),
            Err(SnapError::Exec(e)) if e.stderr().contains("unknown flag") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `snap set <name> ...` in one call: `Some(value)` sets a key,
    /// `None` unsets it (`key!`).
    pub fn set(&self, name: &str, changes: &[(String, Option<String>)]) -> Result<(), SnapError> {
        let args: Vec<String> = changes
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => format!("{k}!"),
            })
            .collect();
        let mut all = vec!["set", name];
        all.extend(args.iter().map(String::as_str));
        self.snap(&all, deadline::CHANGE).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As snapd 2.63 prints it (cmd_info.go: tracks in the store's
    /// order, risks stable to edge, tabwriter-aligned).
    #[test]
    fn snap_info_channels_follow_closed_ones_up_their_track() {
        let out = "name:      kubelet
summary:   Kubernetes Node Agent
publisher: Canonical**
store-url: https://snapcraft.io/kubelet
license:   Apache-2.0
description: |
  kubelet
commands:
  - kubelet
services:
  kubelet.daemon: simple, disabled, inactive
snap-id:      a2J9Hk4jdVgm3c0QoyrHbOHwvmMzUmfF
tracking:     1.31/stable
refresh-date: today at 10:00 UTC
channels:
  1.32/stable:    1.32.1  2025-01-16 (3650) 20MB classic
  1.32/candidate: ^
  1.32/beta:      ^
  1.32/edge:      1.32.2  2025-02-01 (3700) 20MB classic
  1.31/stable:    --
  1.31/candidate: 1.31.5  2025-01-10 (3600) 20MB classic
  1.31/beta:      ^
  1.31/edge:      ^
installed:        1.31.4             (3500) 20MB classic
";
        let channels = parse_info_channels(out).unwrap();
        let get = |c: &str| channels.get(c).map(String::as_str);
        assert_eq!(get("1.32/stable"), Some("1.32.1"));
        assert_eq!(get("1.32/beta"), Some("1.32.1"));
        assert_eq!(get("1.32/edge"), Some("1.32.2"));
        assert_eq!(get("1.31/stable"), None);
        assert_eq!(get("1.31/edge"), Some("1.31.5"));
        assert_eq!(get("installed"), None);
        // The store not reached: snapd shows what is installed, no channels.
        let offline = out.split("channels:").next().unwrap();
        assert_eq!(parse_info_channels(offline), None);
    }

    #[test]
    fn snap_list_is_read_by_its_headings() {
        let out = "Name        Version  Rev    Tracking       Publisher     Notes\n\
kube-proxy  1.31.4   3840   1.31/stable    canonical\u{2713}  classic,held\n\
kubelet     1.31.4   x2     -              -             classic\n";
        let listed = parse_list(out);
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].tracking.as_deref(), Some("1.31/stable"));
        assert!(listed[0].held);
        assert_eq!(listed[1].revision, "x2");
        assert_eq!(listed[1].tracking, None);
        assert!(!listed[1].held);
        // Before 2.36 there was no Tracking column.
        let old =
            "Name     Version  Rev  Developer  Notes\nkubelet  1.7.16   171  canonical  classic\n";
        let listed = parse_list(old);
        assert_eq!(listed[0].revision, "171");
        assert_eq!(listed[0].tracking, None);
        assert!(parse_list("").is_empty());
    }

    #[test]
    fn channels_are_compared_as_snapd_records_them() {
        assert_eq!(normalize_channel("stable"), "latest/stable");
        assert_eq!(normalize_channel("1.31"), "1.31/stable");
        assert_eq!(normalize_channel("1.31/edge"), "1.31/edge");
        assert_eq!(normalize_channel("edge/fix-1"), "latest/edge/fix-1");
        assert_eq!(
            normalize_channel("1.31/stable/hotfix"),
            "1.31/stable/hotfix"
        );
    }

    #[test]
    fn numeric_versions_stay_text() {
        let meta = SnapMeta::parse(b"name: kubectl\nversion: 1.30\n", Path::new("x")).unwrap();
        assert_eq!(meta.version, "1.30");
        let meta = SnapMeta::parse(
            b"name: kubectl\nversion: 1.30 # the track\napps:\n  x:\n    version: 2\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(meta.version, "1.30");
        let meta = SnapMeta::parse(b"name: kubectl\nversion: '1.30'\n", Path::new("x")).unwrap();
        assert_eq!(meta.version, "1.30");
        assert_eq!(meta.architectures, vec!["all".to_string()]);
        assert!(meta.supports("s390x"));
    }

    #[test]
    fn architectures_are_checked() {
        let meta = SnapMeta::parse(
            b"name: kubelet\nversion: 1.31.2\narchitectures: [amd64]\nconfinement: classic\n",
            Path::new("x"),
        )
        .unwrap();
        assert!(meta.supports("amd64"));
        assert!(!meta.supports("s390x"));
        assert_eq!(meta.confinement, "classic");
    }

    #[test]
    fn a_file_that_is_not_squashfs_is_refused_before_unsquashfs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubelet.snap");
        std::fs::write(&path, b"PK\x03\x04 a zip").unwrap();
        assert!(matches!(
            inspect_file(&path),
            Err(SnapError::NotSquashfs { .. })
        ));
        std::fs::write(&path, b"hs").unwrap();
        assert!(matches!(
            inspect_file(&path),
            Err(SnapError::NotSquashfs { .. })
        ));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_snap_yaml_is_read_or_refused(text in any::<String>(), yamlish in "(name|version|architectures|confinement): [\\PC\n\\[\\]',-]{0,30}(\n[a-z]{1,12}: [\\PC\\[\\]]{0,20}){0,4}") {
            let _ = SnapMeta::parse(text.as_bytes(), Path::new("x"));
            if let Ok(meta) = SnapMeta::parse(yamlish.as_bytes(), Path::new("x")) {
                prop_assert!(!meta.architectures.is_empty());
            }
        }

        #[test]
        fn snap_list_never_panics(text in any::<String>()) {
            let _ = parse_list(&text);
        }

        #[test]
        fn snap_list_rows_read_back(
            rows in proptest::collection::vec(
                ("[a-z][a-z0-9-]{0,20}", "[0-9a-z.+~-]{1,12}", "x?[0-9]{1,5}", proptest::option::of("([0-9.]{1,5}/)?(stable|candidate|beta|edge)"), any::<bool>()),
                0..5,
            ),
            wide in 2usize..6,
        ) {
            // As snapd prints it: columns padded to their widest cell.
            let mut table = vec![vec!["Name".to_string(), "Version".into(), "Rev".into(), "Tracking".into(), "Publisher".into(), "Notes".into()]];
            for (name, version, rev, tracking, held) in &rows {
                table.push(vec![
                    name.clone(),
                    version.clone(),
                    rev.clone(),
                    tracking.clone().unwrap_or_else(|| "-".into()),
                    "canonical**".into(),
                    if *held { "classic,held".into() } else { "classic".into() },
                ]);
            }
            let widths: Vec<usize> = (0..6).map(|c| table.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
            let text: String = table
                .iter()
                .map(|r| {
                    let cells: Vec<String> = r.iter().zip(&widths).map(|(cell, w)| format!("{cell:w$}")).collect();
                    cells.join(&" ".repeat(wide)).trim_end().to_string() + "\n"
                })
                .collect();
            let listed = parse_list(&text);
            prop_assert_eq!(listed.len(), rows.len());
            for (l, (name, version, rev, tracking, held)) in listed.iter().zip(&rows) {
                prop_assert_eq!(&l.name, name);
                prop_assert_eq!(&l.version, version);
                prop_assert_eq!(&l.revision, rev);
                prop_assert_eq!(&l.tracking, tracking);
                prop_assert_eq!(l.held, *held);
            }
        }

        #[test]
        fn versions_are_kept_as_written(version in "[0-9]{1,2}\\.[0-9]{1,3}(\\.[0-9]{1,3})?") {
            let yaml = format!("name: kubelet\nversion: {version}\n");
            let meta = SnapMeta::parse(yaml.as_bytes(), Path::new("x")).unwrap();
            prop_assert_eq!(meta.version, version);
        }
    }
}
