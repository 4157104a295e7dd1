//! Unpacking a CNI plugins tarball, safely, into a staging directory.
//!
//! The tarball is an operator's upload: it is streamed (bounded memory),
//! and every entry is checked before anything is written. Refused: absolute
//! paths, `..`, sub-directories (the format is a flat tgz of plugins), links
//! that lead outside the archive, device nodes and fifos, and more than
//! [`MAX_UNPACKED`] bytes in all. Files are written 0755 whatever the
//! archive says (no setuid/setgid), owned by the charm's user (root). Every
//! ELF executable must be for this machine; other files (LICENSE,
//! README.md) are not plugins and are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path};

use crate::elf::{self, Binary};

/// More than any real plugins tarball unpacks to (about 90 MiB upstream).
pub const MAX_UNPACKED: u64 = 512 << 20;

/// More entries than any real plugins tarball has (about 20).
pub const MAX_ENTRIES: usize = 4096;

/// The longest file name Linux filesystems take.
const MAX_NAME: usize = 255;

/// A name from the archive as a message may quote it: escaped (no newline
/// or control character reaches a status or a log line) and bounded.
fn shown(path: &Path) -> String {
    let text = format!("{:?}", path.as_os_str());
    charm::quote::bounded(&text, 80).into_owned()
}

/// Why an archive was refused: the operator's to fix, so each reads as a
/// status message after "<resource> ".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotGzip,
    Corrupt(String),
    Unsafe(String),
    TooLarge,
    NoPlugins,
    WrongArch {
        holds: Vec<&'static str>,
        machine: String,
    },
}

impl Refusal {
    pub fn message(&self, resource: &str) -> String {
        match self {
            Refusal::NotGzip => format!("{resource} resource is not a gzip tar archive"),
            Refusal::Corrupt(why) => {
                format!("{resource} resource is not a valid gzip tar archive: {why}")
            }
            Refusal::Unsafe(why) => format!("{resource} resource refused: {why}"),
            Refusal::TooLarge => format!(
                "{resource} resource refused: it unpacks to more than {} MiB",
                MAX_UNPACKED >> 20
            ),
            Refusal::NoPlugins => format!("{resource} resource holds no CNI plugins"),
            Refusal::WrongArch { holds, machine } => format!(
                "{resource} resource holds {} plugins; this machine is {machine}",
                holds.join(" and ")
            ),
        }
    }
}

/// What an archive yields.
#[derive(Debug, Default)]
pub struct Unpacked {
    /// Plugin names, each a file in the staging directory.
    pub plugins: BTreeSet<String>,
    /// Files that are not executables, left out.
    pub skipped: Vec<String>,
}

/// Failures of our own I/O (not the archive's fault).
pub type IoResult<T> = Result<T, (String, io::Error)>;

/// Unpacks `archive` into `staging` (an empty directory) for machine `arch`.
/// `Ok(Err(refusal))` is a bad archive; `Err` is a failure to write.
pub fn unpack(archive: &Path, staging: &Path, arch: &str) -> IoResult<Result<Unpacked, Refusal>> {
    unpack_at_most(archive, staging, arch, MAX_UNPACKED)
}

/// [`unpack`] with a cap of `limit` bytes written.
fn unpack_at_most(
    archive: &Path,
    staging: &Path,
    arch: &str,
    limit: u64,
) -> IoResult<Result<Unpacked, Refusal>> {
    let open = || File::open(archive).map_err(|e| (format!("opening {}", archive.display()), e));
    let mut magic = [0u8; 2];
    if open()?.read_exact(&mut magic).is_err() || magic != [0x1f, 0x8b] {
        return Ok(Err(Refusal::NotGzip));
    }
    let gz = flate2::read::GzDecoder::new(io::BufReader::with_capacity(256 << 10, open()?));
    let mut tar = tar::Archive::new(gz);
    let mut unpacker = Unpacker {
        staging,
        arch,
        total: 0,
        limit,
        files: BTreeMap::new(),
        symlinks: Vec::new(),
    };
    match unpacker.run(&mut tar) {
        Ok(()) => Ok(unpacker.finish()),
        Err(Fault::Refuse(refusal)) => Ok(Err(refusal)),
        // A read error is the archive's: truncated or corrupt.
        Err(Fault::Archive(e)) => Ok(Err(Refusal::Corrupt(e.to_string()))),
        Err(Fault::Ours(what, e)) => Err((what, e)),
    }
}

enum Fault {
    Refuse(Refusal),
    Archive(io::Error),
    Ours(String, io::Error),
}

impl From<io::Error> for Fault {
    fn from(e: io::Error) -> Self {
        Fault::Archive(e)
    }
}

fn refuse<T>(refusal: Refusal) -> Result<T, Fault> {
    Err(Fault::Refuse(refusal))
}

struct Unpacker<'a> {
    staging: &'a Path,
    arch: &'a str,
    total: u64,
    limit: u64,
    files: BTreeMap<String, Binary>,
    symlinks: Vec<(String, String)>,
}

impl Unpacker<'_> {
    fn run<R: Read>(&mut self, tar: &mut tar::Archive<R>) -> Result<(), Fault> {
        for (count, entry) in tar.entries()?.enumerate() {
            if count >= MAX_ENTRIES {
                return refuse(Refusal::Unsafe(format!(
                    "it has more than {MAX_ENTRIES} entries"
                )));
            }
            self.entry(&mut entry?)?;
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<(), Fault> {
        let path = entry.path()?.into_owned();
        let Some(name) = flat_name(&path).map_err(Fault::Refuse)? else {
            return Ok(());
        };
        let kind = entry.header().entry_type();
        use tar::EntryType as T;
        match kind {
            T::Directory => refuse(Refusal::Unsafe(format!(
                "it has a directory {} (expected a flat tarball of plugins)",
                shown(&path)
            ))),
            T::Regular | T::Continuous => {
                // What the entry says it holds (the PAX size if there is
                // one) refuses early; what is written is what counts.
                if self
                    .total
                    .checked_add(entry.size())
                    .is_none_or(|t| t > self.limit)
                {
                    return refuse(Refusal::TooLarge);
                }
                let binary = self.write(&name, entry)?;
                self.files.insert(name, binary);
                Ok(())
            }
            T::Symlink | T::Link => {
                let target = entry
                    .link_name()?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let outside = || {
                    Fault::Refuse(Refusal::Unsafe(format!(
                        "{} {} points outside the archive ({})",
                        if kind == T::Symlink {
                            "symlink"
                        } else {
                            "hard link"
                        },
                        shown(&path),
                        shown(&target)
                    )))
                };
                let target_name = match flat_name(&target) {
                    Ok(Some(t)) => t,
                    _ => return Err(outside()),
                };
                if kind == T::Symlink {
                    self.symlinks.push((name, target_name));
                    return Ok(());
                }
                let Some(binary) = self.files.get(&target_name).copied() else {
                    return Err(outside());
                };
                if target_name == name {
                    return refuse(Refusal::Unsafe(format!(
                        "hard link {} points at itself",
                        shown(&path)
                    )));
                }
                let (from, to) = (self.staging.join(&target_name), self.staging.join(&name));
                // A name seen twice: the later entry wins, as with tar(1).
                let _ = std::fs::remove_file(&to);
                std::fs::hard_link(&from, &to)
                    .map_err(|e| Fault::Ours(format!("linking {}", to.display()), e))?;
                self.files.insert(name, binary);
                Ok(())
            }
            T::Char | T::Block | T::Fifo => refuse(Refusal::Unsafe(format!(
                "{} is a device node or fifo",
                shown(&path)
            ))),
            other => refuse(Refusal::Unsafe(format!(
                "{} has an unsupported entry type {other:?}",
                shown(&path)
            ))),
        }
    }

    /// Streams one file into the staging directory, 0755, and classifies it
    /// by its first bytes. Reads fail as the archive's fault, writes as ours.
    fn write<R: Read>(&mut self, name: &str, entry: &mut R) -> Result<Binary, Fault> {
        let dest = self.staging.join(name);
        let ours = |e| Fault::Ours(format!("writing {}", dest.display()), e);
        // A name seen twice: the later entry wins, as with tar(1).
        let _ = std::fs::remove_file(&dest);
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&dest)
            .map_err(ours)?;
        let mut buf = vec![0u8; 128 << 10];
        let mut head = Vec::with_capacity(64);
        loop {
            let n = entry.read(&mut buf)?;
            if n == 0 {
                break;
            }
            // Counted as written, whatever the headers said.
            self.total = match self.total.checked_add(n as u64) {
                Some(total) if total <= self.limit => total,
                _ => return refuse(Refusal::TooLarge),
            };
            if head.len() < 64 {
                let take = (64 - head.len()).min(n);
                head.extend_from_slice(&buf[..take]);
            }
            out.write_all(&buf[..n]).map_err(ours)?;
        }
        out.set_permissions(Permissions::from_mode(0o755))
            .map_err(ours)?;
        Ok(elf::classify(&head))
    }

    fn finish(&mut self) -> Result<Unpacked, Refusal> {
        let mut unpacked = Unpacked::default();
        let mut wrong: BTreeSet<&'static str> = BTreeSet::new();
        for (name, binary) in &self.files {
            match binary {
                Binary::Executable { arch } if *arch == self.arch => {
                    unpacked.plugins.insert(name.clone());
                }
                Binary::Executable { arch } => {
                    wrong.insert(arch);
                }
                Binary::NotElf | Binary::NotExecutable => {
                    let _ = std::fs::remove_file(self.staging.join(name));
                    unpacked.skipped.push(name.clone());
                }
            }
        }
        if !wrong.is_empty() {
            return Err(Refusal::WrongArch {
                holds: wrong.into_iter().collect(),
                machine: self.arch.to_string(),
            });
        }
        for (name, target) in std::mem::take(&mut self.symlinks) {
            if unpacked.plugins.contains(&target)
                && std::os::unix::fs::symlink(&target, self.staging.join(&name)).is_ok()
            {
                unpacked.plugins.insert(name);
            } else {
                unpacked.skipped.push(name);
            }
        }
        if unpacked.plugins.is_empty() {
            return Err(Refusal::NoPlugins);
        }
        Ok(unpacked)
    }
}

/// The single file name an entry path stands for: `None` for the archive's
/// own `./` and for hidden files (`.DS_Store`, `._bridge`: never plugins,
/// and the charm's own temporary names start with a dot); a refusal for
/// anything that is absolute, climbs out, nests, or is not a name a plugin
/// can have (not UTF-8, a control character, longer than a file name).
fn flat_name(path: &Path) -> Result<Option<String>, Refusal> {
    let mut names = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::Normal(n) => names.push(n),
            Component::ParentDir => {
                return Err(Refusal::Unsafe(format!(
                    "{} climbs out of the archive (..)",
                    shown(path)
                )))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(Refusal::Unsafe(format!(
                    "{} is an absolute path",
                    shown(path)
                )))
            }
        }
    }
    let name = match names.as_slice() {
        [] => return Ok(None),
        [name] => *name,
        _ => {
            return Err(Refusal::Unsafe(format!(
                "{} is in a sub-directory (expected a flat tarball of plugins)",
                shown(path)
            )))
        }
    };
    let Some(text) = name.to_str() else {
        return Err(Refusal::Unsafe(format!(
            "the name {} is not UTF-8",
            shown(path)
        )));
    };
    if text.len() > MAX_NAME {
        return Err(Refusal::Unsafe(format!(
            "the name {} is {} bytes long (a file name has at most {MAX_NAME})",
            shown(path),
            text.len()
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(Refusal::Unsafe(format!(
            "the name {} has a control character",
            shown(path)
        )));
    }
    if text.starts_with('.') {
        return Ok(None);
    }
    Ok(Some(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(machine: u16, big_endian: bool) -> Vec<u8> {
        let mut h = vec![0u8; 256];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = if big_endian { 2 } else { 1 };
        let (t, m) = if big_endian {
            (2u16.to_be_bytes(), machine.to_be_bytes())
        } else {
            (2u16.to_le_bytes(), machine.to_le_bytes())
        };
        h[16..18].copy_from_slice(&t);
        h[18..20].copy_from_slice(&m);
        h
    }

    /// Builds a .tgz from (path, kind) entries with the tar crate, writing
    /// raw headers so that hostile paths are kept as given.
    enum E<'a> {
        File(&'a str, Vec<u8>, u32),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
        /// A hard link to an earlier entry.
        Link(&'a str, &'a str),
        Fifo(&'a str),
        /// A file with a name of any length (a GNU long-name entry).
        Long(String, Vec<u8>),
        /// A PAX `size=` record followed by a file whose ustar header
        /// says `header_size` and whose data is `data`.
        PaxSized(&'a str, String, u64, Vec<u8>),
    }

    fn tgz(dir: &Path, entries: &[E]) -> std::path::PathBuf {
        let path = dir.join("cni.tgz");
        let gz = flate2::write::GzEncoder::new(
            File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        let mut b = tar::Builder::new(gz);
        for e in entries {
            let mut h = tar::Header::new_gnu();
            let (name, data): (&str, &[u8]) = match e {
                E::File(n, d, mode) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*mode);
                    h.set_size(d.len() as u64);
                    (n, d)
                }
                E::Dir(n) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    (n, &[])
                }
                E::Symlink(n, t) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    h.set_link_name(t).unwrap();
                    (n, &[])
                }
                E::Link(n, t) => {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    h.set_link_name(t).unwrap();
                    (n, &[])
                }
                E::Fifo(n) => {
                    h.set_entry_type(tar::EntryType::Fifo);
                    h.set_size(0);
                    (n, &[])
                }
                E::Long(n, d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(0o755);
                    h.set_size(d.len() as u64);
                    b.append_data(&mut h, n, d.as_slice()).unwrap();
                    continue;
                }
                E::PaxSized(n, pax_size, header_size, d) => {
                    b.append_pax_extensions([("size", pax_size.as_bytes())])
                        .unwrap();
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(0o755);
                    h.set_size(*header_size);
                    (n, d.as_slice())
                }
            };
            // Write the name bytes directly: set_path refuses `..` and `/`.
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
        path
    }

    fn unpack_entries(entries: &[E], arch: &str) -> (Result<Unpacked, Refusal>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let archive = tgz(dir.path(), entries);
        let staging = dir.path().join("staging");
        std::fs::create_dir(&staging).unwrap();
        (unpack(&archive, &staging, arch).unwrap(), dir)
    }

    #[test]
    fn plugins_are_unpacked_0755_and_docs_left_out() {
        let (r, dir) = unpack_entries(
            &[
                E::Dir("./"),
                E::File("./bridge", elf(62, false), 0o4755),
                E::File("loopback", elf(62, false), 0o600),
                E::File("LICENSE", b"Apache".to_vec(), 0o644),
                E::Symlink("host-local-link", "bridge"),
            ],
            "amd64",
        );
        let r = r.unwrap();
        assert_eq!(
            r.plugins.iter().cloned().collect::<Vec<_>>(),
            vec!["bridge", "host-local-link", "loopback"]
        );
        assert_eq!(r.skipped, vec!["LICENSE"]);
        let mode = std::fs::metadata(dir.path().join("staging/bridge"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755, "setuid dropped, 0755");
        assert!(!dir.path().join("staging/LICENSE").exists());
    }

    #[test]
    fn hostile_entries_are_refused() {
        let cases: Vec<(Vec<E>, &str)> = vec![
            (
                vec![E::File("/etc/passwd", elf(62, false), 0o755)],
                "absolute path",
            ),
            (
                vec![E::File("../../usr/bin/evil", elf(62, false), 0o755)],
                "climbs out",
            ),
            (
                vec![E::File("sub/bridge", elf(62, false), 0o755)],
                "sub-directory",
            ),
            (vec![E::Dir("sub/")], "directory"),
            (
                vec![E::Symlink("bridge", "/usr/bin/sudo")],
                "points outside",
            ),
            (vec![E::Symlink("bridge", "../x")], "points outside"),
            (vec![E::Fifo("pipe")], "fifo"),
        ];
        for (entries, expected) in cases {
            let (r, dir) = unpack_entries(&entries, "amd64");
            match r {
                Err(Refusal::Unsafe(why)) => assert!(why.contains(expected), "{why}"),
                other => panic!("expected a refusal containing {expected:?}, got {other:?}"),
            }
            assert!(!dir.path().join("etc").exists());
        }
    }

    #[test]
    fn names_no_plugin_can_have_are_refused_and_quoted_safely() {
        let long = "p".repeat(300);
        let cases: Vec<(Vec<E>, String)> = vec![
            (
                vec![E::File("bri\ndge", elf(62, false), 0o755)],
                r#"the name "bri\ndge" has a control character"#.into(),
            ),
            (
                vec![E::File("a\u{1b}[31mred", elf(62, false), 0o755)],
                "has a control character".into(),
            ),
            (
                vec![E::Long(long.clone(), elf(62, false))],
                "is 300 bytes long (a file name has at most 255)".into(),
            ),
            (
                vec![
                    E::File("bridge", elf(62, false), 0o755),
                    E::Link("bridge", "bridge"),
                ],
                "points at itself".into(),
            ),
        ];
        for (entries, expected) in cases {
            let (r, _dir) = unpack_entries(&entries, "amd64");
            match r {
                Err(Refusal::Unsafe(why)) => {
                    assert!(why.contains(&expected), "{why}");
                    assert!(!why.contains('\n') && !why.contains('\u{1b}'), "{why:?}");
                    assert!(why.len() < 200, "{why}");
                }
                other => panic!("expected a refusal containing {expected:?}, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_hard_link_over_an_earlier_name_replaces_it_and_hidden_files_are_left_out() {
        let (r, dir) = unpack_entries(
            &[
                E::File("bridge", elf(62, false), 0o755),
                E::File("loopback", b"#!/bin/sh\n".to_vec(), 0o755),
                E::Link("loopback", "bridge"),
                E::File(".DS_Store", elf(62, false), 0o755),
                E::File("._bridge", elf(62, false), 0o755),
            ],
            "amd64",
        );
        let r = r.unwrap();
        assert_eq!(
            r.plugins.iter().cloned().collect::<Vec<_>>(),
            ["bridge", "loopback"]
        );
        let staging = dir.path().join("staging");
        assert_eq!(
            std::fs::read(staging.join("loopback")).unwrap(),
            elf(62, false)
        );
        assert!(!staging.join(".DS_Store").exists());
    }

    #[test]
    fn the_cap_counts_bytes_written_not_what_headers_say() {
        // The ustar header says 10 bytes, the PAX record 2 MiB, and 2 MiB
        // follow: the cap (1 MiB here) is met at the bytes written.
        let data = [elf(62, false), vec![0u8; 2 << 20]].concat();
        let size = data.len().to_string();
        let entries = [E::PaxSized("bridge", size, 10, data)];
        let dir = tempfile::tempdir().unwrap();
        let archive = tgz(dir.path(), &entries);
        let staging = dir.path().join("staging");
        std::fs::create_dir(&staging).unwrap();
        let r = unpack_at_most(&archive, &staging, "amd64", 1 << 20).unwrap();
        assert_eq!(r.unwrap_err(), Refusal::TooLarge);
        let written = std::fs::metadata(staging.join("bridge")).map_or(0, |m| m.len());
        assert!(written <= 1 << 20, "{written}");
        // The same archive under the real cap unpacks.
        let staging = dir.path().join("staging2");
        std::fs::create_dir(&staging).unwrap();
        let r = unpack(&archive, &staging, "amd64").unwrap().unwrap();
        assert!(r.plugins.contains("bridge"));
        assert_eq!(
            std::fs::metadata(staging.join("bridge")).unwrap().len(),
            (2 << 20) + 256
        );
    }

    #[test]
    fn a_size_near_u64_max_is_refused_without_overflow() {
        let entries = [
            E::File("loopback", elf(62, false), 0o755),
            E::PaxSized("bridge", u64::MAX.to_string(), 10, elf(62, false)),
        ];
        let (r, _dir) = unpack_entries(&entries, "amd64");
        // The tar reader itself may call it corrupt first: a refusal either way.
        let r = r.unwrap_err();
        assert!(
            matches!(r, Refusal::TooLarge | Refusal::Corrupt(_)),
            "{r:?}"
        );
        let entries = [
            E::File("loopback", elf(62, false), 0o755),
            E::PaxSized("bridge", (u64::MAX - 300).to_string(), 10, elf(62, false)),
        ];
        let (r, _dir) = unpack_entries(&entries, "amd64");
        let r = r.unwrap_err();
        assert!(
            matches!(r, Refusal::TooLarge | Refusal::Corrupt(_)),
            "{r:?}"
        );
    }

    #[test]
    fn another_architecture_is_named() {
        let (r, _dir) = unpack_entries(&[E::File("bridge", elf(62, false), 0o755)], "s390x");
        let refusal = r.unwrap_err();
        assert_eq!(
            refusal.message("cni-s390x"),
            "cni-s390x resource holds amd64 plugins; this machine is s390x"
        );
        let (r, _dir) = unpack_entries(&[E::File("bridge", elf(22, true), 0o755)], "s390x");
        assert!(r.unwrap().plugins.contains("bridge"));
    }

    #[test]
    fn not_gzip_not_tar_and_empty() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("s");
        std::fs::create_dir(&staging).unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"just text").unwrap();
        assert_eq!(
            unpack(&plain, &staging, "amd64").unwrap().unwrap_err(),
            Refusal::NotGzip
        );
        let gz_not_tar = dir.path().join("gz");
        let mut enc = flate2::write::GzEncoder::new(
            File::create(&gz_not_tar).unwrap(),
            flate2::Compression::fast(),
        );
        enc.write_all(&[7u8; 1000]).unwrap();
        enc.finish().unwrap();
        assert!(matches!(
            unpack(&gz_not_tar, &staging, "amd64").unwrap(),
            Err(Refusal::Corrupt(_))
        ));
        let (r, _d) = unpack_entries(&[E::File("README.md", b"# hi".to_vec(), 0o644)], "amd64");
        assert_eq!(r.unwrap_err(), Refusal::NoPlugins);
    }

    #[test]
    fn a_truncated_archive_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let full = tgz(dir.path(), &[E::File("bridge", vec![0x7f; 200_000], 0o755)]);
        let bytes = std::fs::read(&full).unwrap();
        let cut = dir.path().join("cut.tgz");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let staging = dir.path().join("s");
        std::fs::create_dir(&staging).unwrap();
        assert!(matches!(
            unpack(&cut, &staging, "amd64").unwrap(),
            Err(Refusal::Corrupt(_))
        ));
    }
}
