//! Host tests of the reader itself; the loaders' policies are tested beside them
//! (`hsync_kcore::elf`, `hsync_bootcore::elf`), through this reader.

extern crate std;
use std::vec;
use std::vec::Vec;

use super::build::{Phdr, headers_len, image};
use super::*;

const R: u32 = 4;
const W: u32 = 2;
const X: u32 = 1;
const BASE: u64 = 0xffff_ffff_8000_0000;

fn make(entry: u64, phdrs: &[Phdr]) -> Vec<u8> {
    let mut out = vec![0u8; headers_len(phdrs.len()) + 0x200];
    assert!(image(&mut out, entry, phdrs));
    out
}

#[test]
fn reads_segments_sorted_with_permissions() {
    let off = headers_len(3) as u64;
    let phdrs = [
        Phdr::load(R | W, off + 0x20, BASE + 0x2008, 0x10, 0x3000),
        Phdr::load(R | X, off, BASE, 0x10, 0x1000),
        Phdr::load(R, off + 0x10, BASE + 0x1000, 0x10, 0x10),
    ];
    let exe = read::<4>(&make(BASE + 4, &phdrs)).unwrap();
    assert_eq!(exe.entry, BASE + 4);
    let s = exe.segments();
    assert_eq!(s.len(), 3);
    assert_eq!(
        (s[0].vaddr, s[0].executable, s[0].writable),
        (BASE, true, false)
    );
    assert_eq!(
        (s[1].vaddr, s[1].executable, s[1].writable),
        (BASE + 0x1000, false, false)
    );
    assert_eq!(s[2].pages(), (BASE + 0x2000, BASE + 0x6000));
    assert_eq!(
        (s[2].offset, s[2].filesz, s[2].memsz),
        (off + 0x20, 0x10, 0x3000)
    );
}

#[test]
fn refusals() {
    let text = Phdr::load(R | X, 0, BASE, 0x10, 0x10);
    let cases: &[(&[Phdr], u64, Error)] = &[
        (
            &[Phdr::load(R | W | X, 0, BASE, 0x10, 0x10)],
            BASE,
            Error::WriteExecute,
        ),
        (
            &[text, Phdr::load(R, 0, BASE + 0x800, 1, 1)],
            BASE,
            Error::Overlap,
        ),
        (
            &[text, Phdr::load(R | W, 0, BASE + 0x1000, 0, 1)],
            BASE + 0x1000,
            Error::BadEntry,
        ),
        (&[text], BASE + 0x10, Error::BadEntry),
        (
            &[Phdr::load(R | X, 0, u64::MAX - 0x10, 1, 1)],
            u64::MAX - 0x10,
            Error::AddressOverflow,
        ),
        (
            &[Phdr::load(R | X, 0, BASE, 0x20, 0x10)],
            BASE,
            Error::FileRange,
        ),
        (
            &[Phdr::load(R | X, 0x1000, BASE, 0x10, 0x10)],
            BASE,
            Error::FileRange,
        ),
        (
            &[
                Phdr {
                    kind: PT_INTERP,
                    ..text
                },
                text,
            ],
            BASE,
            Error::Dynamic,
        ),
        (&[Phdr::load(R, 0, 0, 0, 0)], BASE, Error::NoSegments),
        (
            &[
                text,
                Phdr::load(R, 0, BASE + 0x1000, 1, 1),
                Phdr::load(R, 0, BASE + 0x2000, 1, 1),
            ],
            BASE,
            Error::TooManySegments,
        ),
    ];
    for (i, (phdrs, entry, want)) in cases.iter().enumerate() {
        assert_eq!(read::<2>(&make(*entry, phdrs)), Err(*want), "case {i}");
    }
}

#[test]
fn header_refusals() {
    let good = make(BASE, &[Phdr::load(R | X, 0, BASE, 0x10, 0x10)]);
    assert!(read::<1>(&good).is_ok());
    let patched = |at: usize, v: &[u8]| {
        let mut f = good.clone();
        f[at..at + v.len()].copy_from_slice(v);
        read::<1>(&f)
    };
    assert_eq!(read::<1>(&good[..63]), Err(Error::NotElf));
    assert_eq!(patched(0, b"\x7fELX"), Err(Error::NotElf));
    assert_eq!(patched(4, &[1]), Err(Error::WrongClass));
    assert_eq!(patched(5, &[2]), Err(Error::WrongClass));
    assert_eq!(patched(20, &[2]), Err(Error::WrongClass));
    assert_eq!(patched(18, &[3]), Err(Error::WrongMachine));
    assert_eq!(patched(16, &[3]), Err(Error::WrongType));
    assert_eq!(patched(54, &[32]), Err(Error::BadTables));
    assert_eq!(patched(56, &[65]), Err(Error::BadTables));
    assert_eq!(patched(32, &[0]), Err(Error::BadTables));
    // A section header table outside the file.
    assert_eq!(patched(40, &[0xff, 0xff]), Err(Error::BadTables));
}

#[test]
fn mutated_headers_never_panic() {
    let off = headers_len(3) as u64;
    let mut m = make(
        BASE,
        &[
            Phdr::load(R | X, off, BASE, 0x10, 0x10),
            Phdr::load(R, off, BASE + 0x1000, 0x10, 0x10),
            Phdr::load(R | W, off, BASE + 0x2000, 0, 0x1000),
        ],
    );
    super::build::mutations(&mut m, headers_len(3), 16, |m| {
        if let Ok(exe) = read::<4>(m) {
            // Whatever is accepted really holds what the reader promises.
            for s in exe.segments() {
                assert!(s.filesz <= s.memsz && s.offset + s.filesz <= m.len() as u64);
                assert!(!(s.writable && s.executable));
            }
            assert!(
                exe.segments()
                    .windows(2)
                    .all(|w| w[0].pages().1 <= w[1].pages().0)
            );
        }
    });
}
