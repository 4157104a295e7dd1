//! Attached resources. Charm stores required every resource to be uploaded,
//! so publishers upload an empty file to mean "none": a zero-byte resource
//! is reported as [`Resource::Empty`], distinct from a missing one.

use std::path::PathBuf;

use crate::tools::{HookTools, ToolError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// Nothing was attached: the controller has no such resource. Holds
    /// the tool's message.
    Missing(String),
    /// The resource could not be fetched now (the controller busy, a
    /// download interrupted, no answer in time): not a verdict on what
    /// was attached. Holds why.
    Unavailable(String),
    /// Attached, zero bytes: "use the default source".
    Empty(PathBuf),
    /// Attached, with content.
    File { path: PathBuf, len: u64 },
}

/// Fetches resource `name`. Only a failure to run the tool at all (or a
/// path that cannot be inspected) is an error; a resource the controller
/// does not have is [`Resource::Missing`], one it could not serve now
/// [`Resource::Unavailable`].
pub fn fetch(tools: &HookTools, name: &str) -> Result<Resource, ResourceError> {
    let path = match tools.resource_get(name) {
        Ok(path) => path,
        Err(ToolError::Exec(exec)) if exec.timed_out() => {
            return Ok(Resource::Unavailable(exec.to_string()))
        }
        Err(e) if e.code() == Some(1) => {
            let ToolError::Exec(exec) = &e else {
                return Err(ResourceError::Tool(e));
            };
            let msg = exec.stderr().trim();
            let msg = msg.strip_prefix("ERROR ").unwrap_or(msg).to_string();
            // The controller's answer for a resource it does not have ends
            // in "<resource id> not found"; anything else (a refused or
            // broken download) may pass.
            return Ok(if msg.trim_end().ends_with("not found") {
                Resource::Missing(msg)
            } else {
                Resource::Unavailable(msg)
            });
        }
        Err(e) => return Err(ResourceError::Tool(e)),
    };
    let meta = std::fs::metadata(&path).map_err(|source| ResourceError::Inspect {
        name: name.to_string(),
        path: path.clone(),
        source,
    })?;
    if meta.len() == 0 {
        Ok(Resource::Empty(path))
    } else {
        Ok(Resource::File {
            path,
            len: meta.len(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("fetching a resource: {0}")]
    Tool(ToolError),
    #[error("resource {name}: cannot inspect {}: {source}", path.display())]
    Inspect {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The SHA-256 of a resource file, hex: the one fingerprint by which a
/// charm tells whether an attached file changed.
pub fn fingerprint(path: &std::path::Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Fingerprint::default();
    std::io::copy(&mut file, &mut hasher.0)?;
    Ok(hasher.hex())
}

/// A SHA-256 over whatever a charm feeds it, as hex: for telling whether
/// anything a service reads changed.
#[derive(Default)]
pub struct Fingerprint(sha2::Sha256);

impl Fingerprint {
    /// The hex SHA-256 of one piece of content.
    pub fn of(bytes: impl AsRef<[u8]>) -> String {
        let mut hash = Fingerprint::default();
        hash.update(bytes);
        hash.hex()
    }

    pub fn update(&mut self, bytes: impl AsRef<[u8]>) {
        sha2::Digest::update(&mut self.0, bytes);
    }

    pub fn hex(self) -> String {
        sha2::Digest::finalize(self.0)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_of_content() {
        assert_eq!(
            Fingerprint::of(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn fingerprint_is_sha256_hex() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            fingerprint(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

/// Remembers resource fingerprints by file identity, so an unchanged file
/// is not read again: the agent writes a new file when it downloads a new
/// revision, which changes its inode, ctime or size. The fingerprint stays
/// the one sha256 per resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FingerprintCache {
    entries: std::collections::BTreeMap<String, (FileStamp, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileStamp {
    fn of(path: &std::path::Path) -> std::io::Result<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        })
    }
}

impl FingerprintCache {
    /// The fingerprint of resource `name` at `path`, hashing only when the
    /// file is not the one seen before.
    pub fn fingerprint(&mut self, name: &str, path: &std::path::Path) -> std::io::Result<String> {
        let stamp = FileStamp::of(path)?;
        if let Some((seen, sha)) = self.entries.get(name) {
            if *seen == stamp {
                return Ok(sha.clone());
            }
        }
        let sha = fingerprint(path)?;
        self.entries.insert(name.to_string(), (stamp, sha.clone()));
        Ok(sha)
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    #[test]
    fn a_replaced_file_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cni.tgz");
        std::fs::write(&path, b"one").unwrap();
        let mut cache = FingerprintCache::default();
        let first = cache.fingerprint("cni-amd64", &path).unwrap();
        assert_eq!(cache.fingerprint("cni-amd64", &path).unwrap(), first);
        // The agent writes a new download beside and renames it in.
        let new = dir.path().join("cni.tgz.new");
        std::fs::write(&new, b"two").unwrap();
        std::fs::rename(&new, &path).unwrap();
        assert_ne!(cache.fingerprint("cni-amd64", &path).unwrap(), first);
        assert_eq!(
            cache.fingerprint("cni-amd64", &path).unwrap(),
            fingerprint(&path).unwrap()
        );
    }
}
