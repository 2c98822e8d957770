//! `hsync-vga-probe`: the QEMU check of the vga server (`cargo xtask test --filter vga`).
//!
//! It runs as root of a test initfs holding itself and `hsync-vga`. It creates the grants the
//! manifest gives vga (the text buffer frame at 0xB8000, the CRTC ports), starts the server
//! with root's start layout (`hsync_root_api::Start`), answers its ready handshake, then
//! drives it through the protocol and prints one `[vga] pass NAME` / `[vga] fail NAME: why` line
//! per check and `[vga] done passed=P failed=F`. It then leaves a known screen in place for
//! xtask, which reads the text buffer through the QEMU monitor (`pmemsave`) and compares it:
//! row 0 the status line (` HSYNC-OS | up `, black on light grey), row 1 `line 1` (light grey
//! on black), row 10 `HSYNC-OS vga probe: hello, screen` (yellow on blue), cell (79, 24) `#`
//! with attribute 0x4F.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::fmt::Display;

use hsync_abi::DeviceCache;
use hsync_root_api::{ResourceKind, RootError, RootServer, StartLayout};
use hsync_vga_api::{Color, Mode, ProtocolError, VgaClient, VgaError};
use libhsync::hw::HwAuthority;
use libhsync::process::{Image, Spawn};
use libhsync::protocol::Message;
use libhsync::{Endpoint, Info, IpcBuf, Notification, Rights, StartArgs};

libhsync::entry!(main);

const TEXT_BASE: u64 = 0xB8000;
const TEXT_SIZE: u64 = 0x8000;
const CRTC: u16 = 0x3D4;

/// Root's side of the handshake: only `ready` is expected from vga.
struct FakeRoot {
    ready: bool,
}

impl RootServer for FakeRoot {
    fn ready(&mut self, _badge: u64) -> Result<(), RootError> {
        self.ready = true;
        Ok(())
    }
    fn connect(&mut self, _badge: u64, _protocol: &str) -> Result<Endpoint, RootError> {
        Err(RootError::Refused)
    }
    fn status(&mut self, _badge: u64, _index: u64) -> Result<hsync_root_api::Bytes, RootError> {
        Err(RootError::Refused)
    }
    fn kill(&mut self, _badge: u64, _name: &str) -> Result<(), RootError> {
        Err(RootError::Refused)
    }
    fn restart(&mut self, _badge: u64, _name: &str) -> Result<(), RootError> {
        Err(RootError::Refused)
    }
    fn power(&mut self, _badge: u64, _op: u64) -> Result<(), RootError> {
        Err(RootError::Refused)
    }
    fn caps(&mut self, _badge: u64, _index: u64) -> Result<hsync_root_api::Bytes, RootError> {
        Err(RootError::Refused)
    }
}

/// Receives and answers one request on `ep`.
fn answer_one(ep: &Endpoint, ipc: &mut IpcBuf, root: &mut FakeRoot) -> Result<(), libhsync::Error> {
    let got = ep.recv()?;
    let mut req = Message::receive(&got.msg, ipc);
    let rep = root.dispatch(got.badge, &mut req);
    let msg = rep.load(ipc)?;
    libhsync::ipc::reply(msg)
}

struct Tally {
    passed: u32,
    failed: u32,
}

impl Tally {
    fn check(&mut self, name: &str, ok: bool, why: impl Display) {
        if ok {
            self.passed += 1;
            libhsync::println!("[vga] pass {name}");
        } else {
            self.failed += 1;
            libhsync::println!("[vga] fail {name}: {why}");
        }
    }
}

fn start_vga(args: &StartArgs, ep: &Endpoint, root_ep: &Endpoint) -> Result<(), &'static str> {
    let archive = args
        .initfs()
        .and_then(|i| hsync_initfs::Archive::parse(i).ok())
        .ok_or("no initfs")?;
    let elf = archive
        .get("hsync-vga")
        .ok_or("no hsync-vga in the initfs")?;
    let image = Image::from_bytes(elf).map_err(|_| "bad hsync-vga ELF")?;
    let auth = HwAuthority::root().ok_or("no hardware authority")?;
    let frame = auth
        .frame_create_physical(TEXT_BASE, TEXT_SIZE, DeviceCache::Uncached)
        .map_err(|_| "frame_create_physical")?;
    let ports = auth.ioport_create(CRTC, 2).map_err(|_| "ioport_create")?;
    let all = |i: Result<Info, libhsync::Error>| i.map(|i| i.rights);
    let mut layout = StartLayout::new(0);
    layout
        .export()
        .resource(ResourceKind::IoPorts, CRTC.into(), 2)
        .resource(ResourceKind::Mmio, TEXT_BASE, TEXT_SIZE);
    let words = layout.words().ok_or("start layout too large")?;
    let spawn = Spawn::new(&image, "vga")
        .priority(20)
        .words(words.as_slice())
        .handle(ep, all(ep.inspect()).map_err(|_| "inspect")?)
        .and_then(|s| s.handle(&ports, all(ports.inspect())?))
        .and_then(|s| s.handle(&frame, all(frame.inspect())?))
        .and_then(|s| s.handle(root_ep, Rights::SEND | Rights::TRANSFER))
        .map_err(|_| "granting handles")?;
    spawn.start().map_err(|_| "spawn")?;
    Ok(())
}

/// The wave panel: opens at the bottom (rows 16..25 of 25), takes frames, keeps the console
/// out of its rows, closes.
fn panel_checks(vga: &VgaClient, ipc: &mut IpcBuf, t: &mut Tally) {
    let r = vga.panel(ipc, true);
    t.check("panel_opens", r == Ok(false), format_args!("{r:?}"));
    let mut samples = [0u8; 2 * 80];
    for (i, s) in samples.chunks_exact_mut(2).enumerate() {
        // A triangle, full amplitude.
        let v = (i as i32 % 40 - 20) * 32767 / 20;
        s.copy_from_slice(&(v as i16).to_le_bytes());
    }
    let r = vga.wave(ipc, 0x1234, &samples);
    t.check("wave_frame", r.is_ok(), format_args!("{r:?}"));
    let c = vga.get_cell(ipc, 0, 16);
    t.check(
        "panel_readout",
        c == Ok((b'H', hsync_vga::scope::TEXT_READOUT)),
        format_args!("{c:?}"),
    );
    let r = vga.set_cursor(ipc, 0, 16);
    t.check(
        "cursor_not_in_panel",
        r == Err(ProtocolError::App(VgaError::OutOfRange)),
        format_args!("{r:?}"),
    );
    let r = vga.write(ipc, b"\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\nbelow?");
    let c = vga.cursor(ipc);
    t.check(
        "console_stops_above_panel",
        r.is_ok() && c == Ok((6, 15)),
        format_args!("{r:?} {c:?}"),
    );
    let r = vga.wave(ipc, 0, &samples[..1]);
    t.check(
        "wave_bad_frame",
        r == Err(ProtocolError::App(VgaError::OutOfRange)),
        format_args!("{r:?}"),
    );
    let r = vga.panel(ipc, false);
    t.check("panel_closes", r == Ok(true), format_args!("{r:?}"));
    let c = vga.get_cell(ipc, 0, 16);
    t.check(
        "panel_rows_given_back",
        c == Ok((b' ', 0x07)),
        format_args!("{c:?}"),
    );
}

fn main(mut args: StartArgs) -> i32 {
    libhsync::println!("[vga] probe: starting hsync-vga");
    let (Ok(ep), Ok(root_ep)) = (Endpoint::create(), Endpoint::create()) else {
        libhsync::println!("[vga] fail setup: endpoint_create");
        return 1;
    };
    if let Err(e) = start_vga(&args, &ep, &root_ep) {
        libhsync::println!("[vga] fail setup: {e}");
        return 1;
    }
    let mut t = Tally {
        passed: 0,
        failed: 0,
    };
    let mut root = FakeRoot { ready: false };
    let r = answer_one(&root_ep, &mut args.ipc, &mut root);
    t.check(
        "ready_handshake",
        r.is_ok() && root.ready,
        format_args!("{r:?}"),
    );

    let vga = VgaClient::new(ep);
    let ipc = &mut args.ipc;
    let info = vga.info(ipc);
    t.check(
        "info_text_mode",
        info == Ok((Mode::Text, 80, 25)),
        format_args!("{info:?}"),
    );
    let r = vga.clear(ipc);
    t.check("clear", r.is_ok(), format_args!("{r:?}"));
    let c = vga.cursor(ipc);
    t.check(
        "console_below_status_line",
        c == Ok((0, 1)),
        format_args!("{c:?}"),
    );
    panel_checks(&vga, ipc, &mut t);
    let r = vga.clear(ipc);
    t.check("clear_after_panel", r.is_ok(), format_args!("{r:?}"));
    let r = vga.write(ipc, b"line 0\nline 1\n");
    t.check("write", r == Ok(14), format_args!("{r:?}"));
    let r = vga.scroll(ipc, 1);
    t.check("scroll", r.is_ok(), format_args!("{r:?}"));
    let c = vga.get_cell(ipc, 0, 1);
    t.check(
        "scrolled_cell",
        c == Ok((b'l', 0x07)),
        format_args!("{c:?}"),
    );
    let c = vga.get_cell(ipc, 5, 1);
    t.check(
        "scrolled_text",
        c == Ok((b'1', 0x07)),
        format_args!("{c:?}"),
    );
    let c = vga.cursor(ipc);
    t.check("cursor_after_write", c == Ok((0, 3)), format_args!("{c:?}"));
    let c = vga.get_cell(ipc, 1, 0);
    t.check(
        "status_line",
        c == Ok((b'H', hsync_vga::STATUS_ATTR)),
        format_args!("{c:?}"),
    );

    let r = vga
        .set_cursor(ipc, 0, 10)
        .and_then(|()| vga.set_color(ipc, Color::Yellow, Color::Blue))
        .and_then(|()| vga.write(ipc, b"HSYNC-OS vga probe: hello, screen"));
    t.check("colour_text", r == Ok(33), format_args!("{r:?}"));
    let c = vga.cursor(ipc);
    t.check("cursor_moves", c == Ok((33, 10)), format_args!("{c:?}"));
    let r = vga.set_color(ipc, Color::LightGray, Color::Black);
    t.check("set_color", r.is_ok(), format_args!("{r:?}"));

    let r = vga.put_cell(ipc, 79, 24, b'#', 0x4F);
    let c = vga.get_cell(ipc, 79, 24);
    t.check(
        "put_cell",
        r.is_ok() && c == Ok((b'#', 0x4F)),
        format_args!("{r:?} {c:?}"),
    );
    let r = vga.put_cells(ipc, 0, 20, b"w\x0Aa\x0Av\x0Ae\x0A");
    let c = vga.get_cell(ipc, 3, 20);
    t.check(
        "put_cells",
        r.is_ok() && c == Ok((b'e', 0x0A)),
        format_args!("{r:?} {c:?}"),
    );

    let out = Err(ProtocolError::App(VgaError::OutOfRange));
    let r = vga.put_cell(ipc, 80, 0, b'!', 7);
    t.check("put_cell_out_of_range", r == out, format_args!("{r:?}"));
    let r = vga.set_cursor(ipc, 0, 25);
    t.check("set_cursor_out_of_range", r == out, format_args!("{r:?}"));
    let r = vga.scroll(ipc, 26);
    t.check("scroll_out_of_range", r == out, format_args!("{r:?}"));
    let r = vga.put_pixel(ipc, 0, 0, 0xFFFFFF);
    t.check(
        "pixels_not_in_text_mode",
        r == Err(ProtocolError::App(VgaError::NotSupported)),
        format_args!("{r:?}"),
    );
    // The server is still there after the rejected requests.
    let c = vga.get_cell(ipc, 0, 10);
    t.check(
        "still_serving",
        c == Ok((b'H', 0x1E)),
        format_args!("{c:?}"),
    );

    libhsync::println!("[vga] done passed={} failed={}", t.passed, t.failed);
    // Keep the screen (and the server) as they are until xtask has read the buffer.
    let Ok(park) = Notification::create() else {
        return 1;
    };
    loop {
        if park.wait().is_err() {
            return 1;
        }
    }
}
