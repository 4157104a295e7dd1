//! The machine's architecture, from the kernel (uname, in-process), in the
//! names Juju and Debian use for resources and snaps.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    Amd64,
    S390x,
    Arm64,
    Ppc64el,
}

impl Arch {
    pub const ALL: [Arch; 4] = [Arch::Amd64, Arch::S390x, Arch::Arm64, Arch::Ppc64el];

    /// From `uname -m`.
    pub fn from_machine(machine: &str) -> Option<Arch> {
        match machine {
            "x86_64" => Some(Arch::Amd64),
            "s390x" => Some(Arch::S390x),
            "aarch64" => Some(Arch::Arm64),
            "ppc64le" => Some(Arch::Ppc64el),
            _ => None,
        }
    }

    /// The Debian/Juju name: `amd64`, `s390x`, `arm64`, `ppc64el`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::S390x => "s390x",
            Arch::Arm64 => "arm64",
            Arch::Ppc64el => "ppc64el",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kernel's machine name (`uname -m`) and what it maps to, if anything.
pub fn detect() -> (String, Option<Arch>) {
    let machine = nix::sys::utsname::uname()
        .map(|u| u.machine().to_string_lossy().into_owned())
        .unwrap_or_default();
    let arch = Arch::from_machine(&machine);
    (machine, arch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_map_to_debian_names() {
        assert_eq!(Arch::from_machine("x86_64"), Some(Arch::Amd64));
        assert_eq!(Arch::from_machine("s390x"), Some(Arch::S390x));
        assert_eq!(Arch::from_machine("aarch64"), Some(Arch::Arm64));
        assert_eq!(Arch::from_machine("ppc64le"), Some(Arch::Ppc64el));
        assert_eq!(Arch::from_machine("riscv64"), None);
        assert_eq!(
            Arch::from_machine("ppc64"),
            None,
            "big-endian POWER is not supported"
        );
    }

    #[test]
    fn this_machine_is_detected() {
        let (machine, arch) = detect();
        assert!(!machine.is_empty());
        let expected = match std::env::consts::ARCH {
            "x86_64" => Some(Arch::Amd64),
            "s390x" => Some(Arch::S390x),
            "aarch64" => Some(Arch::Arm64),
            "powerpc64" => Some(Arch::Ppc64el),
            _ => None,
        };
        assert_eq!(arch, expected);
    }
}
