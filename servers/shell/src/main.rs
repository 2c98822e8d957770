//! `shell`: a console on the keyboard + display (`ps2` in, `vga` out) and on serial (`serial`
//! both ways), for looking around the live system.
//!
//! Input from each side has its own line editor (`hsync_shell_lang::LineEditor`) and is echoed
//! on its own side; command output goes to both. The command language (parsing, messages,
//! report formats) is host-tested in `servers/shell-lang`; this file is the I/O around it.
//! Servers it reaches: `root` (ps, kill, restart), `phase` (phase, wave, telemetry, bench,
//! crash), the kernel (`system_info` for mem). `poweroff` and `reboot` ask root (`power`), which
//! holds the hardware authority the kernel's `system_power` needs (ACPI S5 from the FADT and
//! DSDT; 0xCF9, keyboard controller, triple fault for reset); `caps <pid>` asks root (`caps`) for
//! a server's handles.
//!
//! Its own `log` records go through the serial server (`libhsync::logsink`, on a second
//! `serial` endpoint from root's `connect`, re-pointed after serial restarts), like every
//! other server's.
//!
//! The shell refuses to panic on input: every bad line gets a message.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use core::cell::Cell;
use core::fmt::{self, Write};

use hsync_phase_api::{FLAG_WAVE, PhaseClient};
use hsync_phase_core::{Phase, sine};
use hsync_ps2_api::{KeyEvent, Ps2Client, Ps2Error, Special};
use hsync_root_api::{RootClient, RootError, ServerStatus, Start};
use hsync_serial_api::SerialClient;
use hsync_shell_lang::{Command, Event, HELP, LineEditor, PROMPT, WaveMode, fmt as report, parse};
use hsync_vga_api::VgaClient;
use libhsync::protocol::{Bytes, ProtocolError};
use libhsync::{IpcBuf, Notification, Rights, StartArgs};

libhsync::entry!(main);

/// How often input is polled when a server would not take a subscription.
const POLL_NS: u64 = 20_000_000;

/// Where output goes.
struct Console {
    serial: Option<SerialClient>,
    vga: Option<VgaClient>,
    /// Set when a write found the server dead; the main loop reconnects through root.
    serial_died: Cell<bool>,
    vga_died: Cell<bool>,
}

/// Which side typed a line (its echo goes back there only).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Serial,
    Keyboard,
}

impl Console {
    fn serial_bytes(&self, ipc: &mut IpcBuf, bytes: &[u8]) {
        match &self.serial {
            Some(s) if !self.serial_died.get() => {
                for chunk in bytes.chunks(256) {
                    if let Err(ProtocolError::ServerDied) = s.write(ipc, chunk) {
                        self.serial_died.set(true);
                        break;
                    }
                }
            }
            _ => {
                // No serial server: the kernel debug log reaches COM1 too (whole lines only).
                if let Ok(text) = core::str::from_utf8(bytes) {
                    for line in text.lines().filter(|l| !l.is_empty()) {
                        libhsync::println!("{line}");
                    }
                }
            }
        }
    }

    fn vga_bytes(&self, ipc: &mut IpcBuf, bytes: &[u8]) {
        if let Some(v) = &self.vga
            && !self.vga_died.get()
        {
            for chunk in bytes.chunks(256) {
                if let Err(ProtocolError::ServerDied) = v.write(ipc, chunk) {
                    self.vga_died.set(true);
                    break;
                }
            }
        }
    }

    /// Writes to one side (echo) or both (`None`).
    fn write(&self, ipc: &mut IpcBuf, side: Option<Side>, bytes: &[u8]) {
        if side != Some(Side::Keyboard) {
            // Terminals want CR LF.
            let mut start = 0;
            for (i, &b) in bytes.iter().enumerate() {
                if b == b'\n' {
                    self.serial_bytes(ipc, &bytes[start..i]);
                    self.serial_bytes(ipc, b"\r\n");
                    start = i + 1;
                }
            }
            self.serial_bytes(ipc, &bytes[start..]);
        }
        if side != Some(Side::Serial) {
            self.vga_bytes(ipc, bytes);
        }
    }
}

/// The prompt on the display: light green (ANSI SGR 92), like a terminal's.
const VGA_PROMPT: &[u8] = b"\x1b[92mhsync>\x1b[0m ";
/// Messages about bad input, on the display: light red.
const VGA_ERROR: &[u8] = b"\x1b[91m";
/// Back to the default colours.
const VGA_RESET: &[u8] = b"\x1b[0m";

impl Console {
    /// The prompt on one side (or both): plain on serial, coloured on the display.
    fn prompt(&self, ipc: &mut IpcBuf, side: Option<Side>) {
        if side != Some(Side::Keyboard) {
            self.serial_bytes(ipc, PROMPT.as_bytes());
        }
        if side != Some(Side::Serial) {
            self.vga_bytes(ipc, VGA_PROMPT);
        }
    }

    /// Switches the display's colours (serial text stays plain: xtask and logs read it).
    fn vga_colour(&self, ipc: &mut IpcBuf, sgr: &[u8]) {
        self.vga_bytes(ipc, sgr);
    }
}

/// `core::fmt::Write` onto both sides, buffered by line.
struct Out<'a> {
    con: &'a Console,
    ipc: &'a mut IpcBuf,
    buf: [u8; 240],
    len: usize,
}

impl<'a> Out<'a> {
    fn new(con: &'a Console, ipc: &'a mut IpcBuf) -> Self {
        Out {
            con,
            ipc,
            buf: [0; 240],
            len: 0,
        }
    }

    fn flush(&mut self) {
        self.con.write(self.ipc, None, &self.buf[..self.len]);
        self.len = 0;
    }
}

impl Write for Out<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' {
                self.flush();
            }
        }
        Ok(())
    }
}

impl Drop for Out<'_> {
    fn drop(&mut self) {
        if self.len > 0 {
            self.flush();
        }
    }
}

struct Shell {
    con: Console,
    root: Option<RootClient>,
    phase: Option<PhaseClient>,
    serial_in: LineEditor,
    key_in: LineEditor,
    keys: Option<Ps2Client>,
    /// Servers found dead (by a call answering `ServerDied`), reconnected by [`Shell::heal`].
    keys_died: bool,
    phase_died: bool,
    /// The "input waiting" notification and how many input servers took a copy.
    wake: Option<Notification>,
    subscribed: u32,
}

/// `None` for "server died" (the caller reconnects), the error in words otherwise.
fn died<E>(e: ProtocolError<E>) -> Option<String>
where
    ProtocolError<E>: fmt::Display,
{
    match e {
        ProtocolError::ServerDied => None,
        e => Some(alloc::format!("{e}")),
    }
}

/// A protocol error in words, with "server died" spelled out.
fn say<E: fmt::Debug>(w: &mut impl Write, what: &str, e: ProtocolError<E>) -> fmt::Result {
    writeln!(w, "{what}: {e}")
}

impl Shell {
    fn feed(&mut self, ipc: &mut IpcBuf, side: Side, b: u8) {
        let ed = match side {
            Side::Serial => &mut self.serial_in,
            Side::Keyboard => &mut self.key_in,
        };
        match ed.feed(b) {
            Event::None => {}
            Event::Echo(c) => self.con.write(ipc, Some(side), &[c]),
            Event::Erase => self.con.write(ipc, Some(side), b"\x08 \x08"),
            Event::Cancel => {
                self.con.write(ipc, Some(side), b"^C\n");
                self.con.prompt(ipc, Some(side));
            }
            Event::Rejected(_) => {}
            Event::TooLong => {
                self.con.write(ipc, Some(side), b"\n");
                self.con.vga_colour(ipc, VGA_ERROR);
                let mut out = Out::new(&self.con, ipc);
                let _ = writeln!(
                    out,
                    "line too long (at most {} characters); discarded",
                    hsync_shell_lang::LINE_MAX
                );
                drop(out);
                self.con.vga_colour(ipc, VGA_RESET);
                self.con.prompt(ipc, Some(side));
            }
            Event::Line => {
                let mut line = [0u8; hsync_shell_lang::LINE_MAX];
                let text = ed.line();
                let n = text.len();
                line[..n].copy_from_slice(text.as_bytes());
                ed.clear();
                self.con.write(ipc, Some(side), b"\n");
                let text = core::str::from_utf8(&line[..n]).unwrap_or("");
                self.run(ipc, text);
                self.con.prompt(ipc, Some(side));
            }
        }
    }

    fn run(&mut self, ipc: &mut IpcBuf, line: &str) {
        let cmd = match parse(line) {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => {
                self.con.vga_colour(ipc, VGA_ERROR);
                let mut out = Out::new(&self.con, ipc);
                let _ = writeln!(out, "{e}");
                drop(out);
                self.con.vga_colour(ipc, VGA_RESET);
                return;
            }
        };
        // Calls need the IPC buffer, and so does output: collect what to print into a line
        // buffer per call site rather than holding `Out` across calls.
        let _ = self.command(ipc, cmd);
    }

    fn command(&mut self, ipc: &mut IpcBuf, cmd: Command<'_>) -> fmt::Result {
        let mut text = String::new();
        match cmd {
            Command::Help => text.write_str(HELP)?,
            Command::Mem => match libhsync::system_info() {
                Ok(i) => report::mem(
                    &mut text,
                    &report::Mem {
                        free_frames: i.free_frames,
                        used_frames: i.used_frames,
                        total_frames: i.total_frames,
                        processes: i.processes,
                        threads: i.threads,
                        objects: i.objects,
                    },
                )?,
                Err(e) => writeln!(text, "mem: {e:?}")?,
            },
            Command::Ps => {
                let Some(root) = &self.root else {
                    return self.print(ipc, "ps: no connection to root\n");
                };
                writeln!(text, "  #  name          state     prio  restarts  faults")?;
                for i in 0..64u64 {
                    match root.status(ipc, i) {
                        Ok(b) => match ServerStatus::decode(&b) {
                            Some(s) => writeln!(
                                text,
                                "{:>3}  {:<12}  {:<8}  {:>4}  {:>8}  {:>6}",
                                s.index,
                                s.name(),
                                s.state.name(),
                                s.priority,
                                s.restarts,
                                s.faults
                            )?,
                            None => writeln!(text, "{i:>3}  (malformed status)")?,
                        },
                        Err(ProtocolError::App(RootError::NoSuchServer)) => break,
                        Err(e) => {
                            say(&mut text, "ps", e)?;
                            break;
                        }
                    }
                }
            }
            Command::Caps(pid) => match &self.root {
                None => text.write_str("no connection to root\n")?,
                Some(root) => match root.caps(ipc, pid) {
                    Ok(bytes) => caps_report(&mut text, pid, bytes.as_slice())?,
                    Err(e) => writeln!(text, "caps {pid}: {e}")?,
                },
            },
            Command::Phase => match &self.phase {
                None => text.write_str("phase: no connection to the phase server\n")?,
                Some(p) => match p.status(ipc) {
                    Ok((phase, steps, words, flags)) => report::phase(
                        &mut text,
                        &report::PhaseStatus {
                            phase,
                            steps,
                            words,
                            sine: sine(Phase::new(phase)),
                            wave: flags & FLAG_WAVE != 0,
                            telemetry: flags & hsync_phase_api::FLAG_TELEMETRY != 0,
                        },
                    )?,
                    Err(e) => {
                        self.phase_died |= matches!(e, ProtocolError::ServerDied);
                        say(&mut text, "phase", e)?
                    }
                },
            },
            Command::Wave(mode) => match &self.phase {
                None => text.write_str("wave: no connection to the phase server\n")?,
                Some(p) => {
                    let on = match mode {
                        WaveMode::On => Ok(true),
                        WaveMode::Off => Ok(false),
                        WaveMode::Toggle => p.status(ipc).map(|s| s.3 & FLAG_WAVE == 0),
                    };
                    match on.and_then(|on| p.wave(ipc, on).map(|_| on)) {
                        Ok(on) => {
                            writeln!(text, "wave: visualizer {}", if on { "on" } else { "off" })?
                        }
                        Err(e) => {
                            self.phase_died |= matches!(e, ProtocolError::ServerDied);
                            say(&mut text, "wave", e)?
                        }
                    }
                }
            },
            Command::Telemetry(on) => match &self.phase {
                None => text.write_str("telemetry: no connection to the phase server\n")?,
                Some(p) => match p.telemetry(ipc, on) {
                    Ok(_) => writeln!(text, "telemetry: {}", if on { "on" } else { "off" })?,
                    Err(e) => {
                        self.phase_died |= matches!(e, ProtocolError::ServerDied);
                        say(&mut text, "telemetry", e)?
                    }
                },
            },
            Command::Bench(n) => match &self.phase {
                None => text.write_str("bench: no connection to the phase server\n")?,
                Some(p) => {
                    let t0 = libhsync::clock();
                    let c0 = libhsync::rdtsc();
                    let mut failed = None;
                    for i in 0..u64::from(n) {
                        match p.echo(ipc, i) {
                            Ok(x) if x == i => {}
                            Ok(_) => {
                                failed = Some(ProtocolError::BadReply);
                                break;
                            }
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                    }
                    let cycles = libhsync::rdtsc().wrapping_sub(c0);
                    let ns = libhsync::clock().saturating_sub(t0);
                    match failed {
                        None => report::bench(&mut text, n, ns, cycles)?,
                        Some(e) => {
                            self.phase_died |= matches!(e, ProtocolError::ServerDied);
                            say(&mut text, "bench", e)?
                        }
                    }
                }
            },
            Command::Kill(name) | Command::Restart(name) => match &self.root {
                None => text.write_str("no connection to root\n")?,
                Some(root) => {
                    let (verb, r) = match cmd {
                        Command::Kill(_) => ("killed", root.kill(ipc, name)),
                        _ => ("restarted", root.restart(ipc, name)),
                    };
                    match r {
                        Ok(()) => writeln!(text, "{name}: {verb}")?,
                        Err(e) => writeln!(text, "{name}: {e}")?,
                    }
                }
            },
            Command::Crash(name) => {
                let r = match name {
                    "phase" => self.phase.as_ref().map(|c| c.crash(ipc).map_err(died)),
                    "vga" => self.con.vga.as_ref().map(|c| c.crash(ipc).map_err(died)),
                    "serial" => self.con.serial.as_ref().map(|c| c.crash(ipc).map_err(died)),
                    "ps2" => self.keys.as_ref().map(|c| c.crash(ipc).map_err(died)),
                    _ => {
                        writeln!(
                            text,
                            "crash: `{name}` has no crash operation (phase, vga, serial and \
                             ps2 do); try `kill {name}` / `restart {name}`"
                        )?;
                        return self.print(ipc, &text);
                    }
                };
                match r {
                    None => writeln!(text, "crash: no connection to `{name}`")?,
                    Some(Err(None)) => {
                        writeln!(text, "{name}: faulted as asked; root restarts it")?;
                        match self.reconnect(ipc, name) {
                            Ok(()) => writeln!(text, "{name}: reconnected")?,
                            Err(why) => writeln!(text, "{name}: not reconnected: {why}")?,
                        }
                    }
                    Some(Ok(())) => writeln!(text, "{name}: did not crash")?,
                    Some(Err(Some(e))) => writeln!(text, "crash: {e}")?,
                }
            }
            Command::Clear => {
                if let Some(v) = &self.con.vga
                    && let Err(ProtocolError::ServerDied) = v.clear(ipc)
                {
                    self.con.vga_died.set(true);
                }
                // A terminal on serial: erase the screen, cursor home.
                self.con.serial_bytes(ipc, b"\x1b[2J\x1b[H");
            }
            Command::Display => match &self.con.vga {
                None => text.write_str("display: no connection to vga\n")?,
                Some(v) => match display_report(v, ipc) {
                    Ok(d) => report::display(&mut text, &d)?,
                    Err(e) => {
                        if matches!(e, ProtocolError::ServerDied) {
                            self.con.vga_died.set(true);
                        }
                        say(&mut text, "display", e)?
                    }
                },
            },
            Command::Poweroff => {
                self.print(ipc, "powering off\n")?;
                self.power(ipc, &mut text, "poweroff", libhsync::POWER_OFF)?;
            }
            Command::Reboot => {
                self.print(ipc, "rebooting\n")?;
                self.power(ipc, &mut text, "reboot", libhsync::POWER_REBOOT)?;
            }
        }
        self.print(ipc, &text)
    }

    /// Asks root to power off or reboot; returns (with a message in `text`) only if that failed.
    fn power(&self, ipc: &mut IpcBuf, text: &mut String, what: &str, op: u64) -> fmt::Result {
        match &self.root {
            None => writeln!(text, "{what}: no connection to root"),
            Some(root) => match root.power(ipc, op) {
                Ok(()) => writeln!(text, "{what}: root answered but the machine is still on"),
                Err(e) => writeln!(text, "{what}: not possible: {e}"),
            },
        }
    }

    /// Reconnects every server a call found dead (`ServerDied`).
    fn heal(&mut self, ipc: &mut IpcBuf) {
        for (name, dead) in [
            ("serial", self.con.serial_died.get()),
            ("vga", self.con.vga_died.get()),
            ("ps2", self.keys_died),
            ("phase", self.phase_died),
        ] {
            if dead && let Err(why) = self.reconnect(ipc, name) {
                log::warn!("shell: reconnecting to {name}: {why}");
            }
        }
    }

    /// After server `name` died: a fresh endpoint from root (waiting up to a second while
    /// root restarts it), and a fresh input subscription for serial and ps2. The server
    /// stays marked dead (output skips it) when this fails.
    fn reconnect(&mut self, ipc: &mut IpcBuf, name: &str) -> Result<(), String> {
        let Some(root) = &self.root else {
            return Err(String::from("no connection to root"));
        };
        let mut ep = None;
        for _ in 0..50 {
            match root.connect(ipc, name) {
                Ok(e) => {
                    ep = Some(e);
                    break;
                }
                Err(ProtocolError::App(RootError::NotRunning)) => {
                    let _ = libhsync::sleep_until(libhsync::clock() + POLL_NS);
                }
                Err(e) => return Err(alloc::format!("{e}")),
            }
        }
        let ep = ep.ok_or_else(|| String::from("not running again within a second"))?;
        let copy = || {
            self.wake
                .as_ref()
                .and_then(|n| n.duplicate(Rights::SIGNAL.union(Rights::TRANSFER)).ok())
        };
        match name {
            "serial" => {
                // The log sink's endpoint died with the old server too.
                self.point_log_sink(ipc);
                let c = SerialClient::new(ep);
                // The old subscription died with the old server.
                if let Some(n) = copy()
                    && c.subscribe(ipc, n).is_err()
                {
                    self.subscribed = self.subscribed.saturating_sub(1);
                }
                self.con.serial = Some(c);
                self.con.serial_died.set(false);
            }
            "vga" => {
                self.con.vga = Some(VgaClient::new(ep));
                self.con.vga_died.set(false);
            }
            "ps2" => {
                let c = Ps2Client::new(ep);
                if let Some(n) = copy()
                    && c.subscribe(ipc, n).is_err()
                {
                    self.subscribed = self.subscribed.saturating_sub(1);
                }
                self.keys = Some(c);
                self.keys_died = false;
            }
            "phase" => {
                self.phase = Some(PhaseClient::new(ep));
                self.phase_died = false;
            }
            _ => return Err(alloc::format!("`{name}` is not a server the shell uses")),
        }
        Ok(())
    }

    /// Sends the shell's `log` records through the serial server (`libhsync::logsink`), on an
    /// endpoint of its own from root's `connect` (the `serial` import has only `SEND`, so it
    /// cannot be duplicated, and the [`SerialClient`] keeps it). Without one, records go to
    /// the kernel debug log.
    fn point_log_sink(&self, ipc: &mut IpcBuf) {
        let Some(root) = &self.root else { return };
        match root.connect(ipc, "serial") {
            Ok(ep) => libhsync::logsink::set_endpoint(ep),
            Err(e) => log::warn!("shell: no log sink on serial: {e}"),
        }
    }

    fn print(&self, ipc: &mut IpcBuf, s: &str) -> fmt::Result {
        let mut out = Out::new(&self.con, ipc);
        out.write_str(s)
    }

    /// Received serial bytes, if any are waiting (none on an error: the next wake retries).
    fn serial_bytes(&self, ipc: &mut IpcBuf) -> Option<Bytes> {
        if self.con.serial_died.get() {
            return None;
        }
        match self.con.serial.as_ref()?.read(ipc, 128) {
            Ok(b) => (!b.is_empty()).then_some(b),
            Err(ProtocolError::ServerDied) => {
                self.con.serial_died.set(true);
                None
            }
            Err(_) => None,
        }
    }

    /// The next key event, if one is waiting.
    fn next_key(&mut self, ipc: &mut IpcBuf) -> Option<KeyEvent> {
        if self.keys_died {
            return None;
        }
        match self.keys.as_ref()?.next_key(ipc) {
            Ok(k) => Some(k),
            Err(ProtocolError::App(Ps2Error::Empty)) => None,
            Err(ProtocolError::ServerDied) => {
                self.keys_died = true;
                None
            }
            Err(e) => {
                log::warn!("shell: ps2: {e}");
                None
            }
        }
    }

    /// Drains waiting input from both sides.
    fn poll_input(&mut self, ipc: &mut IpcBuf) {
        while let Some(b) = self.serial_bytes(ipc) {
            for &c in b.iter() {
                self.feed(ipc, Side::Serial, c);
            }
        }
        while let Some(k) = self.next_key(ipc) {
            if !k.pressed {
                continue;
            }
            let b = match (k.special, k.ch) {
                (Special::Enter, _) => b'\r',
                (Special::Backspace, _) => 0x08,
                (_, Some(c)) if c.is_ascii() => c as u8,
                _ => continue,
            };
            self.feed(ipc, Side::Keyboard, b);
        }
    }
}

fn main(mut args: StartArgs) -> i32 {
    let Some(mut start) = Start::take(&mut args) else {
        log::error!("shell: not started by root (no start layout)");
        return 1;
    };
    let ipc = &mut args.ipc;
    let serial = start.import("serial").map(SerialClient::new);
    let vga = start.import("vga").map(VgaClient::new);
    let keys = start.import("ps2").map(Ps2Client::new);
    let phase = start.import("phase").map(PhaseClient::new);
    let root = start.root();

    // One notification for "input waiting" from either side; each server gets its own copy.
    let wake = Notification::create().ok();
    let mut subscribed = 0;
    if let Some(n) = &wake {
        if let (Some(s), Ok(copy)) = (&serial, n.duplicate(Rights::SIGNAL.union(Rights::TRANSFER)))
        {
            subscribed += u32::from(s.subscribe(ipc, copy).is_ok());
        }
        if let (Some(k), Ok(copy)) = (&keys, n.duplicate(Rights::SIGNAL.union(Rights::TRANSFER))) {
            subscribed += u32::from(k.subscribe(ipc, copy).is_ok());
        }
    }
    let wanted = u32::from(serial.is_some()) + u32::from(keys.is_some());

    let mut shell = Shell {
        con: Console {
            serial,
            vga,
            serial_died: Cell::new(false),
            vga_died: Cell::new(false),
        },
        root,
        phase,
        serial_in: LineEditor::new(),
        key_in: LineEditor::new(),
        keys,
        keys_died: false,
        phase_died: false,
        wake,
        subscribed,
    };
    if let Some(root) = &shell.root {
        hsync_root_api::report_ready(root, ipc);
    }
    if shell.con.serial.is_some() {
        shell.point_log_sink(ipc);
    }
    log::info!("shell: ready ({subscribed}/{wanted} input subscriptions)");
    let _ = shell.print(ipc, "HSYNC-OS shell: type `help`\n");
    shell.con.prompt(ipc, None);
    loop {
        shell.poll_input(ipc);
        shell.heal(ipc);
        match (&shell.wake, shell.subscribed == wanted && wanted > 0) {
            (Some(n), true) => {
                let _ = n.wait();
            }
            _ => {
                let _ = libhsync::sleep_until(libhsync::clock() + POLL_NS);
            }
        }
    }
}

/// The display's mode and wave frame timing, from vga (`info`, `pixel_size`, `frame_stats`).
fn display_report(
    vga: &VgaClient,
    ipc: &mut IpcBuf,
) -> Result<report::Display, hsync_vga_api::Error> {
    let (mode, cols, rows) = vga.info(ipc)?;
    let framebuffer = mode == hsync_vga_api::Mode::Framebuffer;
    let (width, height) = if framebuffer {
        vga.pixel_size(ipc)?
    } else {
        (u32::from(cols), u32::from(rows))
    };
    let stats = vga.frame_stats(ipc)?;
    let mut w = [0u64; 8];
    for (v, b) in w.iter_mut().zip(stats.as_slice().chunks_exact(8)) {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        *v = u64::from_le_bytes(a);
    }
    Ok(report::Display {
        framebuffer,
        width,
        height,
        frames: w[0],
        median_ns: w[1],
        p99_ns: w[2],
        min_ns: w[3],
        fps_milli: w[4],
        frame_bytes: w[5],
        kept: w[6],
    })
}

/// `caps` output: a header, then one line per handle (slot in list order, kind, rights, badge).
fn caps_report(w: &mut impl Write, pid: u64, bytes: &[u8]) -> fmt::Result {
    let Some((caps, total)) = hsync_root_api::decode_caps(bytes) else {
        return writeln!(w, "caps {pid}: malformed reply from root");
    };
    writeln!(w, "caps {pid}: {total} handles")?;
    writeln!(w, "  slot  kind            rights")?;
    let mut shown = 0u64;
    for (i, c) in caps.enumerate() {
        write!(w, "  {i:>4}  {:<14}  ", c.kind.name())?;
        let mut first = true;
        for (name, _) in c.rights.iter_names() {
            if !first {
                w.write_char('|')?;
            }
            w.write_str(name)?;
            first = false;
        }
        if first {
            w.write_char('-')?;
        }
        if c.badge != 0 {
            write!(w, "  badge {}", c.badge)?;
        }
        w.write_char('\n')?;
        shown += 1;
    }
    if shown < total {
        writeln!(w, "  ... and {} more", total - shown)?;
    }
    Ok(())
}
