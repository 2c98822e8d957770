//! Host tests of ELF planning with crafted images: a valid one, and one per rejection.

extern crate std;
use std::vec;
use std::vec::Vec;

use super::build::{Phdr, headers_len, image};
use super::*;

const R: u32 = 4;
const W: u32 = 2;
const X: u32 = 1;
const BASE: u64 = 0x40_0000;

fn make(entry: u64, phdrs: &[Phdr], data_len: usize) -> Vec<u8> {
    let mut out = vec![0u8; headers_len(phdrs.len()) + data_len];
    assert!(image(&mut out, entry, phdrs));
    out
}

/// Text (RX, 0x100 bytes at BASE), rodata (R, next page), data+bss (RW, 2 pages, 0x10 file bytes).
fn valid() -> (Vec<u8>, Vec<Phdr>) {
    let off = headers_len(3) as u64;
    let phdrs = vec![
        Phdr::load(R | X, off, BASE, 0x100, 0x100),
        Phdr::load(R, off + 0x100, BASE + 0x1000, 0x20, 0x20),
        Phdr::load(R | W, off + 0x120, BASE + 0x2010, 0x10, 0x1ff0),
    ];
    (make(BASE + 0x10, &phdrs, 0x130), phdrs)
}

fn with(phdrs: &[Phdr], entry: u64) -> Result<ElfPlan, ElfError> {
    plan(&make(entry, phdrs, 0x200))
}

#[test]
fn valid_image_planned() {
    let (img, _) = valid();
    let p = plan(&img).unwrap();
    assert_eq!(p.entry, BASE + 0x10);
    let off = headers_len(3) as u64;
    assert_eq!(
        p.segments(),
        [
            Segment {
                page: BASE,
                pages: 1,
                page_offset: 0,
                file_offset: off,
                file_len: 0x100,
                flags: MapFlags::READ | MapFlags::EXECUTE
            },
            Segment {
                page: BASE + 0x1000,
                pages: 1,
                page_offset: 0,
                file_offset: off + 0x100,
                file_len: 0x20,
                flags: MapFlags::READ
            },
            Segment {
                page: BASE + 0x2000,
                pages: 2,
                page_offset: 0x10,
                file_offset: off + 0x120,
                file_len: 0x10,
                flags: MapFlags::READ | MapFlags::WRITE
            },
        ]
    );
    assert_eq!(p.total_pages(), 4);
}

#[test]
fn segments_sorted_and_other_types_ignored() {
    let off = headers_len(3) as u64;
    let phdrs = [
        Phdr::load(R | W, off, BASE + 0x5000, 0, 0x10),
        Phdr {
            kind: 0x6474_e551,
            ..Phdr::load(R | W, 0, 0, 0, 0)
        }, // PT_GNU_STACK
        Phdr::load(R | X, off, BASE, 0x10, 0x10),
    ];
    let p = with(&phdrs, BASE).unwrap();
    assert_eq!(p.segments().len(), 2);
    assert_eq!(p.segments()[0].page, BASE);
    assert_eq!(p.segments()[1].page, BASE + 0x5000);
}

#[test]
fn zero_memsz_load_ignored() {
    let phdrs = [
        Phdr::load(R | X, 0, BASE, 0x10, 0x10),
        Phdr::load(R, 0, 0, 0, 0),
    ];
    assert_eq!(with(&phdrs, BASE).unwrap().segments().len(), 1);
}

#[test]
fn not_elf() {
    assert_eq!(plan(&[]), Err(ElfError::NotElf));
    assert_eq!(plan(b"\x7fELF"), Err(ElfError::NotElf));
    let (mut img, _) = valid();
    img[1] = b'X';
    assert_eq!(plan(&img), Err(ElfError::NotElf));
    let (img, _) = valid();
    assert_eq!(plan(&img[..63]), Err(ElfError::NotElf));
}

#[test]
fn wrong_class_data_version() {
    for (at, v) in [(4, 1u8), (5, 2), (6, 0)] {
        let (mut img, _) = valid();
        img[at] = v;
        assert_eq!(plan(&img), Err(ElfError::WrongClass), "byte {at}");
    }
    let (mut img, _) = valid();
    img[20] = 2; // e_version
    assert_eq!(plan(&img), Err(ElfError::WrongClass));
}

#[test]
fn wrong_machine_and_type() {
    let (mut img, _) = valid();
    img[18] = 3; // EM_386
    assert_eq!(plan(&img), Err(ElfError::WrongMachine));
    for t in [1u8, 3, 4] {
        let (mut img, _) = valid();
        img[16] = t; // REL, DYN (PIE), CORE
        assert_eq!(plan(&img), Err(ElfError::WrongType), "type {t}");
    }
}

#[test]
fn bad_program_headers() {
    // Truncated table.
    let (img, _) = valid();
    assert_eq!(
        plan(&img[..headers_len(3) - 1]),
        Err(ElfError::BadProgramHeaders)
    );
    // No headers.
    let (mut img, _) = valid();
    img[56] = 0;
    assert_eq!(plan(&img), Err(ElfError::BadProgramHeaders));
    // Foreign entry size.
    let (mut img, _) = valid();
    img[54] = 32;
    assert_eq!(plan(&img), Err(ElfError::BadProgramHeaders));
    // Too many, including PN_XNUM.
    for n in [65u16, 0xffff] {
        let (mut img, _) = valid();
        img[56..58].copy_from_slice(&n.to_le_bytes());
        assert_eq!(plan(&img), Err(ElfError::BadProgramHeaders), "phnum {n}");
    }
    // Offset past the end, and one that overflows.
    for off in [0x10_0000u64, u64::MAX - 8] {
        let (mut img, _) = valid();
        img[32..40].copy_from_slice(&off.to_le_bytes());
        assert_eq!(
            plan(&img),
            Err(ElfError::BadProgramHeaders),
            "phoff {off:#x}"
        );
    }
}

#[test]
fn dynamic_refused() {
    for kind in [2u32, 3] {
        let phdrs = [
            Phdr::load(R | X, 0, BASE, 0x10, 0x10),
            Phdr {
                kind,
                ..Phdr::load(R, 0, 0, 0, 0)
            },
        ];
        assert_eq!(with(&phdrs, BASE), Err(ElfError::Dynamic), "type {kind}");
    }
}

#[test]
fn no_segments() {
    let phdrs = [Phdr {
        kind: 4,
        ..Phdr::load(R, 0, 0, 0, 0)
    }];
    assert_eq!(with(&phdrs, BASE), Err(ElfError::NoSegments));
}

#[test]
fn too_many_segments() {
    let phdrs: Vec<_> = (0..17)
        .map(|i| Phdr::load(R | X, 0, BASE + i * 0x1000, 1, 1))
        .collect();
    assert_eq!(with(&phdrs, BASE), Err(ElfError::TooManySegments));
    assert!(with(&phdrs[..16], BASE).is_ok());
}

#[test]
fn file_range() {
    let len = (headers_len(1) + 0x200) as u64;
    // File bytes past the end.
    assert_eq!(
        with(&[Phdr::load(R | X, len - 0x10, BASE, 0x11, 0x11)], BASE),
        Err(ElfError::FileRange)
    );
    assert!(with(&[Phdr::load(R | X, len - 0x10, BASE, 0x10, 0x10)], BASE).is_ok());
    // Offset + filesz overflows.
    assert_eq!(
        with(&[Phdr::load(R | X, u64::MAX, BASE, 2, 2)], BASE),
        Err(ElfError::FileRange)
    );
    // filesz > memsz.
    assert_eq!(
        with(&[Phdr::load(R | X, 0, BASE, 0x20, 0x10)], BASE),
        Err(ElfError::FileRange)
    );
}

#[test]
fn outside_user_half() {
    for vaddr in [
        0u64,
        0xfff,
        0xffff_8000_0000_0000,
        0xffff_ffff_8000_0000,
        USER_END,
    ] {
        assert_eq!(
            with(&[Phdr::load(R | X, 0, vaddr, 0x10, 0x10)], vaddr),
            Err(ElfError::OutsideUser),
            "{vaddr:#x}"
        );
    }
    // Crossing USER_END, and vaddr + memsz overflowing.
    assert_eq!(
        with(
            &[Phdr::load(R | X, 0, USER_END - 0x1000, 0, 0x1001)],
            USER_END - 0x1000
        ),
        Err(ElfError::OutsideUser)
    );
    assert_eq!(
        with(&[Phdr::load(R | X, 0, BASE, 0, u64::MAX)], BASE),
        Err(ElfError::OutsideUser)
    );
}

#[test]
fn huge_memsz() {
    assert_eq!(
        with(
            &[
                Phdr::load(R | W, 0, BASE, 0, MAX_IMAGE_BYTES + 1),
                Phdr::load(R | X, 0, 0x1000, 1, 1)
            ],
            0x1000
        ),
        Err(ElfError::TooLarge)
    );
    // Spread over two segments.
    let half = MAX_IMAGE_BYTES / 2;
    assert!(
        with(
            &[
                Phdr::load(R | X, 0, BASE, 0x10, half),
                Phdr::load(R | W, 0, BASE + half + 0x1000, 0, half),
            ],
            BASE
        )
        .is_ok()
    );
    let half = half + 1;
    assert_eq!(
        with(
            &[
                Phdr::load(R | X, 0, BASE, 0x10, half),
                Phdr::load(R | W, 0, BASE + half + 0x1000, 0, half),
            ],
            BASE
        ),
        Err(ElfError::TooLarge)
    );
}

#[test]
fn overlap_refused() {
    // Same page, different segments.
    let phdrs = [
        Phdr::load(R | X, 0, BASE, 0x10, 0x10),
        Phdr::load(R, 0, BASE + 0x800, 0x10, 0x10),
    ];
    assert_eq!(with(&phdrs, BASE), Err(ElfError::Overlap));
    // Identical ranges.
    let phdrs = [
        Phdr::load(R | X, 0, BASE, 0x10, 0x10),
        Phdr::load(R | X, 0, BASE, 0x10, 0x10),
    ];
    assert_eq!(with(&phdrs, BASE), Err(ElfError::Overlap));
    // Adjacent pages are fine.
    let phdrs = [
        Phdr::load(R | X, 0, BASE, 0x10, 0x1000),
        Phdr::load(R, 0, BASE + 0x1000, 0x10, 0x10),
    ];
    assert!(with(&phdrs, BASE).is_ok());
}

#[test]
fn reserved_layout_refused() {
    let guard = MAIN_STACK_TOP - (MAIN_STACK_PAGES + 1) * PAGE;
    for vaddr in [guard, MAIN_STACK_TOP - PAGE, MAIN_IPC_BUFFER, guard - 0x10] {
        let phdrs = [
            Phdr::load(R | X, 0, BASE, 0x10, 0x10),
            Phdr::load(R | W, 0, vaddr, 0, 0x20),
        ];
        assert_eq!(with(&phdrs, BASE), Err(ElfError::Reserved), "{vaddr:#x}");
    }
    // Just below the guard page is fine.
    let phdrs = [
        Phdr::load(R | X, 0, BASE, 0x10, 0x10),
        Phdr::load(R | W, 0, guard - 0x20, 0, 0x20),
    ];
    assert!(with(&phdrs, BASE).is_ok());
}

#[test]
fn write_execute_refused() {
    assert_eq!(
        with(&[Phdr::load(R | W | X, 0, BASE, 0x10, 0x10)], BASE),
        Err(ElfError::WriteExecute)
    );
    assert_eq!(
        with(&[Phdr::load(W | X, 0, BASE, 0x10, 0x10)], BASE),
        Err(ElfError::WriteExecute)
    );
}

#[test]
fn permissions_mapped() {
    let cases = [
        (X, MapFlags::READ | MapFlags::EXECUTE),
        (R | X, MapFlags::READ | MapFlags::EXECUTE),
        (W, MapFlags::READ | MapFlags::WRITE),
        (R, MapFlags::READ),
        (0, MapFlags::READ),
    ];
    for (pf, want) in cases {
        let phdrs = [
            Phdr::load(R | X, 0, BASE, 0x10, 0x10),
            Phdr::load(pf, 0, BASE + 0x1000, 0, 0x10),
        ];
        let p = with(&phdrs, BASE).unwrap();
        assert_eq!(p.segments()[1].flags, want, "p_flags {pf}");
    }
}

#[test]
fn entry_must_be_executable() {
    let phdrs = [
        Phdr::load(R | X, 0, BASE, 0x10, 0x10),
        Phdr::load(R | W, 0, BASE + 0x1000, 0, 0x10),
    ];
    assert!(with(&phdrs, BASE + 0xf).is_ok());
    for entry in [0, BASE + 0x1000, BASE + 0x10_0000, BASE - 1] {
        assert_eq!(with(&phdrs, entry), Err(ElfError::BadEntry), "{entry:#x}");
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    // Mutate every byte of the headers of a valid image (and cut it anywhere).
    let (mut img, _) = valid();
    super::build::mutations(&mut img, headers_len(3), 8, |m| {
        let _ = plan(m);
    });
}
