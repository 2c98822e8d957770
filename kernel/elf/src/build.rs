//! Builders of small ELF images for tests: the host tests of every loader, and the kernel's
//! in-QEMU loader tests.

/// Bytes of an ELF64 file header.
const EHDR_SIZE: usize = 64;
/// Bytes of an ELF64 program header.
const PHDR_SIZE: usize = 56;

/// A program header to put into [`image`].
#[derive(Clone, Copy, Debug)]
pub struct Phdr {
    /// `p_type`.
    pub kind: u32,
    /// `p_flags` (PF_X = 1, PF_W = 2, PF_R = 4).
    pub flags: u32,
    /// `p_offset`.
    pub offset: u64,
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_filesz`.
    pub filesz: u64,
    /// `p_memsz`.
    pub memsz: u64,
}

impl Phdr {
    /// A `PT_LOAD` header.
    pub const fn load(flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Self {
        Phdr {
            kind: elf::abi::PT_LOAD,
            flags,
            offset,
            vaddr,
            filesz,
            memsz,
        }
    }
}

/// Size of the headers [`image`] writes for `phdrs.len()` program headers; segment data
/// goes after this offset.
pub const fn headers_len(phdrs: usize) -> usize {
    EHDR_SIZE + phdrs * PHDR_SIZE
}

/// Writes an x86_64 `ET_EXEC` ELF header and the program headers into `out` (which must be
/// at least [`headers_len`] long; the rest of `out` is left as is). Returns false if `out`
/// is too short.
pub fn image(out: &mut [u8], entry: u64, phdrs: &[Phdr]) -> bool {
    let Some(head) = out.get_mut(..headers_len(phdrs.len())) else {
        return false;
    };
    head.fill(0);
    head[..4].copy_from_slice(b"\x7fELF");
    head[4] = 2; // ELFCLASS64
    head[5] = 1; // little-endian
    head[6] = 1; // EV_CURRENT
    let mut put = |at: usize, v: &[u8]| head[at..at + v.len()].copy_from_slice(v);
    put(16, &elf::abi::ET_EXEC.to_le_bytes());
    put(18, &elf::abi::EM_X86_64.to_le_bytes());
    put(20, &1u32.to_le_bytes());
    put(24, &entry.to_le_bytes());
    put(32, &(EHDR_SIZE as u64).to_le_bytes());
    put(52, &(EHDR_SIZE as u16).to_le_bytes());
    put(54, &(PHDR_SIZE as u16).to_le_bytes());
    put(56, &(phdrs.len() as u16).to_le_bytes());
    for (i, p) in phdrs.iter().enumerate() {
        let at = EHDR_SIZE + i * PHDR_SIZE;
        put(at, &p.kind.to_le_bytes());
        put(at + 4, &p.flags.to_le_bytes());
        put(at + 8, &p.offset.to_le_bytes());
        put(at + 16, &p.vaddr.to_le_bytes());
        put(at + 24, &p.vaddr.to_le_bytes());
        put(at + 32, &p.filesz.to_le_bytes());
        put(at + 40, &p.memsz.to_le_bytes());
        put(at + 48, &crate::PAGE.to_le_bytes());
    }
    true
}

/// A cheap deterministic fuzz for the loaders' host tests: for each of the first `len` bytes of
/// `image`, `per_byte` times, sets it to a pseudo-random value (xorshift) and calls `f` with the
/// whole mutated image and with a pseudo-random prefix of it; the byte is restored afterwards.
pub fn mutations(image: &mut [u8], len: usize, per_byte: usize, mut f: impl FnMut(&[u8])) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..len.min(image.len()) {
        let original = image[i];
        for _ in 0..per_byte {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            image[i] = state as u8;
            f(image);
            let cut = (state >> 8) as usize % (image.len() + 1);
            f(&image[..cut]);
        }
        image[i] = original;
    }
}
