//! The files a hook changes on the machine, written atomically
//! ([`crate::durable`]). Content that is already in place is not
//! rewritten, so converged hooks touch nothing; anything else first marks
//! the hook's intent ([`crate::intent`]), so that a hook killed half-way
//! is known to the next one.

use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::durable::{err, is_current, is_temporary_of, replace, TEMP_RANDOM_LEN};
pub use crate::durable::{read_optional, Change, FileError, Owner};

/// Writes `contents` to `path` with `mode` (and `owner`, if given) unless the
/// file already has exactly that content, mode and owner. Parent directories
/// must exist (see [`ensure_dir`]).
pub fn write_atomic(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<Owner>,
) -> Result<Change, FileError> {
    if is_current(path, contents, mode, owner)? {
        return Ok(Change::Unchanged);
    }
    crate::intent::before_change()?;
    replace(path, contents, mode, owner)
}

/// [`crate::durable::sweep_temporaries`] in the directory open as `dir`, never by path:
/// for a directory someone else owns, who could swap it for a link
/// between a look by path and an unlink.
fn sweep_temporaries_at(dir: &File, name: &str) {
    use std::os::fd::AsRawFd;
    // The descriptor's own entry lists the directory it holds open.
    let Ok(entries) = fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd())) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        if !is_temporary_of(&file.to_string_lossy(), name) {
            continue;
        }
        let is_file = nix::sys::stat::fstatat(
            Some(dir.as_raw_fd()),
            file.as_os_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .is_ok_and(|st| st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFREG);
        if is_file {
            let _ = nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                file.as_os_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
    }
}

/// Creates `dir` and its missing parents, giving the ones it creates `mode`.
pub fn ensure_dir(dir: &Path, mode: u32) -> Result<Change, FileError> {
    if dir.is_dir() {
        return Ok(Change::Unchanged);
    }
    crate::intent::before_change()?;
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, mode);
    builder
        .create(dir)
        .map_err(err("creating directory", dir))?;
    Ok(Change::Written)
}

/// The action of a [`FileError`] from [`write_in_owned_dir`] when the place
/// is not as it must be (a symlink, another owner): nothing was written.
pub const REFUSED: &str = "refusing to write in";

/// Writes `file` in the directory `dir` of `parent` (a user's home), both
/// named without following any symlink: `dir` is created (0700, given to
/// `owner`) if missing, and must otherwise be a real directory owned by
/// `owner`. The user owns that directory and could otherwise point it (or
/// the file) anywhere and have root write there; every step works on the
/// directory opened once, by descriptor. Unchanged content is not
/// rewritten.
pub fn write_in_owned_dir(
    parent: &Path,
    dir: &str,
    file: &str,
    contents: &[u8],
    mode: u32,
    owner: Owner,
) -> Result<Change, FileError> {
    use nix::fcntl::{openat, renameat, OFlag};
    use nix::sys::stat::{fstat, mkdirat, Mode};
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::fs::OpenOptionsExt;

    let dir_path = parent.join(dir);
    let path = dir_path.join(file);
    let errno = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |e: nix::errno::Errno| FileError {
            action,
            path,
            source: io::Error::from_raw_os_error(e as i32),
        }
    };
    let no_follow = OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let not_real = |path: &Path| FileError {
        action: REFUSED,
        path: path.to_path_buf(),
        source: io::Error::other("it is not a real directory (a symlink?)"),
    };
    let parent_fd = fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_DIRECTORY | no_follow).bits())
        .open(parent)
        .map_err(|e| match e.raw_os_error() {
            Some(nix::libc::ELOOP | nix::libc::ENOTDIR) => not_real(parent),
            Some(nix::libc::ENOENT) => FileError {
                action: REFUSED,
                path: parent.to_path_buf(),
                source: e,
            },
            _ => err("opening (without following links)", parent)(e),
        })?;
    let created = if fs::symlink_metadata(&dir_path).is_ok() {
        false
    } else {
        crate::intent::before_change()?;
        match mkdirat(
            Some(parent_fd.as_raw_fd()),
            dir,
            Mode::from_bits_truncate(0o700),
        ) {
            Ok(()) => true,
            Err(nix::errno::Errno::EEXIST) => false,
            Err(e) => return Err(errno("creating directory", &dir_path)(e)),
        }
    };
    let open_in = |at: &File, name: &str, flags: OFlag, mode: u32| -> nix::Result<File> {
        let fd = openat(
            Some(at.as_raw_fd()),
            name,
            flags | no_follow,
            Mode::from_bits_truncate(mode),
        )?;
        // SAFETY: openat just returned this descriptor, owned by nothing else.
        Ok(unsafe { File::from_raw_fd(fd) })
    };
    let dir_fd =
        open_in(&parent_fd, dir, OFlag::O_DIRECTORY | OFlag::O_RDONLY, 0).map_err(|e| {
            match e {
                // O_NOFOLLOW on a symlink, or not a directory at all.
                nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR => not_real(&dir_path),
                e => errno("opening (without following links)", &dir_path)(e),
            }
        })?;
    let stat = fstat(dir_fd.as_raw_fd()).map_err(errno("inspecting", &dir_path))?;
    if created {
        nix::unistd::fchown(
            dir_fd.as_raw_fd(),
            Some(owner.uid.into()),
            Some(owner.gid.into()),
        )
        .map_err(errno("setting the owner of", &dir_path))?;
    } else if stat.st_uid != owner.uid {
        return Err(FileError {
            action: REFUSED,
            path: dir_path,
            source: io::Error::other(format!(
                "it is owned by uid {}, not {}",
                stat.st_uid, owner.uid
            )),
        });
    }
    // Already in place?
    if let Ok(mut current) = open_in(&dir_fd, file, OFlag::O_RDONLY, 0) {
        let meta = current.metadata().map_err(err("inspecting", &path))?;
        if meta.is_file()
            && meta.len() == contents.len() as u64
            && meta.mode() & 0o7777 == mode
            && (meta.uid(), meta.gid()) == (owner.uid, owner.gid)
        {
            let mut now = Vec::with_capacity(contents.len());
            io::Read::read_to_end(&mut current, &mut now).map_err(err("reading", &path))?;
            if now == contents {
                return Ok(Change::Unchanged);
            }
        }
    }
    crate::intent::before_change()?;
    sweep_temporaries_at(&dir_fd, file);
    let tmp_name = format!(".{file}.{}.tmp", random_suffix());
    let mut tmp = open_in(
        &dir_fd,
        &tmp_name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
        0o600,
    )
    .map_err(errno("creating a temporary file beside", &path))?;
    let written = (|| -> Result<(), FileError> {
        nix::unistd::fchown(
            tmp.as_raw_fd(),
            Some(owner.uid.into()),
            Some(owner.gid.into()),
        )
        .map_err(errno("setting the owner of the new", &path))?;
        tmp.set_permissions(Permissions::from_mode(mode))
            .map_err(err("setting the mode of the new", &path))?;
        tmp.write_all(contents).map_err(err("writing", &path))?;
        tmp.sync_all().map_err(err("syncing", &path))?;
        renameat(
            Some(dir_fd.as_raw_fd()),
            tmp_name.as_str(),
            Some(dir_fd.as_raw_fd()),
            file,
        )
        .map_err(errno("renaming into place", &path))
    })();
    if let Err(e) = written {
        let _ = nix::unistd::unlinkat(
            Some(dir_fd.as_raw_fd()),
            tmp_name.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
        return Err(e);
    }
    dir_fd
        .sync_all()
        .map_err(err("syncing the directory of", &path))?;
    Ok(Change::Written)
}

/// Six letters and digits, different in every call.
fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let mut n = hasher.finish();
    (0..TEMP_RANDOM_LEN)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// Removes a file that may already be gone.
pub fn remove_if_present(path: &Path) -> Result<Change, FileError> {
    if fs::symlink_metadata(path).is_err() {
        return Ok(Change::Unchanged);
    }
    crate::intent::before_change()?;
    match fs::remove_file(path) {
        Ok(()) => Ok(Change::Written),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Change::Unchanged),
        Err(e) => Err(err("removing", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Owner {
        Owner {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        }
    }

    #[test]
    fn an_owned_dirs_leftovers_are_swept_through_its_descriptor_and_links_left() {
        let home = tempfile::tempdir().unwrap();
        write_in_owned_dir(home.path(), ".kube", "config", b"one", 0o600, me()).unwrap();
        let kube = home.path().join(".kube");
        let leftover = kube.join(".config.Ab3xZ9.tmp");
        std::fs::write(&leftover, b"torn").unwrap();
        // A link named like a leftover is not the charm's: left alone, and
        // never followed.
        let victim = home.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let link = kube.join(".config.Zz9yY8.tmp");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let change =
            write_in_owned_dir(home.path(), ".kube", "config", b"two", 0o600, me()).unwrap();
        assert_eq!(change, Change::Written);
        assert!(!leftover.exists());
        assert!(link.symlink_metadata().is_ok());
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(std::fs::read(kube.join("config")).unwrap(), b"two");
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn writes_with_the_mode_and_skips_identical_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.key");
        assert_eq!(
            write_atomic(&path, b"secret", 0o600, None).unwrap(),
            Change::Written
        );
        assert_eq!(mode_of(&path), 0o600);
        let inode = fs::metadata(&path).unwrap().ino();
        assert_eq!(
            write_atomic(&path, b"secret", 0o600, None).unwrap(),
            Change::Unchanged
        );
        assert_eq!(
            fs::metadata(&path).unwrap().ino(),
            inode,
            "file was rewritten"
        );
    }

    #[test]
    fn a_mode_change_alone_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.crt");
        write_atomic(&path, b"cert", 0o600, None).unwrap();
        assert_eq!(
            write_atomic(&path, b"cert", 0o644, None).unwrap(),
            Change::Written
        );
        assert_eq!(mode_of(&path), 0o644);
    }

    #[test]
    fn the_umask_does_not_change_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plugin");
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        let result = write_atomic(&path, b"x", 0o755, None);
        nix::sys::stat::umask(old);
        result.unwrap();
        assert_eq!(mode_of(&path), 0o755);
    }

    #[test]
    fn no_temporary_files_are_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        write_atomic(&path, b"a", 0o600, None).unwrap();
        write_atomic(&path, b"b", 0o600, None).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("config")]);
        assert_eq!(fs::read(&path).unwrap(), b"b");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("file");
        assert!(write_atomic(&path, b"x", 0o600, None).is_err());
        let kept = dir.path().join("kept");
        write_atomic(&kept, b"old", 0o644, None).unwrap();
        // The same file written again by a process that may not write more
        // than 16 bytes to any file (RLIMIT_FSIZE): the write fails half-way
        // through the new content, as on a full disk.
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "files::tests::write_with_a_small_file_size_limit",
            ])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env("FILES_TEST_TARGET", &kept)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("write failed as expected"),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(fs::read(&kept).unwrap(), b"old");
        assert_eq!(mode_of(&kept), 0o644);
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
    }

    /// Run by [`a_failed_write_leaves_the_old_file`] in a process of its own.
    #[test]
    #[ignore = "a helper run in a child process"]
    fn write_with_a_small_file_size_limit() {
        use nix::sys::resource::{setrlimit, Resource};
        use nix::sys::signal::{signal, SigHandler, Signal};
        let Some(target) = std::env::var_os("FILES_TEST_TARGET") else {
            return;
        };
        // Past the limit write(2) fails with EFBIG instead of the signal.
        unsafe { signal(Signal::SIGXFSZ, SigHandler::SigIgn) }.unwrap();
        setrlimit(Resource::RLIMIT_FSIZE, 16, 16).unwrap();
        let result = write_atomic(Path::new(&target), &[b'n'; 4096], 0o644, None);
        match result {
            Err(e) if e.source.kind() == io::ErrorKind::FileTooLarge => {
                println!("write failed as expected: {e}")
            }
            other => println!("unexpected: {other:?}"),
        }
    }

    #[test]
    fn leftovers_of_a_killed_write_are_swept_by_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        let ours = dir.path().join(".kubeconfig.Ab3xZ9.tmp");
        let not_ours = [
            dir.path().join(".kubeconfig.notours.tmp"),
            dir.path().join(".other.Ab3xZ9.tmp"),
            dir.path().join("kubeconfig.Ab3xZ9.tmp"),
        ];
        for f in not_ours.iter().chain([&ours]) {
            fs::write(f, b"x").unwrap();
        }
        write_atomic(&path, b"new", 0o600, None).unwrap();
        assert!(!ours.exists());
        for f in &not_ours {
            assert!(f.exists(), "{} kept", f.display());
        }
    }

    #[test]
    fn ensure_dir_creates_parents_with_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("root/cdk");
        let existing = mode_of(dir.path());
        assert_eq!(ensure_dir(&deep, 0o750).unwrap(), Change::Written);
        assert_eq!(ensure_dir(&deep, 0o750).unwrap(), Change::Unchanged);
        assert!(deep.is_dir());
        // Every directory it created has the mode (umask 022 leaves 0750).
        assert_eq!(mode_of(&deep), 0o750);
        assert_eq!(mode_of(deep.parent().unwrap()), 0o750);
        assert_eq!(
            mode_of(dir.path()),
            existing,
            "an existing parent is left alone"
        );
    }
}
