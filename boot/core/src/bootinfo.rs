//! Reading what the previous loader left us: Multiboot1, Multiboot2 or PVH boot information.
//!
//! The structures are scattered over physical memory and linked by physical addresses, so they
//! are read through [`PhysMem`] (the shim's identity map on the target, a byte buffer in the
//! tests). Every address is untrusted: a bad one is an error, never a wild read.
//!
//! The result is protocol-neutral: module 0 is the kernel, and each module already has its
//! Limine `path` and `string` split out (convention: the first word of a loader module string is
//! the path, the rest the string; notes/boot.md §5.15).

use crate::FixedVec;
use crate::memmap::Kind;

/// Multiboot2 loader magic (EAX).
pub const MB2_MAGIC: u32 = 0x36d7_6289;
/// Multiboot1 loader magic (EAX).
pub const MB1_MAGIC: u32 = 0x2bad_b002;
/// `hvm_start_info.magic` (PVH leaves EAX undefined, so only this identifies it).
pub const PVH_MAGIC: u32 = 0x336e_c578;

/// Read access to physical memory.
pub trait PhysMem {
    /// The `len` bytes at physical `addr`, or `None` if they are not readable (or `addr` is 0).
    fn bytes(&self, addr: u64, len: u64) -> Option<&[u8]>;
}

/// Why the boot information was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Neither Multiboot1, Multiboot2 nor PVH.
    UnknownProtocol,
    /// A structure points at unreadable memory or runs past its end.
    Unreadable,
    /// No memory map was given.
    NoMemoryMap,
    /// No modules were given (module 0 must be the kernel).
    NoKernel,
    /// More modules, map entries or structures than the shim tracks.
    TooMany,
}

/// The boot protocol that started the shim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    /// Multiboot1 (QEMU `-kernel` with several `-initrd` modules).
    #[default]
    Multiboot1,
    /// Multiboot2 (GRUB).
    Multiboot2,
    /// PVH (QEMU and other VMMs: one module, no module strings).
    Pvh,
}

/// A module as given by the loader.
#[derive(Clone, Copy, Debug, Default)]
pub struct Module<'a> {
    /// Its contents, where the loader put them.
    pub data: &'a [u8],
    /// Limine path (a leading slash is added by the shim if missing).
    pub path: &'a [u8],
    /// Limine string; for module 0, the kernel command line.
    pub string: &'a [u8],
}

/// Where the ACPI RSDP is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rsdp {
    /// At this physical address.
    Phys(u64),
    /// Only a copy was given (Multiboot2 tags 14/15): the bytes and their length.
    Copy([u8; 36], usize),
}

/// An RGB linear framebuffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Framebuffer {
    /// Physical address.
    pub addr: u64,
    /// Bytes per line.
    pub pitch: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bits per pixel.
    pub bpp: u8,
    /// `[red_size, red_shift, green_size, green_shift, blue_size, blue_shift]`.
    pub masks: [u8; 6],
}

/// Protocol-neutral boot information.
#[derive(Default)]
pub struct BootInfo<'a> {
    /// Which protocol.
    pub protocol: Protocol,
    /// Module 0 is the kernel, its `string` the kernel command line.
    pub modules: FixedVec<Module<'a>, 16>,
    /// Raw firmware memory map.
    pub memory: FixedVec<(u64, u64, Kind), 128>,
    /// ACPI RSDP, when the loader said where it is.
    pub rsdp: Option<Rsdp>,
    /// Framebuffer, when the loader set one up.
    pub framebuffer: Option<Framebuffer>,
    /// Booted from 64-bit UEFI (Multiboot2 tag 12).
    pub efi64: bool,
    /// Physical ranges `(base, len)` holding boot information and module data: keep until the jump.
    pub used: FixedVec<(u64, u64), 48>,
}

fn u32_at(mem: &impl PhysMem, addr: u64) -> Result<u32, Error> {
    let b = mem.bytes(addr, 4).ok_or(Error::Unreadable)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(mem: &impl PhysMem, addr: u64) -> Result<u64, Error> {
    Ok(u64::from(u32_at(mem, addr)?) | (u64::from(u32_at(mem, addr + 4)?) << 32))
}

/// The NUL-terminated string at `addr` (at most 4 KiB), without the NUL.
fn cstr(mem: &impl PhysMem, addr: u64) -> Result<&[u8], Error> {
    let mut len = 0;
    while mem.bytes(addr + len, 1).ok_or(Error::Unreadable)?[0] != 0 {
        len += 1;
        if len > 4096 {
            return Err(Error::Unreadable);
        }
    }
    mem.bytes(addr, len.max(1))
        .map(|b| &b[..len as usize])
        .ok_or(Error::Unreadable)
}

/// Splits a loader module string into `(path, rest)` at the first space.
pub fn split_path(s: &[u8]) -> (&[u8], &[u8]) {
    let s = s.trim_ascii();
    match s.iter().position(|&c| c == b' ') {
        Some(i) => (&s[..i], s[i..].trim_ascii_start()),
        None => (s, &[]),
    }
}

impl<'a> BootInfo<'a> {
    fn use_range(&mut self, base: u64, len: u64) -> Result<(), Error> {
        self.used.push((base, len)).map_err(|()| Error::TooMany)
    }

    fn add_module(
        &mut self,
        mem: &'a impl PhysMem,
        base: u64,
        len: u64,
        string: &'a [u8],
    ) -> Result<(), Error> {
        let data = mem.bytes(base, len).ok_or(Error::Unreadable)?;
        self.use_range(base, len)?;
        let (path, string) = split_path(string);
        self.modules
            .push(Module { data, path, string })
            .map_err(|()| Error::TooMany)
    }

    fn add_memory(&mut self, base: u64, len: u64, ty: u32) -> Result<(), Error> {
        self.memory
            .push((base, len, Kind::from_e820(ty)))
            .map_err(|()| Error::TooMany)
    }
}

/// Identifies the protocol from the entry registers and parses its boot information.
///
/// Order matters (notes/boot.md §3.4): Multiboot2 by EAX, then PVH by the structure's magic
/// (qboot's PVH entry leaves the Multiboot1 magic in EAX), and only then Multiboot1.
pub fn parse(mem: &impl PhysMem, eax: u32, ebx: u32) -> Result<BootInfo<'_>, Error> {
    let info = u64::from(ebx);
    let bi = if eax == MB2_MAGIC {
        multiboot2(mem, info)?
    } else if u32_at(mem, info).ok() == Some(PVH_MAGIC) {
        pvh(mem, info)?
    } else if eax == MB1_MAGIC {
        multiboot1(mem, info)?
    } else {
        return Err(Error::UnknownProtocol);
    };
    if bi.memory.is_empty() {
        return Err(Error::NoMemoryMap);
    }
    if bi.modules.is_empty() {
        return Err(Error::NoKernel);
    }
    Ok(bi)
}

fn multiboot1(mem: &impl PhysMem, info: u64) -> Result<BootInfo<'_>, Error> {
    let mut bi = BootInfo {
        protocol: Protocol::Multiboot1,
        ..BootInfo::default()
    };
    bi.use_range(info, 88)?;
    let flags = u32_at(mem, info)?;
    if flags & (1 << 3) != 0 {
        let (count, list) = (
            u64::from(u32_at(mem, info + 20)?),
            u64::from(u32_at(mem, info + 24)?),
        );
        bi.use_range(list, count * 16)?;
        for i in 0..count {
            let m = list + 16 * i;
            let (start, end) = (u64::from(u32_at(mem, m)?), u64::from(u32_at(mem, m + 4)?));
            let string = u64::from(u32_at(mem, m + 8)?);
            let s = if string != 0 { cstr(mem, string)? } else { &[] };
            bi.use_range(string, s.len() as u64 + 1)?;
            bi.add_module(
                mem,
                start,
                end.checked_sub(start).ok_or(Error::Unreadable)?,
                s,
            )?;
        }
    }
    if flags & (1 << 6) != 0 {
        let (len, addr) = (
            u64::from(u32_at(mem, info + 44)?),
            u64::from(u32_at(mem, info + 48)?),
        );
        bi.use_range(addr, len)?;
        let mut e = addr;
        while e + 24 <= addr + len {
            // `size` does not count itself.
            let size = u64::from(u32_at(mem, e)?);
            bi.add_memory(
                u64_at(mem, e + 4)?,
                u64_at(mem, e + 12)?,
                u32_at(mem, e + 20)?,
            )?;
            e += size + 4;
        }
    }
    Ok(bi)
}

fn multiboot2(mem: &impl PhysMem, info: u64) -> Result<BootInfo<'_>, Error> {
    let mut bi = BootInfo {
        protocol: Protocol::Multiboot2,
        ..BootInfo::default()
    };
    let total = u64::from(u32_at(mem, info)?);
    bi.use_range(info, total)?;
    let mut tag = info + 8;
    while tag + 8 <= info + total {
        let (ty, size) = (u32_at(mem, tag)?, u64::from(u32_at(mem, tag + 4)?));
        if ty == 0 || size < 8 || tag + size > info + total {
            break;
        }
        match ty {
            3 => {
                let (start, end) = (
                    u64::from(u32_at(mem, tag + 8)?),
                    u64::from(u32_at(mem, tag + 12)?),
                );
                let s = cstr(mem, tag + 16)?;
                bi.add_module(
                    mem,
                    start,
                    end.checked_sub(start).ok_or(Error::Unreadable)?,
                    s,
                )?;
            }
            6 => {
                let entry_size = u64::from(u32_at(mem, tag + 8)?).max(24);
                let mut e = tag + 16;
                while e + 24 <= tag + size {
                    bi.add_memory(u64_at(mem, e)?, u64_at(mem, e + 8)?, u32_at(mem, e + 16)?)?;
                    e += entry_size;
                }
            }
            8 => {
                let b = mem.bytes(tag + 8, 30).ok_or(Error::Unreadable)?;
                let le32 = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
                // Type 1 = direct RGB; colour info starts at +32 (the reserved field is 16 bits).
                if b[21] == 1 && size >= 38 {
                    let [rp, rs, gp, gs, bp, bs] = [b[24], b[25], b[26], b[27], b[28], b[29]];
                    bi.framebuffer = Some(Framebuffer {
                        addr: u64::from(le32(0)) | (u64::from(le32(4)) << 32),
                        pitch: le32(8),
                        width: le32(12),
                        height: le32(16),
                        bpp: b[20],
                        masks: [rs, rp, gs, gp, bs, bp],
                    });
                }
            }
            12 => bi.efi64 = true,
            14 | 15 => {
                let len = (size - 8).min(36) as usize;
                let mut copy = [0; 36];
                copy[..len]
                    .copy_from_slice(mem.bytes(tag + 8, len as u64).ok_or(Error::Unreadable)?);
                // Prefer the v2 copy (tag 15) when both are present.
                if ty == 15 || bi.rsdp.is_none() {
                    bi.rsdp = Some(Rsdp::Copy(copy, len));
                }
            }
            _ => {}
        }
        tag += (size + 7) & !7;
    }
    Ok(bi)
}

fn pvh(mem: &impl PhysMem, info: u64) -> Result<BootInfo<'_>, Error> {
    let mut bi = BootInfo {
        protocol: Protocol::Pvh,
        ..BootInfo::default()
    };
    bi.use_range(info, 56)?;
    let version = u32_at(mem, info + 4)?;
    let nr_modules = u64::from(u32_at(mem, info + 12)?);
    let modlist = u64_at(mem, info + 16)?;
    let cmdline_addr = u64_at(mem, info + 24)?;
    let rsdp = u64_at(mem, info + 32)?;
    let cmdline = if cmdline_addr != 0 {
        cstr(mem, cmdline_addr)?
    } else {
        &[]
    };
    bi.use_range(cmdline_addr, cmdline.len() as u64 + 1)?;
    if rsdp != 0 {
        bi.rsdp = Some(Rsdp::Phys(rsdp));
    }
    if version >= 1 {
        let (map, count) = (u64_at(mem, info + 40)?, u64::from(u32_at(mem, info + 48)?));
        bi.use_range(map, count * 24)?;
        for i in 0..count {
            let e = map + 24 * i;
            bi.add_memory(u64_at(mem, e)?, u64_at(mem, e + 8)?, u32_at(mem, e + 16)?)?;
        }
    }
    // QEMU passes exactly one module without a string. A bundle (initfs archive with a `kernel`
    // entry) carries the kernel and every other module; anything else is the kernel itself.
    if nr_modules >= 1 {
        bi.use_range(modlist, 32 * nr_modules)?;
        let (base, len) = (u64_at(mem, modlist)?, u64_at(mem, modlist + 8)?);
        let data = mem.bytes(base, len).ok_or(Error::Unreadable)?;
        bi.use_range(base, len)?;
        let bundle = hsync_initfs::Archive::parse(data)
            .ok()
            .filter(|a| a.get("kernel").is_some());
        match bundle {
            Some(archive) => {
                let kernel = archive.get("kernel").unwrap_or_default();
                bi.modules
                    .push(Module {
                        data: kernel,
                        path: b"kernel",
                        string: cmdline,
                    })
                    .map_err(|()| Error::TooMany)?;
                for entry in archive.entries().filter(|e| e.name != "kernel") {
                    let name = entry.name.as_bytes();
                    let m = Module {
                        data: entry.data,
                        path: name,
                        string: name,
                    };
                    bi.modules.push(m).map_err(|()| Error::TooMany)?;
                }
            }
            None => bi
                .modules
                .push(Module {
                    data,
                    path: b"kernel",
                    string: cmdline,
                })
                .map_err(|()| Error::TooMany)?,
        }
    }
    Ok(bi)
}

/// Finds the RSDP the BIOS way: the first KiB of the EBDA, then 0xE0000–0xFFFFF, on 16-byte
/// boundaries, by signature and checksum.
pub fn scan_rsdp(mem: &impl PhysMem) -> Option<u64> {
    let ebda = u64::from(
        mem.bytes(0x40e, 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))?,
    ) << 4;
    let areas = [(ebda, ebda + 1024), (0xe0000, 0x100000)];
    areas
        .into_iter()
        .filter(|&(lo, _)| lo >= 0x1000)
        .flat_map(|(lo, hi)| (lo..hi).step_by(16))
        .find(|&a| {
            mem.bytes(a, 20).is_some_and(|b| {
                b.starts_with(b"RSD PTR ") && b.iter().fold(0u8, |s, &x| s.wrapping_add(x)) == 0
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    /// Fake physical memory: one buffer starting at physical 0.
    struct Mem(Vec<u8>);

    impl PhysMem for Mem {
        fn bytes(&self, addr: u64, len: u64) -> Option<&[u8]> {
            if addr == 0 {
                return None;
            }
            self.0
                .get(usize::try_from(addr).ok()?..usize::try_from(addr.checked_add(len)?).ok()?)
        }
    }

    impl Mem {
        fn new() -> Self {
            Mem(std::vec![0; 0x10_0000])
        }
        fn put(&mut self, addr: u64, data: &[u8]) {
            self.0[addr as usize..addr as usize + data.len()].copy_from_slice(data);
        }
        fn put32(&mut self, addr: u64, v: u32) {
            self.put(addr, &v.to_le_bytes());
        }
        fn put64(&mut self, addr: u64, v: u64) {
            self.put(addr, &v.to_le_bytes());
        }
    }

    #[test]
    fn split_path_takes_first_word() {
        assert_eq!(
            split_path(b"/k/kernel.elf test log=info"),
            (&b"/k/kernel.elf"[..], &b"test log=info"[..])
        );
        assert_eq!(
            split_path(b"  initfs.img  "),
            (&b"initfs.img"[..], &b""[..])
        );
    }

    #[test]
    fn multiboot1_as_qemu_lays_it_out() {
        let mut m = Mem::new();
        let mbi = 0x9500;
        m.put32(mbi, (1 << 3) | (1 << 6) | (1 << 2));
        m.put32(mbi + 20, 2);
        m.put32(mbi + 24, 0x11d000 - 0x100000); // keep inside the fake 1 MiB
        let list = 0x1d000;
        m.put(0x30000, b"kernel.elf test\0");
        m.put(0x30100, b"/tmp/initfs.img initfs\0");
        for (i, (start, end, s)) in [
            (0x40000u32, 0x40010u32, 0x30000u32),
            (0x50000, 0x50004, 0x30100),
        ]
        .into_iter()
        .enumerate()
        {
            let e = list + 16 * i as u64;
            m.put32(e, start);
            m.put32(e + 4, end);
            m.put32(e + 8, s);
        }
        m.put(0x40000, &[0xaa; 16]);
        m.put(0x50000, b"HSFS");
        m.put32(mbi + 44, 48);
        m.put32(mbi + 48, 0x9000);
        for (i, (base, len, ty)) in [(0u64, 0x9fc00u64, 1u32), (0x100000, 0xff00000, 1)]
            .into_iter()
            .enumerate()
        {
            let e = 0x9000 + 24 * i as u64;
            m.put32(e, 20);
            m.put64(e + 4, base);
            m.put64(e + 12, len);
            m.put32(e + 20, ty);
        }
        let bi = parse(&m, MB1_MAGIC, mbi as u32).unwrap();
        assert_eq!(bi.protocol, Protocol::Multiboot1);
        let mods = bi.modules.as_slice();
        assert_eq!(
            (mods[0].path, mods[0].string, mods[0].data),
            (&b"kernel.elf"[..], &b"test"[..], &[0xaa; 16][..])
        );
        assert_eq!(
            (mods[1].path, mods[1].string, mods[1].data),
            (&b"/tmp/initfs.img"[..], &b"initfs"[..], &b"HSFS"[..])
        );
        assert_eq!(
            bi.memory.as_slice(),
            &[
                (0, 0x9fc00, Kind::Usable),
                (0x100000, 0xff00000, Kind::Usable)
            ]
        );
        assert!(bi.used.as_slice().contains(&(0x40000, 16)));
        assert!(bi.used.as_slice().contains(&(0x9000, 48)));
    }

    #[test]
    fn detection_prefers_pvh_over_mb1_magic_and_reads_a_bundle() {
        let mut m = Mem::new();
        let si = 0x21e0;
        let mut b = hsync_initfs::Builder::new();
        b.add("kernel", std::vec![0x7f, b'E', b'L', b'F']).unwrap();
        b.add("initfs", std::vec![1, 2, 3]).unwrap();
        let bundle = b.finish();
        m.put(0x60000, &bundle);
        m.put32(si, PVH_MAGIC);
        m.put32(si + 4, 1);
        m.put32(si + 12, 1);
        m.put64(si + 16, 0x3000);
        m.put64(si + 24, 0x11c0);
        m.put64(si + 32, 0xf59d0);
        m.put64(si + 40, 0x5a8);
        m.put32(si + 48, 1);
        m.put(0x11c0, b"test log=debug\0");
        m.put64(0x3000, 0x60000);
        m.put64(0x3008, bundle.len() as u64);
        m.put64(0x5a8, 0x100000);
        m.put64(0x5a8 + 8, 0xf00000);
        m.put32(0x5a8 + 16, 1);
        // qboot leaves the Multiboot1 magic in EAX.
        let bi = parse(&m, MB1_MAGIC, si as u32).unwrap();
        assert_eq!(bi.protocol, Protocol::Pvh);
        assert_eq!(bi.rsdp, Some(Rsdp::Phys(0xf59d0)));
        let mods = bi.modules.as_slice();
        assert_eq!(mods.len(), 2);
        assert_eq!(
            (mods[0].data, mods[0].string),
            (&[0x7f, b'E', b'L', b'F'][..], &b"test log=debug"[..])
        );
        assert_eq!(
            (mods[1].path, mods[1].string, mods[1].data),
            (&b"initfs"[..], &b"initfs"[..], &[1, 2, 3][..])
        );
    }

    #[test]
    fn multiboot2_modules_mmap_framebuffer_rsdp_efi() {
        let mut m = Mem::new();
        let mbi = 0x11000u64;
        let mut t = mbi + 8;
        let mut tag = |m: &mut Mem, ty: u32, body: &[u8]| {
            m.put32(t, ty);
            m.put32(t + 4, 8 + body.len() as u32);
            m.put(t + 8, body);
            t += (8 + body.len() as u64 + 7) & !7;
        };
        let mut module = Vec::new();
        module.extend_from_slice(&0x5000u32.to_le_bytes());
        module.extend_from_slice(&0x5008u32.to_le_bytes());
        module.extend_from_slice(b"/boot/kernel.elf poweroff\0");
        tag(&mut m, 3, &module);
        let mut mmap = Vec::new();
        mmap.extend_from_slice(&24u32.to_le_bytes());
        mmap.extend_from_slice(&0u32.to_le_bytes());
        for (b, l, ty) in [
            (0u64, 0xa0000u64, 1u32),
            (0x100000, 0x700000, 1),
            (0x800000, 0x1000, 20),
        ] {
            mmap.extend_from_slice(&b.to_le_bytes());
            mmap.extend_from_slice(&l.to_le_bytes());
            mmap.extend_from_slice(&ty.to_le_bytes());
            mmap.extend_from_slice(&0u32.to_le_bytes());
        }
        tag(&mut m, 6, &mmap);
        let mut fb = Vec::new();
        fb.extend_from_slice(&0xc000_0000u64.to_le_bytes());
        for v in [4096u32, 1024, 768] {
            fb.extend_from_slice(&v.to_le_bytes());
        }
        fb.extend_from_slice(&[32, 1, 0, 0, 16, 8, 8, 8, 0, 8, 0, 0]);
        tag(&mut m, 8, &fb);
        tag(&mut m, 12, &0x7fe0_0000u64.to_le_bytes());
        let mut rsdp = [0u8; 20];
        rsdp[..8].copy_from_slice(b"RSD PTR ");
        tag(&mut m, 14, &rsdp);
        tag(&mut m, 0, &[]);
        m.put32(mbi, (t - mbi) as u32);
        m.put(0x5000, b"\x7fELFxxxx");

        let bi = parse(&m, MB2_MAGIC, mbi as u32).unwrap();
        assert_eq!(bi.protocol, Protocol::Multiboot2);
        let k = bi.modules.as_slice()[0];
        assert_eq!(
            (k.path, k.string, k.data.len()),
            (&b"/boot/kernel.elf"[..], &b"poweroff"[..], 8)
        );
        assert_eq!(bi.memory.as_slice()[2], (0x800000, 0x1000, Kind::Reserved));
        let fb = bi.framebuffer.unwrap();
        assert_eq!(
            (fb.addr, fb.pitch, fb.width, fb.height, fb.bpp),
            (0xc000_0000, 4096, 1024, 768, 32)
        );
        assert_eq!(fb.masks, [8, 16, 8, 8, 8, 0]);
        assert!(bi.efi64);
        assert!(matches!(bi.rsdp, Some(Rsdp::Copy(c, 20)) if c.starts_with(b"RSD PTR ")));
    }

    #[test]
    fn rejects_unknown_protocol_and_wild_pointers() {
        let m = Mem::new();
        assert_eq!(parse(&m, 0, 0x1000).err(), Some(Error::UnknownProtocol));
        let mut m = Mem::new();
        m.put32(0x9500, 1 << 3);
        m.put32(0x9500 + 20, 1);
        m.put32(0x9500 + 24, 0xdead_0000); // outside memory
        assert_eq!(parse(&m, MB1_MAGIC, 0x9500).err(), Some(Error::Unreadable));
    }

    #[test]
    fn finds_rsdp_by_signature_and_checksum() {
        let mut m = Mem::new();
        let mut r = [0u8; 20];
        r[..8].copy_from_slice(b"RSD PTR ");
        m.put(0xe0010, &r); // bad checksum: skipped
        r[8] = 0u8.wrapping_sub(r.iter().fold(0u8, |s, &x| s.wrapping_add(x)));
        m.put(0xf59d0, &r);
        assert_eq!(scan_rsdp(&m), Some(0xf59d0));
    }
}
