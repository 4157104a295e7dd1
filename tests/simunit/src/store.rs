//! The simulation's files, read and written under one lock so that tool
//! processes and the test harness never see half an update.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The files of one simulated unit, all under one directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: impl Into<PathBuf>) -> Layout {
        Layout { dir: dir.into() }
    }
    /// The layout of the simulation a tool executable belongs to: tools are
    /// hard links at `<dir>/tools/<name>` and `<dir>/sbin/<name>`.
    pub fn of_current_exe() -> io::Result<Layout> {
        let exe = std::env::current_exe()?;
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| io::Error::other(format!("{} is not in a simulation", exe.display())))?;
        if !dir.join("unit.json").exists() {
            return Err(io::Error::other(format!(
                "{} has no unit.json: this executable is not in a simulated unit",
                dir.display()
            )));
        }
        Ok(Layout::new(dir))
    }
    pub fn unit_file(&self) -> PathBuf {
        self.dir.join("unit.json")
    }
    pub fn machine_file(&self) -> PathBuf {
        self.dir.join("machine.json")
    }
    pub fn tools_dir(&self) -> PathBuf {
        self.dir.join("tools")
    }
    pub fn sbin_dir(&self) -> PathBuf {
        self.dir.join("sbin")
    }
    pub fn charm_dir(&self) -> PathBuf {
        self.dir.join("charm")
    }
    pub fn root_dir(&self) -> PathBuf {
        self.dir.join("root")
    }
    pub fn uploads_dir(&self) -> PathBuf {
        self.dir.join("uploads")
    }
    pub fn agent_dir(&self) -> PathBuf {
        self.dir.join("agent")
    }

    /// Runs `f` on the state in `file` under the simulation's lock, and
    /// saves it if `f` returns `save = true`.
    pub fn with<T, R>(&self, file: &Path, f: impl FnOnce(&mut T) -> (R, bool)) -> io::Result<R>
    where
        T: Serialize + DeserializeOwned + Default,
    {
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("lock"))?;
        lock.lock()?;
        let mut value: T = match fs::read(file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(io::Error::other)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => T::default(),
            Err(e) => return Err(e),
        };
        let (result, save) = f(&mut value);
        if save {
            let tmp = file.with_extension("json.tmp");
            fs::write(
                &tmp,
                serde_json::to_vec_pretty(&value).map_err(io::Error::other)?,
            )?;
            fs::rename(&tmp, file)?;
        }
        Ok(result)
    }
}
