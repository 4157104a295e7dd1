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
        }
    }

    /// Builds `<dir>/<name>_<version>_<arch>.snap` and returns its path.
    pub fn build(&self, dir: &Path) -> PathBuf {
        let tree = tempfile::tempdir().expect("snap tree");
        let meta = tree.path().join("meta");
        std::fs::create_dir_all(meta.join("hooks")).expect("meta dir");
        let mut yaml = format!(
            "name: {}\nversion: '{}'\nsummary: test snap\ndescription: test snap\nconfinement: {}\narchitectures: [{}]\nbase: core\napps:\n",
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
        if self.configure_hook {
            std::fs::write(meta.join("hooks/configure"), "#!/bin/sh\nexit 0\n").expect("hook");
        }
        std::fs::create_dir_all(tree.path().join("bin")).expect("bin");
        for (app, _) in &self.apps {
            std::fs::write(tree.path().join("bin").join(app), "#!/bin/sh\nexit 0\n").expect("app");
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
