//! The machine's process table and snapd's unit files, as the charm's
//! CIS benchmark reads them (`ps -C kubelet`, `stat` of the unit file):
//! `<root>/proc/<pid>/{comm,cmdline}` for every running snap daemon, with
//! the argv the CDK snaps' wrapper passes (`args` read by bash, or one
//! `--key=value` per option before 1.16), and
//! `/etc/systemd/system/snap.<name>.<app>.service` as snapd writes it
//! (mode 0644, root's) when it installs a snap with a daemon.

use std::os::unix::fs::PermissionsExt;

use serde_json::{Map, Value};

use crate::machine::Machine;

/// The daemon's argv: its binary, then its flags.
pub fn argv(name: &str, revision: &str, config: &Map<String, Value>) -> Vec<String> {
    let mut argv = vec![format!("/snap/{name}/{revision}/{name}")];
    match config.get("args") {
        Some(Value::String(args)) => argv.extend(crate::fixtures::bash_argv(args)),
        _ => {
            for (key, value) in config {
                let value = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                argv.push(format!("--{key}={value}"));
            }
        }
    }
    argv
}

/// Rewrites the process table: one process per active snap daemon,
/// running what its last start ran; none for the others.
pub fn sync(m: &Machine) {
    let proc_dir = m.root.join("proc");
    let mut want = Vec::new();
    for (i, (unit, service)) in m.services.iter().enumerate() {
        let (Some(run), true) = (service.runs.last(), service.active) else {
            continue;
        };
        let Some(name) = unit.strip_prefix("snap.").and_then(|u| u.split('.').next()) else {
            continue;
        };
        // One pid per service: what a start changes is what it runs (the
        // number a real kernel would give it is not the charm's to know).
        let pid = 1000 + i as u32;
        let comm: String = name.chars().take(15).collect();
        let mut cmdline = Vec::new();
        for arg in &run.argv {
            cmdline.extend_from_slice(arg.as_bytes());
            cmdline.push(0);
        }
        want.push((pid.to_string(), comm, cmdline));
    }
    if let Ok(entries) = std::fs::read_dir(&proc_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !want.iter().any(|(pid, ..)| *pid == name) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    for (pid, comm, cmdline) in want {
        let dir = proc_dir.join(&pid);
        let _ = std::fs::create_dir_all(&dir);
        let comm = format!("{comm}\n");
        for (file, content) in [("comm", comm.as_bytes()), ("cmdline", &cmdline)] {
            if std::fs::read(dir.join(file)).ok().as_deref() != Some(content) {
                let _ = std::fs::write(dir.join(file), content);
            }
        }
    }
}

/// snapd's unit file for a daemon (systemd/snap.go's template, in short).
pub fn write_unit(m: &Machine, name: &str, app: &str, unit: &str) {
    let dir = m.root.join("etc/systemd/system");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(unit);
    let text = format!(
        "[Unit]\n# Auto-generated, DO NOT EDIT\nDescription=Service for snap application {name}.{app}\n\
         Requires=snap-{name}.mount\nWants=network.target\nAfter=snap-{name}.mount network.target snapd.apparmor.service\n\
         X-Snappy=yes\n\n[Service]\nEnvironmentFile=-/etc/environment\nExecStart=/usr/bin/snap run {name}.{app}\n\
         SyslogIdentifier={name}.{app}\nRestart=always\nWorkingDirectory=/var/snap/{name}/current\nTimeoutStopSec=30\nType=simple\n\n\
         [Install]\nWantedBy=multi-user.target\n"
    );
    if std::fs::read_to_string(&path).ok().as_deref() != Some(&text) {
        let _ = std::fs::write(&path, text);
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644));
    }
}

/// snapd removes a snap's unit files with it.
pub fn remove_units(m: &Machine, name: &str) {
    let dir = m.root.join("etc/systemd/system");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if file.starts_with(&format!("snap.{name}.")) && file.ends_with(".service") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}
