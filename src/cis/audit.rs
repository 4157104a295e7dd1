//! What kube-bench's audit commands would print on this node, read
//! directly: the files' modes and owners (`stat`), the running kubelet's
//! command line (`ps -fC kubelet`) and its config file (`cat`). Nothing
//! here runs a program, so the benchmark needs no shell, `ps` or `stat`
//! and no network.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;

use charm::root::MachineRoot;

use super::checks::{File, Parsed};
use crate::daemons;

/// The systemd unit files kube-bench looks for kubelet's in (its
/// config.yaml `node.kubelet.svc`), the first that exists; else its
/// `defaultsvc`.
const KUBELET_SERVICES: [&str; 7] = [
    "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
    "/etc/systemd/system/kubelet.service",
    "/lib/systemd/system/kubelet.service",
    "/etc/systemd/system/snap.kubelet.daemon.service",
    "/etc/systemd/system/snap.microk8s.daemon-kubelet.service",
    "/etc/systemd/system/atomic-openshift-node.service",
    "/etc/systemd/system/origin-node.service",
];

/// A file as `stat` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// `%U:%G`: names from the machine's passwd and group, `UNKNOWN`
    /// where there is none (as GNU stat prints).
    pub owner: String,
}

/// Everything the checks read, read once.
pub struct Audited {
    pub paths: BTreeMap<File, String>,
    pub stats: BTreeMap<File, Option<Stat>>,
    /// The running kubelets' command lines, one per line.
    pub kubelet: String,
    /// kubelet's config file (`cat $kubeletconf`): its text, and that
    /// read as JSON or YAML; or cat's complaint.
    pub config: Result<(String, Parsed), String>,
}

impl Audited {
    pub fn read(root: &MachineRoot) -> Audited {
        let kubelet = kubelet_command_lines(root);
        let service = KUBELET_SERVICES
            .iter()
            .find(|p| root.path(p).exists())
            .unwrap_or(&KUBELET_SERVICES[0]);
        let client_ca = kubelet
            .split_whitespace()
            .find_map(|w| w.strip_prefix("--client-ca-file="))
            .unwrap_or(daemons::CA);
        // Inserted one by one: collecting into a map sorts, and a sort's
        // code per element type is kilobytes in every binary.
        let mut paths = BTreeMap::new();
        for (file, path) in [
            (File::KubeletService, *service),
            (File::ProxyKubeconfig, daemons::PROXY_KUBECONFIG),
            (File::KubeletKubeconfig, daemons::KUBELET_KUBECONFIG),
            (File::ClientCa, client_ca),
            (File::KubeletConfig, daemons::KUBELET_CONFIG),
        ] {
            paths.insert(file, path.to_string());
        }
        let names = Names::read(root);
        let mut stats = BTreeMap::new();
        for (file, path) in &paths {
            let stat = std::fs::metadata(root.path(path)).ok().map(|m| Stat {
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                owner: format!("{}:{}", names.user(m.uid()), names.group(m.gid())),
            });
            stats.insert(*file, stat);
        }
        let config = match std::fs::read(root.path(daemons::KUBELET_CONFIG)) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                // kube-bench reads JSON or YAML (JSON is YAML here).
                let parsed = serde_yaml::from_str(&text).map_err(|e| e.to_string());
                Ok((text, parsed))
            }
            Err(e) => Err(format!(
                "cat: {}: {}",
                daemons::KUBELET_CONFIG,
                io_words(&e)
            )),
        };
        Audited {
            paths,
            stats,
            kubelet,
            config,
        }
    }

    /// What the audit command of a file check prints.
    pub fn stat_output(&self, file: File, owner: bool) -> String {
        match self.stats.get(&file) {
            Some(Some(stat)) if owner => format!("{}\n", stat.owner),
            Some(Some(stat)) => format!("permissions={:o}\n", stat.mode),
            _ => String::new(),
        }
    }

    /// kube-bench's substitution of `$name` by its path.
    pub fn substitute(&self, text: &str) -> String {
        let path = |f: File| self.paths.get(&f).map(String::as_str).unwrap_or_default();
        text.replace("$kubeletsvc", path(File::KubeletService))
            .replace("$proxykubeconfig", path(File::ProxyKubeconfig))
            .replace("$kubeletkubeconfig", path(File::KubeletKubeconfig))
            .replace("$kubeletcafile", daemons::CA)
            .replace("$kubeletconf", path(File::KubeletConfig))
            .replace("$kubeletbin", "kubelet")
    }
}

/// cat's words for why a file could not be read.
fn io_words(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => "No such file or directory",
        std::io::ErrorKind::PermissionDenied => "Permission denied",
        _ => "Input/output error",
    }
}

/// The command line of every process whose name is `kubelet`, as `ps -C`
/// selects them, arguments joined by spaces.
fn kubelet_command_lines(root: &MachineRoot) -> String {
    let Ok(entries) = std::fs::read_dir(root.path("/proc")) else {
        return String::new();
    };
    // By pid, as ps lists them; inserted one by one (collecting would
    // bring a sort's code into the binary for this one list).
    let mut lines = BTreeMap::new();
    let found = entries.flatten().filter_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
        if comm.trim_end() != "kubelet" {
            return None;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        Some((pid, args.join(" ")))
    });
    for (pid, line) in found {
        lines.insert(pid, line);
    }
    lines.into_values().map(|line| line + "\n").collect()
}

/// User and group names by id, from the machine's passwd and group.
struct Names {
    users: BTreeMap<u32, String>,
    groups: BTreeMap<u32, String>,
}

impl Names {
    fn read(root: &MachineRoot) -> Names {
        // The first line with an id names it, as getpwuid finds it.
        let table = |path: &str| -> BTreeMap<u32, String> {
            let text = std::fs::read_to_string(root.path(path)).unwrap_or_default();
            let mut names = BTreeMap::new();
            for line in text.lines() {
                let mut f = line.split(':');
                let (Some(name), Some(Ok(id))) = (f.next(), f.nth(1).map(str::parse)) else {
                    continue;
                };
                names.entry(id).or_insert_with(|| name.to_string());
            }
            names
        };
        Names {
            users: table("/etc/passwd"),
            groups: table("/etc/group"),
        }
    }

    fn user(&self, uid: u32) -> &str {
        self.users
            .get(&uid)
            .map(String::as_str)
            .unwrap_or("UNKNOWN")
    }

    fn group(&self, gid: u32) -> &str {
        self.groups
            .get(&gid)
            .map(String::as_str)
            .unwrap_or("UNKNOWN")
    }
}
