//! utests for hardware capabilities: I/O port grants enforced by the TSS bitmap (a process
//! without the grant faults with `GeneralProtection`), IRQ lines (the PIT on ISA IRQ 0, which
//! the MADT overrides to GSI 2: bind, mask-until-ack, exclusive binding), and device Frames
//! (root only, never RAM, the VGA text buffer written and read back).
//!
//! The test root holds the hardware authority (the kernel gives it to whatever runs as root);
//! helpers are this image spawned with role [`ROLE`] and an operation in start word 1.

use alloc::format;
use alloc::string::String;

use hsync_abi::{DeviceCache, ROOT_HW_AUTHORITY, Sysnum};
use libhsync::hw::{HwAuthority, IoPorts, Mmio, kinds};
use libhsync::process::Spawn;
use libhsync::{
    DEADLINE_NEVER, Error, ExitStatus, FaultKind, Notification, ObjectKind, Rights, StartArgs,
};

use super::{Ctx, TestFn, TestResult, raw};

/// The role number of the hardware helper (start word 0).
pub const ROLE: u64 = 24;

/// Helper: `in` from COM1's line status register with no grant (must fault).
const OP_PROBE_COM1: u64 = 1;
/// Helper: enable the IoPortRange in handle 0 (COM1) and exit with `0x100 | LSR`.
const OP_GRANTED_COM1: u64 = 2;
/// Helper: try every hardware call with root's authority value (it holds no such handle);
/// exit 0 iff each fails with `InvalidHandle`.
const OP_NOT_ROOT: u64 = 3;

/// Helper: enable COM1 through the range in handle 0, read LSR, keep a duplicate of the range
/// when start word 2 is 1, close the enabled handle, read LSR again (faults once revoked).
const OP_CLOSE_THEN_READ: u64 = 4;
const COM1: u16 = 0x3f8;
const LSR: u16 = 5;

/// The suite's tests.
pub const TESTS: &[(&str, TestFn)] = &[
    ("hw_ports_granted", ports_granted),
    ("hw_ports_without_grant_fault", ports_without_grant_fault),
    ("hw_not_root_refused", not_root_refused),
    ("hw_irq_pit_bind_ack", irq_pit_bind_ack),
    ("hw_frame_physical", frame_physical),
    (
        "hw_ports_revoked_on_last_close",
        ports_revoked_on_last_close,
    ),
];

/// Runs a helper operation; returns the exit code.
pub fn role(mut args: StartArgs) -> i32 {
    match args.word(1).unwrap_or(0) {
        OP_PROBE_COM1 => {
            let v = IoPorts::without_grant(COM1, 8).read_u8(LSR);
            libhsync::println!("hw helper: read {v:#x} from an ungranted port");
            1
        }
        OP_GRANTED_COM1 => match args.take_handle::<kinds::IoPortRange>(0) {
            Some(range) => match IoPorts::enable(range, COM1, 8) {
                Ok(p) => 0x100 | i32::from(p.read_u8(LSR)),
                Err(_) => 2,
            },
            None => 3,
        },
        OP_CLOSE_THEN_READ => match args.take_handle::<kinds::IoPortRange>(0) {
            Some(range) => {
                let keep = if args.word(2) == Some(1) {
                    match range.duplicate(Rights::MANAGE) {
                        Ok(d) => Some(d),
                        Err(_) => return 6,
                    }
                } else {
                    None
                };
                let Ok(ports) = IoPorts::enable(range, COM1, 8) else {
                    return 2;
                };
                let _ = ports.read_u8(LSR);
                drop(ports); // closes the handle it was enabled with
                let v = IoPorts::without_grant(COM1, 8).read_u8(LSR);
                drop(keep);
                0x100 | i32::from(v)
            }
            None => 3,
        },
        OP_NOT_ROOT => {
            let a = ROOT_HW_AUTHORITY.raw();
            let calls = [
                (Sysnum::IoportCreate, [a, 0x3f8, 8, 0, 0, 0]),
                (Sysnum::IrqCreate, [a, 0, 0, 0, 0, 0]),
                (Sysnum::FrameCreatePhysical, [a, 0xb8000, 4096, 0, 0, 0]),
                (Sysnum::SystemPower, [a, 0, 0, 0, 0, 0]),
            ];
            let refused = calls
                .iter()
                .all(|&(nr, args)| raw(nr, args) == Err(Error::InvalidHandle));
            if refused && HwAuthority::root().is_none() {
                0
            } else {
                4
            }
        }
        _ => 5,
    }
}

fn authority() -> Result<HwAuthority, String> {
    HwAuthority::root().ok_or_else(|| String::from("the test root holds no hardware authority"))
}

fn helper(ctx: &Ctx, op: u64) -> Spawn<'_> {
    Spawn::new(&ctx.image, "hw-helper")
        .priority(ctx.prio)
        .word(ROLE)
        .word(op)
}

fn ports_granted(ctx: &mut Ctx) -> TestResult {
    let auth = authority()?;
    ensure!(
        ok!(auth.inspect()).kind == ObjectKind::HwAuthority,
        "authority kind"
    );
    let range = ok!(auth.ioport_create(COM1, 8));
    let info = ok!(range.inspect());
    ensure!(
        info.kind == ObjectKind::IoPortRange && info.rights == ObjectKind::IoPortRange.all_rights(),
        "range: {info:?}"
    );
    // A child given the range reads COM1's LSR (a 16550 idles with THRE|TEMT = 0x60).
    let child = ok!(ok!(helper(ctx, OP_GRANTED_COM1).handle(&range, info.rights)).start());
    let ended = ok!(child.process.wait(DEADLINE_NEVER));
    let ExitStatus::Exited(code) = ended.status else {
        return Err(format!("granted helper ended {:?}", ended.status));
    };
    ensure!(
        code & 0x100 != 0 && code & 0x60 != 0 && code & 0xff != 0xff,
        "granted helper: exit {code:#x} (want 0x100 | LSR with THRE/TEMT)"
    );
    // And so does this process once it enables the range.
    let ports = ok!(IoPorts::enable(range, COM1, 8));
    let lsr = ports.read_u8(LSR);
    ensure!(lsr & 0x60 != 0 && lsr != 0xff, "LSR {lsr:#x}");
    // Misuse: empty, past port 0xffff, wrong kind.
    expect_err!(auth.ioport_create(0x10, 0), Error::InvalidArgument);
    expect_err!(auth.ioport_create(0xfff0, 0x11), Error::InvalidArgument);
    expect_err!(
        raw(Sysnum::IoportEnable, [auth.raw().raw(), 0, 0, 0, 0, 0]),
        Error::WrongKind
    );
    Ok(())
}

fn ports_without_grant_fault(ctx: &mut Ctx) -> TestResult {
    // This process has COM1 enabled (previous test); the helper must not inherit it.
    let child = ok!(helper(ctx, OP_PROBE_COM1).start());
    let ended = ok!(child.process.wait(DEADLINE_NEVER));
    ensure!(
        ended.status == ExitStatus::Faulted(FaultKind::GeneralProtection),
        "ungranted `in` ended {:?}, expected a GeneralProtection fault",
        ended.status
    );
    let rec = ended.fault.ok_or_else(|| String::from("no fault record"))?;
    ensure!(
        rec.kind == FaultKind::GeneralProtection && rec.rip != 0,
        "record {rec:?}"
    );
    // The kernel kept running and this process still has its own ports.
    let lsr =
        IoPorts::enable(ok!(authority()?.ioport_create(COM1, 8)), COM1, 8).map(|p| p.read_u8(LSR));
    ensure!(
        matches!(lsr, Ok(v) if v != 0xff),
        "LSR after the fault: {lsr:?}"
    );
    Ok(())
}

fn not_root_refused(ctx: &mut Ctx) -> TestResult {
    let child = ok!(helper(ctx, OP_NOT_ROOT).start());
    let ended = ok!(child.process.wait(DEADLINE_NEVER));
    ensure!(
        ended.status == ExitStatus::Exited(0),
        "a non-root process made a hardware capability or found an authority: {:?}",
        ended.status
    );
    Ok(())
}

/// Waits up to `ms` milliseconds for a signal on `n`; returns the bits (0 = none).
fn wait_bits(n: &Notification, ms: u64) -> Result<u64, String> {
    let deadline = libhsync::clock() + ms * 1_000_000;
    loop {
        match n.poll() {
            Ok(bits) => return Ok(bits),
            Err(Error::WouldBlock) => {}
            Err(e) => return Err(format!("poll: {e:?}")),
        }
        if libhsync::clock() >= deadline {
            return Ok(0);
        }
        ok!(libhsync::sleep_until(libhsync::clock() + 1_000_000));
    }
}

fn irq_pit_bind_ack(_: &mut Ctx) -> TestResult {
    const BIT: u64 = 1 << 5;
    let auth = authority()?;
    let pit = ok!(IoPorts::enable(ok!(auth.ioport_create(0x40, 4)), 0x40, 4));
    expect_err!(auth.irq_create(200), Error::InvalidArgument);
    let line = ok!(auth.irq_create(0));
    let n = ok!(Notification::create());
    expect_err!(line.bind(&n, 0), Error::InvalidArgument);
    expect_err!(line.ack(), Error::InvalidState);
    ok!(line.bind(&n, BIT));
    // PIT channel 0, lobyte/hibyte, mode 2 (rate generator), ~1 kHz.
    let divisor: u16 = 1193;
    pit.write_u8(3, 0x34);
    pit.write_u8(0, divisor as u8);
    pit.write_u8(0, (divisor >> 8) as u8);
    let result = (|| {
        let first = wait_bits(&n, 2000)?;
        ensure!(first == BIT, "first PIT interrupt: bits {first:#x}");
        // Masked until acked: a ~1 kHz source stays silent for 30 ms.
        let _ = n.poll();
        let quiet = wait_bits(&n, 30)?;
        ensure!(quiet == 0, "interrupt delivered before the ack: {quiet:#x}");
        ok!(line.ack());
        let second = wait_bits(&n, 2000)?;
        ensure!(second == BIT, "no interrupt after the ack: {second:#x}");
        // One binding per line while its notification lives.
        let other = ok!(Notification::create());
        expect_err!(line.bind(&other, 1), Error::Exists);
        let twin = ok!(auth.irq_create(0));
        expect_err!(twin.bind(&other, 1), Error::Exists);
        expect_err!(twin.ack(), Error::InvalidState);
        Ok(())
    })();
    // Stop the PIT: mode 0 with the longest count fires once and then stays quiet.
    pit.write_u8(3, 0x30);
    pit.write_u8(0, 0xff);
    pit.write_u8(0, 0xff);
    result?;
    // Closing the bound line dissolves the binding: a new line binds again.
    drop(line);
    let again = ok!(auth.irq_create(0));
    let n2 = ok!(Notification::create());
    ok!(again.bind(&n2, 1));
    Ok(())
}

fn frame_physical(_: &mut Ctx) -> TestResult {
    const VGA: u64 = 0xb8000;
    let auth = authority()?;
    let uc = DeviceCache::Uncached;
    // RAM is refused: the first 16 MiB hold usable RAM, and 1 MiB is RAM (the loader's or the
    // PMM's) on every PC memory map.
    expect_err!(
        auth.frame_create_physical(0, 0x100_0000, uc),
        Error::InvalidArgument
    );
    expect_err!(
        auth.frame_create_physical(0x10_0000, 4096, uc),
        Error::InvalidArgument
    );
    // A device range that runs into RAM is refused too.
    expect_err!(
        auth.frame_create_physical(0xf_f000, 0x2000, uc),
        Error::InvalidArgument
    );
    expect_err!(
        auth.frame_create_physical(VGA, 0, uc),
        Error::InvalidArgument
    );
    expect_err!(
        auth.frame_create_physical(VGA + 8, 4096, uc),
        Error::Misaligned
    );
    expect_err!(auth.frame_create_physical(VGA, 100, uc), Error::Misaligned);
    expect_err!(
        raw(
            Sysnum::FrameCreatePhysical,
            [auth.raw().raw(), VGA, 4096, 7, 0, 0]
        ),
        Error::InvalidArgument
    );
    expect_err!(
        auth.frame_create_physical(!0xfff, 4096, uc),
        Error::BadAddress
    );
    let frame = ok!(auth.frame_create_physical(VGA, 4096, uc));
    let info = ok!(frame.inspect());
    ensure!(
        info.kind == ObjectKind::Frame
            && info
                .rights
                .contains(Rights::READ | Rights::WRITE | Rights::MAP)
            && !info.rights.contains(Rights::EXECUTE),
        "device frame: {info:?}"
    );
    let vga = ok!(Mmio::map(frame, 4096));
    // The last cell of the 80x25 screen: write, read back, restore.
    let cell = 2 * (80 * 25 - 1);
    let saved = vga.read_u16(cell);
    for v in [0x1f48u16, 0x2e53] {
        vga.write_u16(cell, v);
        let got = vga.read_u16(cell);
        ensure!(got == v, "VGA cell read back {got:#x}, wrote {v:#x}");
    }
    vga.write_u16(cell, saved);
    // Write-combining is accepted as well (a framebuffer's mode).
    let wc = ok!(auth.frame_create_physical(VGA, 4096, DeviceCache::WriteCombining));
    let wc = ok!(Mmio::map(wc, 4096));
    let got = wc.read_u16(cell);
    ensure!(
        got == saved,
        "WC mapping reads {got:#x}, expected {saved:#x}"
    );
    // The rule for device mappings (docs/capabilities.md): closing the Frame handle does not
    // unmap what was mapped from it; the mapping lasts until it is unmapped.
    let dev = ok!(auth.frame_create_physical(VGA, 4096, uc));
    let view = ok!(libhsync::memory::Mapping::new_ro(&dev, 4096));
    ok!(dev.close());
    let after_close = view
        .as_slice()
        .get(cell..cell + 2)
        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
    ensure!(
        after_close == saved,
        "the mapping of a closed device frame reads {after_close:#x}, expected {saved:#x}"
    );
    drop(view);
    Ok(())
}

/// Closing a process's last handle to a port range disables the ports for it; a duplicate
/// still held keeps them.
fn ports_revoked_on_last_close(ctx: &mut Ctx) -> TestResult {
    let auth = authority()?;
    let range = ok!(auth.ioport_create(COM1, 8));
    let rights = ok!(range.inspect()).rights;
    let child = ok!(ok!(helper(ctx, OP_CLOSE_THEN_READ)
        .word(0)
        .handle(&range, rights))
    .start());
    let ended = ok!(child.process.wait(DEADLINE_NEVER));
    ensure!(
        ended.status == ExitStatus::Faulted(FaultKind::GeneralProtection),
        "a read after the last close ended {:?}, expected a GeneralProtection fault",
        ended.status
    );
    let child = ok!(ok!(helper(ctx, OP_CLOSE_THEN_READ)
        .word(1)
        .handle(&range, rights))
    .start());
    let ended = ok!(child.process.wait(DEADLINE_NEVER));
    ensure!(
        matches!(ended.status, ExitStatus::Exited(c) if c & 0x100 != 0 && c & 0xff != 0xff),
        "with a duplicate held the read ended {:?}",
        ended.status
    );
    Ok(())
}
