//! The kernel tunables of the `sysctl` option.

use charm::files::{self};
use charm::resources::Fingerprint;

use crate::error::Error;
use crate::unit_state::{NodeOptions, Recorded};

use super::Node;

const SYSCTL_FILE: &str = "/etc/sysctl.d/50-kubernetes-charm.conf";

impl Node<'_> {
    /// Writes the `sysctl` option to its file and loads it when its content
    /// is not the one last loaded. Inside a container the kernel refuses
    /// some keys by design: logged, not a problem.
    pub(super) fn apply_sysctl(
        &self,
        recorded: &mut Recorded,
        options: &NodeOptions,
    ) -> Result<(), Error> {
        let text = file_text(&options.sysctl);
        let fingerprint = Fingerprint::of(&text);
        let path = self.root.path(SYSCTL_FILE);
        if let Some(dir) = path.parent() {
            files::ensure_dir(dir, 0o755)?;
        }
        files::write_atomic(&path, text.as_bytes(), 0o644, None)?;
        if recorded.journal.sysctl_applied.as_ref() == Some(&fingerprint) {
            return Ok(());
        }
        let loaded = charm::sysctl::load(&path).map_err(|source| Error::Exec {
            doing: "loading the kernel tunables",
            source,
        })?;
        recorded.journal.sysctl_refused = None;
        if !loaded.refused.is_empty() {
            let refused = loaded.refused.join("; ");
            if self.in_container() {
                log::info!("inside a container the kernel keeps some tunables: {refused}");
            } else {
                log::warn!("sysctl: {refused}");
                recorded.journal.sysctl_refused = Some(refused);
            }
        }
        recorded.journal.sysctl_applied = Some(fingerprint);
        Ok(())
    }
}

/// The sysctl file for the option's tunables.
pub(crate) fn file_text(sysctl: &std::collections::BTreeMap<String, String>) -> String {
    let mut text =
        String::from("# Written by the kubernetes-worker charm from its sysctl option.\n");
    for (key, value) in sysctl {
        text.push_str(&format!("{key} = {value}\n"));
    }
    text
}
