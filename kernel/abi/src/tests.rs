//! Host tests of the ABI encodings: every enum round-trips through `u64`, every invalid value is
//! rejected, packing edge cases, rights only shrink, the IPC buffer layout, and the docs list
//! every system call and error code.

extern crate std;

use crate::*;
use std::format;
use std::vec::Vec;

/// Values around every boundary the decoders have, plus a spread of large ones.
fn probe_values() -> Vec<u64> {
    let mut v: Vec<u64> = (0..=0x220).collect();
    for shift in 0..64 {
        let p = 1u64 << shift;
        v.extend([p, p - 1, p.wrapping_add(1), !p]);
    }
    v.extend([u64::MAX, u64::MAX - 1, 0x8000_0000_0000_0000]);
    v
}

#[test]
fn sysnum_round_trips_and_numbers_are_dense_from_one() {
    for (i, &s) in Sysnum::ALL.iter().enumerate() {
        assert_eq!(s.raw(), i as u64 + 1, "{s:?} is not numbered in order");
        assert_eq!(Sysnum::try_from(s.raw()), Ok(s));
        assert_eq!(u64::from(s), s.raw());
    }
}

#[test]
fn invalid_sysnums_are_invalid_syscall() {
    let known = Sysnum::ALL.len() as u64;
    for raw in probe_values() {
        let decoded = Sysnum::try_from(raw);
        if (1..=known).contains(&raw) {
            assert!(decoded.is_ok(), "{raw:#x}");
        } else {
            assert_eq!(decoded, Err(Error::InvalidSyscall), "{raw:#x}");
        }
    }
}

#[test]
fn only_the_exit_calls_are_noreturn() {
    let noreturn: Vec<_> = Sysnum::ALL.iter().filter(|s| s.is_noreturn()).collect();
    assert_eq!(noreturn, [&Sysnum::ProcessExit, &Sysnum::ThreadExit]);
}

#[test]
fn error_round_trips_and_zero_is_not_an_error() {
    for (i, &e) in Error::ALL.iter().enumerate() {
        assert_eq!(e.raw(), i as u64 + 1);
        assert_eq!(Error::try_from(e.raw()), Ok(e));
        assert_eq!(Error::check_status(e.raw()), Ok(Err(e)));
    }
    assert_eq!(Error::try_from(0), Err(UnknownError(0)));
    assert_eq!(Error::check_status(0), Ok(Ok(())));
    for raw in probe_values() {
        if raw > Error::ALL.len() as u64 {
            assert_eq!(Error::try_from(raw), Err(UnknownError(raw)));
            assert_eq!(Error::check_status(raw), Err(UnknownError(raw)));
        }
    }
}

#[test]
fn error_classes_match_the_documented_split() {
    use Error::*;
    let misuse = [
        InvalidSyscall,
        InvalidHandle,
        WrongKind,
        MissingRights,
        BadAddress,
        Misaligned,
        MessageTooLong,
        InvalidArgument,
    ];
    for &e in Error::ALL {
        assert_eq!(e.is_misuse(), misuse.contains(&e), "{e:?}");
        let want = if misuse.contains(&e) {
            ErrorClass::Misuse
        } else {
            ErrorClass::Recoverable
        };
        assert_eq!(e.class(), want);
    }
}

#[test]
fn object_kind_round_trips_and_rejects_the_rest() {
    for (i, &k) in ObjectKind::ALL.iter().enumerate() {
        assert_eq!(k.raw(), i as u64 + 1);
        assert_eq!(ObjectKind::try_from(k.raw()), Ok(k));
    }
    for raw in probe_values() {
        if !(1..=ObjectKind::ALL.len() as u64).contains(&raw) {
            assert_eq!(
                ObjectKind::try_from(raw),
                Err(Error::InvalidArgument),
                "{raw:#x}"
            );
        }
    }
}

#[test]
fn fault_kind_round_trips_including_every_other_vector() {
    let named = [
        FaultKind::PageFault,
        FaultKind::GeneralProtection,
        FaultKind::InvalidOpcode,
        FaultKind::DivideError,
        FaultKind::StackOverflow,
        FaultKind::Breakpoint,
    ];
    let others = (0..=u8::MAX).map(FaultKind::Other);
    let mut seen = std::collections::BTreeSet::new();
    for k in named.into_iter().chain(others) {
        assert_eq!(FaultKind::try_from(k.raw()), Ok(k));
        assert!(seen.insert(k.raw()), "{k:?} shares a number");
    }
    for raw in probe_values() {
        if !seen.contains(&raw) {
            assert_eq!(
                FaultKind::try_from(raw),
                Err(Error::InvalidArgument),
                "{raw:#x}"
            );
        }
    }
}

#[test]
fn fault_record_round_trips_through_words() {
    let rec = FaultRecord {
        kind: FaultKind::Other(13),
        error_code: 2,
        address: 0xdead_0000,
        thread_id: 7,
        rip: 0x40_1000,
        rsp: 0x7fff_f000,
        rbp: 0x7fff_f010,
        rflags: 0x202,
        rax: 1,
        rdi: 2,
        rsi: 3,
        rdx: 4,
    };
    let w = rec.to_words();
    assert_eq!(w[0], 0x10d);
    assert_eq!(FaultRecord::from_words(&w), Ok(rec));
    let mut bad = w;
    bad[0] = 0;
    assert_eq!(FaultRecord::from_words(&bad), Err(Error::InvalidArgument));
}

#[test]
fn exit_status_round_trips_and_rejects_unknown_tags() {
    for s in [
        ExitStatus::Exited(0),
        ExitStatus::Exited(u64::MAX),
        ExitStatus::Killed,
        ExitStatus::Faulted(FaultKind::StackOverflow),
        ExitStatus::Faulted(FaultKind::Other(255)),
    ] {
        let (tag, value) = s.to_regs();
        assert_eq!(ExitStatus::from_regs(tag, value), Ok(s));
    }
    assert_eq!(ExitStatus::from_regs(0, 0), Err(Error::InvalidArgument));
    assert_eq!(ExitStatus::from_regs(4, 0), Err(Error::InvalidArgument));
    assert_eq!(ExitStatus::from_regs(2, 1), Err(Error::InvalidArgument));
    assert_eq!(ExitStatus::from_regs(3, 0), Err(Error::InvalidArgument));
}

#[test]
fn handle_packs_index_low_and_generation_high() {
    let h = Handle::new(0x1234_5678, 0x9abc_def0);
    assert_eq!(h.raw(), 0x9abc_def0_1234_5678);
    assert_eq!(h.index(), 0x1234_5678);
    assert_eq!(h.generation(), 0x9abc_def0);
    assert_eq!(Handle::from_raw(h.raw()), h);
    assert_eq!(Handle::new(u32::MAX, u32::MAX).raw(), u64::MAX);
    assert!(Handle::NULL.is_null());
    assert_eq!(Handle::NULL.generation(), 0);
    assert!(!Handle::new(0, 1).is_null());
}

#[test]
fn rights_decode_rejects_unknown_bits() {
    let all = Rights::all();
    assert_eq!(Rights::from_raw(all.raw()), Ok(all));
    assert_eq!(Rights::from_raw(0), Ok(Rights::empty()));
    assert_eq!(Rights::from_raw(all.raw() + 1), Err(Error::InvalidArgument));
    assert_eq!(Rights::from_raw(1 << 40), Err(Error::InvalidArgument));
    for bit in 0..64 {
        let ok = Rights::from_raw(1 << bit).is_ok();
        assert_eq!(
            ok,
            Rights::from_bits(1u32.checked_shl(bit).unwrap_or(0)).is_some_and(|r| !r.is_empty())
        );
    }
}

#[test]
fn rights_helpers_never_grow() {
    let subsets_of = |r: Rights| {
        (0..=Rights::all().bits())
            .filter_map(Rights::from_bits)
            .filter(move |s| r.contains(*s))
    };
    let samples = [
        Rights::empty(),
        Rights::SEND,
        Rights::SEND | Rights::RECV | Rights::DUPLICATE,
        ObjectKind::Frame.all_rights(),
        Rights::all(),
    ];
    for have in samples {
        for want in samples
            .iter()
            .copied()
            .chain([Rights::MANAGE, Rights::READ | Rights::SEND])
        {
            let shrunk = have.shrink(want);
            assert_eq!(
                shrunk.is_some(),
                have.contains(want),
                "{have:?} -> {want:?}"
            );
            if let Some(s) = shrunk {
                assert!(have.contains(s));
                assert_eq!(s, want);
            }
            let restricted = have.restrict(want);
            assert!(have.contains(restricted));
            assert!(want.contains(restricted));
            assert_eq!(have.allows(want), have.contains(want));
        }
        assert_eq!(
            subsets_of(have)
                .filter(|s| have.shrink(*s).is_none())
                .count(),
            0
        );
    }
}

#[test]
fn reply_rights_cannot_duplicate_and_every_kind_can_transfer() {
    assert!(!ObjectKind::Reply.all_rights().contains(Rights::DUPLICATE));
    for &k in ObjectKind::ALL {
        assert!(k.all_rights().contains(Rights::TRANSFER), "{k:?}");
    }
    assert_eq!(
        ObjectKind::Endpoint.all_rights(),
        Rights::SEND | Rights::RECV | Rights::DUPLICATE | Rights::TRANSFER
    );
}

#[test]
fn msg_info_packs_and_checks_limits() {
    let m = MsgInfo::new(MsgInfo::MAX_LABEL, MAX_MSG_WORDS, MAX_MSG_HANDLES).unwrap();
    assert_eq!(
        (m.label(), m.words(), m.handles()),
        (MsgInfo::MAX_LABEL, 64, 4)
    );
    assert_eq!(MsgInfo::from_raw(m.raw()), Ok(m));
    let z = MsgInfo::new(0, 0, 0).unwrap();
    assert_eq!(z.raw(), 0);
    assert!(!z.uses_buffer());
    assert!(!MsgInfo::new(9, REG_MSG_WORDS, 0).unwrap().uses_buffer());
    assert!(MsgInfo::new(9, REG_MSG_WORDS + 1, 0).unwrap().uses_buffer());
    assert!(MsgInfo::new(9, 0, 1).unwrap().uses_buffer());
    assert_eq!(
        MsgInfo::new(0, MAX_MSG_WORDS + 1, 0),
        Err(Error::MessageTooLong)
    );
    assert_eq!(
        MsgInfo::new(0, 0, MAX_MSG_HANDLES + 1),
        Err(Error::MessageTooLong)
    );
    assert_eq!(MsgInfo::new(0, usize::MAX, 0), Err(Error::MessageTooLong));
    assert_eq!(
        MsgInfo::new(MsgInfo::MAX_LABEL + 1, 0, 0),
        Err(Error::InvalidArgument)
    );
    assert_eq!(MsgInfo::new(u64::MAX, 0, 0), Err(Error::InvalidArgument));
}

#[test]
fn msg_info_from_raw_accepts_exactly_the_encodable_values() {
    for raw in probe_values() {
        let words = (raw & 0xff) as usize;
        let handles = ((raw >> 8) & 0x7) as usize;
        let reserved = raw & (0x1f << 11) != 0;
        match MsgInfo::from_raw(raw) {
            Ok(m) => {
                assert!(!reserved && words <= MAX_MSG_WORDS && handles <= MAX_MSG_HANDLES);
                assert_eq!(MsgInfo::new(m.label(), m.words(), m.handles()), Ok(m));
                assert_eq!(m.raw(), raw);
            }
            Err(Error::InvalidArgument) => assert!(reserved, "{raw:#x}"),
            Err(Error::MessageTooLong) => {
                assert!(!reserved && (words > MAX_MSG_WORDS || handles > MAX_MSG_HANDLES))
            }
            Err(e) => panic!("{raw:#x}: unexpected {e:?}"),
        }
    }
}

#[test]
fn ipc_buffer_layout_is_the_documented_one() {
    use core::mem::{align_of, offset_of, size_of};
    assert_eq!(size_of::<IpcBuffer>(), 1024);
    assert_eq!(align_of::<IpcBuffer>(), 1024);
    assert_eq!(offset_of!(IpcBuffer, words), 0);
    assert_eq!(offset_of!(IpcBuffer, handles), 512);
    assert_eq!(offset_of!(IpcBuffer, user), 544);
    assert_eq!(IpcBuffer::HANDLES_OFFSET, 512);
    // An aligned buffer never crosses a page, wherever in the page it sits.
    for slot in 0..(PAGE_SIZE as usize / IpcBuffer::ALIGN) {
        let start = slot * IpcBuffer::ALIGN;
        assert_eq!(
            start / PAGE_SIZE as usize,
            (start + IpcBuffer::SIZE - 1) / PAGE_SIZE as usize
        );
    }
}

#[test]
fn map_flags_allow_only_r_rw_rx() {
    let r = MapFlags::READ;
    let w = MapFlags::WRITE;
    let x = MapFlags::EXECUTE;
    for raw in 0..64u64 {
        let want = [r, r | w, r | x].into_iter().find(|f| f.raw() == raw);
        assert_eq!(MapFlags::from_raw(raw).ok(), want, "{raw:#b}");
    }
    assert_eq!(MapFlags::from_raw(1 << 32 | 1), Err(Error::InvalidArgument));
    assert_eq!(
        (r | w).required_rights(),
        Rights::MAP | Rights::READ | Rights::WRITE
    );
    assert_eq!(
        (r | x).required_rights(),
        Rights::MAP | Rights::READ | Rights::EXECUTE
    );
}

/// The documentation is part of the ABI: every call has a row in the summary table and its own
/// section, and every error code is listed with its number.
#[test]
fn every_syscall_and_error_is_documented() {
    const DOC: &str = include_str!("../../../docs/syscalls.md");
    for &s in Sysnum::ALL {
        let row = format!("| {} | [`{}`]", s.raw(), s.name());
        assert!(
            DOC.contains(&row),
            "docs/syscalls.md lacks the table row `{row}`"
        );
        let heading = format!("\n### `{}`\n", s.name());
        assert!(
            DOC.contains(&heading),
            "docs/syscalls.md lacks the section `{}`",
            heading.trim()
        );
    }
    for &e in Error::ALL {
        let row = format!("| {} | `{}` |", e.raw(), e.name());
        assert!(
            DOC.contains(&row),
            "docs/syscalls.md lacks the error row `{row}`"
        );
    }
    let version = format!("ABI version {}", ABI_VERSION);
    assert!(
        DOC.contains(&version),
        "docs/syscalls.md does not say `{version}`"
    );
}
