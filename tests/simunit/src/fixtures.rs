//! Test inputs built at test time rather than committed as blobs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A snap to build with mksquashfs.
#[derive(Debug, Clone)]
pub struct TestSnap {
    pub name: String,
    pub version: String,
    pub architectures: Vec<String>,
    pub classic: bool,
    /// App name -> daemon type.
    pub apps: Vec<(String, Option<String>)>,
    pub configure_hook: bool,
    /// The daemon apps' program; by default one that exits at once.
    pub daemon_script: Option<String>,
    /// The configure hook's program, when there is one.
    pub configure_script: Option<String>,
}

/// The CDK snaps' configure hook (since 1.16): the `args` option goes to a
/// file the daemon's wrapper reads. Told to (`slow-configure`), it takes
/// its time, so that a test can hold a snapd change in progress.
pub const CDK_CONFIGURE: &str = "#!/bin/sh\nif [ \"$(snapctl get slow-configure)\" = true ]; then sleep 8; fi\nsnapctl get args > \"$SNAP_DATA/args\" || :\nexit 0\n";

/// The CDK snaps' daemon wrapper: the args file read as a bash array,
/// then (where the CDK snap execs kubelet) the argv recorded, NUL-separated
/// in `$SNAP_COMMON/argv`, and a `start` line logged per start. It then
/// execs a program named as the snap (a script that waits) with those
/// arguments, so that the process table shows a `kubelet` process with
/// kubelet's flags, as `ps -C kubelet` finds the real one.
pub const CDK_DAEMON: &str = "#!/bin/bash\ndeclare -a ARGS=\"($(cat \"$SNAP_DATA/args\"))\"\nprintf '%s\\0' \"${ARGS[@]}\" > \"$SNAP_COMMON/argv.new\"\nmv \"$SNAP_COMMON/argv.new\" \"$SNAP_COMMON/argv\"\nprintf 'start %s\\n' \"$(date +%s%N)\" >> \"$SNAP_COMMON/daemon.log\"\nprintf '#!/bin/bash\\nwhile :; do sleep 3600; done\\n' > \"$SNAP_COMMON/$SNAP_NAME.new\"\nchmod 755 \"$SNAP_COMMON/$SNAP_NAME.new\"\nmv \"$SNAP_COMMON/$SNAP_NAME.new\" \"$SNAP_COMMON/$SNAP_NAME\"\nexec \"$SNAP_COMMON/$SNAP_NAME\" \"${ARGS[@]}\"\n";

/// The argv a CDK snap's wrapper passes its daemon for an `args` string:
/// bash itself runs `declare -a ARGS="($(cat <file>))"` on it.
pub fn bash_argv(args: &str) -> Vec<String> {
    let dir = tempfile::tempdir().expect("scratch dir");
    let file = dir.path().join("args");
    std::fs::write(&file, args).expect("write args");
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"declare -a ARGS="($(cat "$1"))"; printf '%s\0' "${ARGS[@]}""#)
        .arg("bash")
        .arg(&file)
        .output()
        .expect("bash");
    assert!(out.status.success(), "bash could not read {args:?}");
    String::from_utf8(out.stdout)
        .expect("utf-8 argv")
        .split_terminator('\0')
        .map(str::to_string)
        .collect()
}

impl TestSnap {
    /// A classic snap with a `daemon` app and a configure hook, like the
    /// CDK kubelet and kube-proxy snaps.
    pub fn daemon(name: &str, version: &str, arch: &str) -> TestSnap {
        TestSnap {
            name: name.into(),
            version: version.into(),
            architectures: vec![arch.into()],
            classic: true,
            apps: vec![
                (name.into(), None),
                ("daemon".into(), Some("simple".into())),
            ],
            configure_hook: true,
            daemon_script: None,
            configure_script: None,
        }
    }

    /// Builds `<dir>/<name>_<version>_<arch>.snap` and returns its path.
    pub fn build(&self, dir: &Path) -> PathBuf {
        let tree = tempfile::tempdir().expect("snap tree");
        let meta = tree.path().join("meta");
        std::fs::create_dir_all(meta.join("hooks")).expect("meta dir");
        let mut yaml = format!(
            "name: {}\nversion: '{}'\nsummary: test snap\ndescription: test snap\nconfinement: {}\narchitectures: [{}]\napps:\n",
            self.name,
            self.version,
            if self.classic { "classic" } else { "strict" },
            self.architectures.join(", ")
        );
        for (app, daemon) in &self.apps {
            yaml.push_str(&format!("  {app}:\n    command: bin/{app}\n"));
            if let Some(d) = daemon {
                yaml.push_str(&format!("    daemon: {d}\n"));
            }
        }
        std::fs::write(meta.join("snap.yaml"), yaml).expect("snap.yaml");
        let executable = |path: &Path, text: &str| {
            std::fs::write(path, text).expect("write");
            std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .expect("chmod");
        };
        if self.configure_hook {
            let script = self
                .configure_script
                .as_deref()
                .unwrap_or("#!/bin/sh\nexit 0\n");
            executable(&meta.join("hooks/configure"), script);
        }
        std::fs::create_dir_all(tree.path().join("bin")).expect("bin");
        for (app, daemon) in &self.apps {
            let script = match (daemon, &self.daemon_script) {
                (Some(_), Some(script)) => script.as_str(),
                _ => "#!/bin/sh\nexit 0\n",
            };
            executable(&tree.path().join("bin").join(app), script);
        }
        let out = dir.join(format!(
            "{}_{}_{}.snap",
            self.name,
            self.version,
            self.architectures.join("-")
        ));
        let _ = std::fs::remove_file(&out);
        let status = Command::new("mksquashfs")
            .arg(tree.path())
            .arg(&out)
            .args([
                "-noappend",
                "-comp",
                "gzip",
                "-all-root",
                "-no-xattrs",
                "-quiet",
            ])
            .status()
            .expect("mksquashfs (install squashfs-tools)");
        assert!(status.success(), "mksquashfs failed");
        out
    }
}

/// Real CNI plugins for `arch` (Debian's containernetworking-plugins,
/// fetched by `make fixtures` into `<repo>/build/fixtures/cni/<arch>`).
pub fn cni_plugins_dir(repo: &Path, arch: &str) -> PathBuf {
    let dir = repo.join("build/fixtures/cni").join(arch);
    assert!(
        dir.join("bridge").exists(),
        "no CNI plugin fixtures for {arch} in {}: run `make fixtures`",
        dir.display()
    );
    dir
}

/// A flat `.tgz` of the plugins in `plugins_dir` (all, or only `names`), as
/// the upstream release tarballs are laid out.
pub fn cni_tarball(plugins_dir: &Path, dest: &Path, names: Option<&[&str]>) -> PathBuf {
    let mut cmd = Command::new("tar");
    cmd.arg("-czf").arg(dest).arg("-C").arg(plugins_dir);
    match names {
        Some(names) => {
            cmd.args(names.iter().map(|n| format!("./{n}")));
        }
        None => {
            cmd.arg(".");
        }
    }
    let status = cmd.status().expect("tar");
    assert!(status.success(), "tar failed");
    dest.to_path_buf()
}

/// The snap store as the charm sees it: kubectl, kubelet and kube-proxy,
/// classic, on two current tracks and the 1.7 track of 2017.
pub fn kubernetes_store() -> std::collections::BTreeMap<
    String,
    std::collections::BTreeMap<String, crate::machine::StoreRevision>,
> {
    let mut store = std::collections::BTreeMap::new();
    for (i, name) in ["kubectl", "kubelet", "kube-proxy"].into_iter().enumerate() {
        let mut channels = std::collections::BTreeMap::new();
        for (j, (channel, version)) in [
            ("1.31/stable", "1.31.2"),
            ("1.32/stable", "1.32.0"),
            ("1.7/stable", "1.7.16"),
            ("1.15/stable", "1.15.12"),
        ]
        .into_iter()
        .enumerate()
        {
            let mut apps = std::collections::BTreeMap::new();
            apps.insert(name.to_string(), None);
            if name != "kubectl" {
                apps.insert("daemon".to_string(), Some("simple".to_string()));
            }
            channels.insert(
                channel.to_string(),
                crate::machine::StoreRevision {
                    version: version.to_string(),
                    revision: 1000 + 100 * j as u32 + i as u32,
                    classic: true,
                    architectures: vec!["all".into()],
                    apps,
                },
            );
        }
        store.insert(name.to_string(), channels);
    }
    store
}

/// The names of the entries in `dir`, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
