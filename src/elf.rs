//! Which machine an executable is for, from its ELF header: the check that
//! catches a CNI tarball built for another architecture before it is
//! installed (the mistake operators made most on s390x).

/// What a file's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    NotElf,
    /// An ELF object that is not an executable (a relocatable object, a core).
    NotExecutable,
    /// An executable for `arch` (a Debian architecture name, or a
    /// description of an architecture this charm does not support).
    Executable {
        arch: &'static str,
    },
}

const EM_386: u16 = 3;
const EM_PPC: u16 = 20;
const EM_PPC64: u16 = 21;
const EM_S390: u16 = 22;
const EM_ARM: u16 = 40;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const EM_RISCV: u16 = 243;

/// Reads the ELF header at the start of `head` (at least 20 bytes are
/// needed; fewer is not an ELF file).
pub fn classify(head: &[u8]) -> Binary {
    if head.len() < 20 || &head[..4] != b"\x7fELF" {
        return Binary::NotElf;
    }
    let is64 = head[4] == 2;
    let big_endian = match head[5] {
        1 => false,
        2 => true,
        _ => return Binary::NotElf,
    };
    let half = |at: usize| {
        let bytes = [head[at], head[at + 1]];
        if big_endian {
            u16::from_be_bytes(bytes)
        } else {
            u16::from_le_bytes(bytes)
        }
    };
    // ET_EXEC, or ET_DYN for position-independent executables.
    if !matches!(half(16), 2 | 3) {
        return Binary::NotExecutable;
    }
    let arch = match (half(18), is64, big_endian) {
        (EM_X86_64, true, false) => "amd64",
        (EM_S390, true, true) => "s390x",
        (EM_AARCH64, true, false) => "arm64",
        (EM_PPC64, true, false) => "ppc64el",
        (EM_PPC64, true, true) => "ppc64 (big-endian)",
        (EM_S390, false, _) => "s390 (31-bit)",
        (EM_386, _, _) => "i386",
        (EM_ARM, _, _) => "armhf",
        (EM_PPC, _, _) => "powerpc (32-bit)",
        (EM_RISCV, _, _) => "riscv64",
        _ => "an unknown architecture",
    };
    Binary::Executable { arch }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(class: u8, data: u8, e_type: u16, machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = data;
        let (t, m) = if data == 2 {
            (e_type.to_be_bytes(), machine.to_be_bytes())
        } else {
            (e_type.to_le_bytes(), machine.to_le_bytes())
        };
        h[16..18].copy_from_slice(&t);
        h[18..20].copy_from_slice(&m);
        h
    }

    #[test]
    fn byte_order_is_read_from_the_header() {
        assert_eq!(
            classify(&header(2, 1, 2, 62)),
            Binary::Executable { arch: "amd64" }
        );
        assert_eq!(
            classify(&header(2, 2, 2, 22)),
            Binary::Executable { arch: "s390x" }
        );
        assert_eq!(
            classify(&header(2, 1, 3, 183)),
            Binary::Executable { arch: "arm64" }
        );
        assert_eq!(
            classify(&header(2, 1, 2, 21)),
            Binary::Executable { arch: "ppc64el" }
        );
        assert_eq!(
            classify(&header(2, 2, 2, 21)),
            Binary::Executable {
                arch: "ppc64 (big-endian)"
            }
        );
        // s390x's e_machine read with the wrong byte order would be 0x1600.
        assert_ne!(
            classify(&header(2, 1, 2, 22 << 8)),
            Binary::Executable { arch: "s390x" }
        );
    }

    #[test]
    fn non_executables_and_non_elf() {
        assert_eq!(classify(&header(2, 1, 1, 62)), Binary::NotExecutable);
        assert_eq!(classify(b"#!/bin/sh\necho hi\n........"), Binary::NotElf);
        assert_eq!(classify(b"\x7fELF"), Binary::NotElf);
        assert_eq!(classify(b""), Binary::NotElf);
    }

    #[test]
    fn the_test_binary_itself_is_this_machines() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let expected = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "s390x" => "s390x",
            "aarch64" => "arm64",
            "powerpc64" => "ppc64el",
            _ => return,
        };
        assert_eq!(classify(&exe[..64]), Binary::Executable { arch: expected });
    }
}
