//! `ps2`: the i8042 PS/2 controller and the keyboard on its first port (IRQ 1). Scancodes (set
//! 1: the controller translates) are decoded with `pc-keyboard` (US 104 layout) into
//! [`KeyEvent`]s, queued per client, and announced to subscribers.
//!
//! One thread owns the controller and all state: the serving thread of [`libhsync::serve`],
//! which hands it IRQ 1 ([`Ps2::on_irq`]) between two client requests and unmasks the line
//! after each. No locks.
//!
//! Start: by root ([`hsync_root_api::Start`]: export 0 = `ps2`, port ranges 0x60 and 0x64 in
//! that order, IRQ 1, import `serial` for the log), or, in the driver bring-up image (`cargo
//! xtask test --filter ps2`), as the first process holding the hardware authority: it then
//! claims the controller itself and logs every key event.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::{BTreeMap, VecDeque};

use hsync_ps2_api::{KEY_READY, KeyEvent, Ps2Error, Ps2Server, Special};
use hsync_root_api::Start;
use libhsync::hw::{HwAuthority, IoPorts, IrqLine};
use libhsync::{Endpoint, Notification, StartArgs};
use pc_keyboard::layouts::Us104Key;
use pc_keyboard::{
    DecodedKey, EventDecoder, HandleControl, KeyCode, KeyState, ScancodeSet, ScancodeSet1,
};

libhsync::entry!(main);

/// Client queues, and events each holds before new ones are dropped.
const MAX_CLIENTS: usize = 8;
const QUEUE_LEN: usize = 128;
/// Status-register polls before a controller command is declared timed out.
const POLLS: u32 = 1_000_000;

// i8042 status register bits.
const STATUS_OUTPUT_FULL: u8 = 1 << 0;
const STATUS_INPUT_FULL: u8 = 1 << 1;
// Controller configuration byte bits.
const CONFIG_IRQ1: u8 = 1 << 0;
const CONFIG_IRQ12: u8 = 1 << 1;
const CONFIG_PORT1_CLOCK_OFF: u8 = 1 << 4;
const CONFIG_TRANSLATE: u8 = 1 << 6;

/// The controller: data port and status/command port.
struct I8042 {
    data: IoPorts,
    cmd: IoPorts,
}

impl I8042 {
    fn status(&self) -> u8 {
        self.cmd.read_u8(0)
    }

    fn wait_input_empty(&self) -> Result<(), &'static str> {
        for _ in 0..POLLS {
            if self.status() & STATUS_INPUT_FULL == 0 {
                return Ok(());
            }
        }
        Err("controller input buffer stays full")
    }

    fn command(&self, c: u8) -> Result<(), &'static str> {
        self.wait_input_empty()?;
        self.cmd.write_u8(0, c);
        Ok(())
    }

    fn write_data(&self, b: u8) -> Result<(), &'static str> {
        self.wait_input_empty()?;
        self.data.write_u8(0, b);
        Ok(())
    }

    fn read_data(&self) -> Result<u8, &'static str> {
        for _ in 0..POLLS {
            if self.status() & STATUS_OUTPUT_FULL != 0 {
                return Ok(self.data.read_u8(0));
            }
        }
        Err("no answer from the controller")
    }

    fn flush(&self) {
        for _ in 0..64 {
            if self.status() & STATUS_OUTPUT_FULL == 0 {
                break;
            }
            let _ = self.data.read_u8(0);
        }
    }

    fn config(&self) -> Result<u8, &'static str> {
        self.command(0x20)?;
        self.read_data()
    }

    fn set_config(&self, c: u8) -> Result<(), &'static str> {
        self.command(0x60)?;
        self.write_data(c)
    }

    /// The OSDev sequence: disable both ports, flush, IRQs and translation off, controller
    /// self-test (0x55), first-port interface test (0x00), enable the port, then IRQ 1 and
    /// translation (set 2 → set 1) on, and tell the keyboard to scan.
    fn init(&self) -> Result<(), &'static str> {
        self.command(0xAD)?; // disable port 1
        self.command(0xA7)?; // disable port 2 (ignored without one)
        self.flush();
        let mut config = self.config()?;
        config &= !(CONFIG_IRQ1 | CONFIG_IRQ12 | CONFIG_TRANSLATE);
        self.set_config(config)?;
        self.command(0xAA)?;
        if self.read_data()? != 0x55 {
            return Err("controller self-test failed");
        }
        // Some controllers reset on self-test: write the configuration again.
        self.set_config(config)?;
        self.command(0xAB)?;
        if self.read_data()? != 0x00 {
            return Err("first port interface test failed");
        }
        self.command(0xAE)?; // enable port 1
        config = (config | CONFIG_IRQ1 | CONFIG_TRANSLATE) & !CONFIG_PORT1_CLOCK_OFF;
        self.set_config(config)?;
        // Enable scanning; a keyboard that does not ACK is reported, not fatal.
        self.write_data(0xF4)?;
        match self.read_data() {
            Ok(0xFA) => {}
            Ok(b) => log::warn!("ps2: keyboard answered {b:#04x} to enable-scanning"),
            Err(e) => log::warn!("ps2: keyboard: {e}"),
        }
        Ok(())
    }
}

/// The keyboard state and the client queues.
struct Ps2 {
    ctl: I8042,
    set1: ScancodeSet1,
    decoder: EventDecoder<Us104Key>,
    queues: BTreeMap<u64, VecDeque<KeyEvent>>,
    subscribers: BTreeMap<u64, Notification>,
    scancodes: u64,
    events: u64,
    dropped: u64,
    /// Bring-up mode: log every key event.
    log_keys: bool,
}

fn special(code: KeyCode) -> Special {
    use KeyCode as K;
    match code {
        K::Return | K::NumpadEnter => Special::Enter,
        K::Backspace => Special::Backspace,
        K::Tab => Special::Tab,
        K::Escape => Special::Escape,
        K::ArrowUp => Special::Up,
        K::ArrowDown => Special::Down,
        K::ArrowLeft => Special::Left,
        K::ArrowRight => Special::Right,
        K::Home => Special::Home,
        K::End => Special::End,
        K::PageUp => Special::PageUp,
        K::PageDown => Special::PageDown,
        K::Insert => Special::Insert,
        K::Delete => Special::Delete,
        K::F1 => Special::F1,
        K::F2 => Special::F2,
        K::F3 => Special::F3,
        K::F4 => Special::F4,
        K::F5 => Special::F5,
        K::F6 => Special::F6,
        K::F7 => Special::F7,
        K::F8 => Special::F8,
        K::F9 => Special::F9,
        K::F10 => Special::F10,
        K::F11 => Special::F11,
        K::F12 => Special::F12,
        K::LShift | K::RShift => Special::Shift,
        K::LControl | K::RControl | K::RControl2 => Special::Control,
        K::LAlt | K::RAltGr | K::RAlt2 => Special::Alt,
        K::CapsLock => Special::CapsLock,
        _ => Special::None,
    }
}

impl Ps2 {
    fn new(ctl: I8042) -> Ps2 {
        Ps2 {
            ctl,
            set1: ScancodeSet1::new(),
            decoder: EventDecoder::new(Us104Key, HandleControl::Ignore),
            queues: BTreeMap::new(),
            subscribers: BTreeMap::new(),
            scancodes: 0,
            events: 0,
            dropped: 0,
            log_keys: false,
        }
    }

    /// The interrupt: decode every byte the controller holds.
    fn on_irq(&mut self) {
        for _ in 0..64 {
            if self.ctl.status() & STATUS_OUTPUT_FULL == 0 {
                break;
            }
            let byte = self.ctl.data.read_u8(0);
            self.scancodes += 1;
            self.scancode(byte);
        }
    }

    fn scancode(&mut self, byte: u8) {
        let ev = match self.set1.advance_state(byte) {
            Ok(Some(ev)) => ev,
            Ok(None) => return, // the middle of a multi-byte code
            Err(e) => {
                log::warn!("ps2: scancode {byte:#04x}: {e:?}");
                return;
            }
        };
        let pressed = match ev.state {
            KeyState::Down => true,
            KeyState::Up => false,
            KeyState::SingleShot => return, // self-test OK / too many keys: not a key
        };
        let code = ev.code;
        // Every event goes through the decoder: it tracks shift, caps lock, ...
        let ch = match self.decoder.process_keyevent(ev) {
            Some(DecodedKey::Unicode(c)) if pressed => Some(c),
            _ => None,
        };
        let key = KeyEvent {
            pressed,
            ch,
            special: special(code),
        };
        self.events += 1;
        if self.log_keys {
            log::info!(
                "ps2: key {:?} {} (char {:?})",
                code,
                if pressed { "pressed" } else { "released" },
                ch
            );
        }
        for (badge, q) in self.queues.iter_mut() {
            if q.len() >= QUEUE_LEN {
                self.dropped += 1;
                continue;
            }
            q.push_back(key);
            if let Some(n) = self.subscribers.get(badge) {
                let _ = n.signal(KEY_READY);
            }
        }
    }

    fn queue(&mut self, badge: u64) -> Result<&mut VecDeque<KeyEvent>, Ps2Error> {
        if !self.queues.contains_key(&badge) && self.queues.len() >= MAX_CLIENTS {
            return Err(Ps2Error::TooManyClients);
        }
        Ok(self.queues.entry(badge).or_default())
    }
}

impl Ps2Server for Ps2 {
    fn next_key(&mut self, badge: u64) -> Result<KeyEvent, Ps2Error> {
        self.queue(badge)?.pop_front().ok_or(Ps2Error::Empty)
    }

    fn subscribe(&mut self, badge: u64, notification: Notification) -> Result<(), Ps2Error> {
        if !self.queue(badge)?.is_empty() {
            let _ = notification.signal(KEY_READY);
        }
        self.subscribers.insert(badge, notification);
        Ok(())
    }

    fn stats(&mut self, _badge: u64) -> Result<(u64, u64, u64), Ps2Error> {
        Ok((self.scancodes, self.events, self.dropped))
    }

    fn crash(&mut self, badge: u64) -> Result<(), Ps2Error> {
        log::warn!("ps2: crash requested by client {badge}; faulting on purpose");
        libhsync::fault::page_fault(0)
    }
}

/// What the server runs with, however it was started.
struct Resources {
    endpoint: Endpoint,
    data: IoPorts,
    cmd: IoPorts,
    irq: IrqLine,
    root: Option<hsync_root_api::RootClient>,
    bring_up: bool,
}

fn resources(args: &mut StartArgs) -> Result<Resources, &'static str> {
    if let Some(mut start) = Start::take(args) {
        if let Some(serial) = start.import("serial") {
            libhsync::logsink::set_endpoint(serial);
        }
        let endpoint = start.export(0).ok_or("no export endpoint")?;
        let data = start.io_ports(0).ok_or("no data port (0x60)")?;
        let cmd = start.io_ports(1).ok_or("no command port (0x64)")?;
        let (data, cmd) = (
            data.map_err(|_| "ioport_enable failed")?,
            cmd.map_err(|_| "ioport_enable failed")?,
        );
        if data.base() != 0x60 || cmd.base() != 0x64 {
            return Err("port ranges are not 0x60 and 0x64");
        }
        let (irq, _) = start.irq(0).ok_or("no IRQ line")?;
        return Ok(Resources {
            endpoint,
            data,
            cmd,
            irq,
            root: start.root(),
            bring_up: false,
        });
    }
    let auth = HwAuthority::root().ok_or("not started by root and no hardware authority")?;
    let port = |p: u16| {
        auth.ioport_create(p, 1)
            .and_then(|r| IoPorts::enable(r, p, 1))
            .map_err(|_| "cannot claim the i8042 ports")
    };
    Ok(Resources {
        endpoint: Endpoint::create().map_err(|_| "endpoint_create failed")?,
        data: port(0x60)?,
        cmd: port(0x64)?,
        irq: auth.irq_create(1).map_err(|_| "irq_create failed")?,
        root: None,
        bring_up: true,
    })
}

fn main(mut args: StartArgs) -> i32 {
    let res = match resources(&mut args) {
        Ok(r) => r,
        Err(e) => {
            log::error!("ps2: cannot start: {e}");
            return 1;
        }
    };
    let ctl = I8042 {
        data: res.data,
        cmd: res.cmd,
    };
    if let Err(e) = ctl.init() {
        log::error!("ps2: i8042 init: {e}");
        return 1;
    }
    let mut ps2 = Ps2::new(ctl);
    ps2.log_keys = res.bring_up;
    if let Some(root) = &res.root
        && let Err(e) = root.ready(&mut args.ipc)
    {
        log::warn!("ps2: ready handshake failed: {e}");
    }
    log::info!("ps2: i8042 ready (self-test passed, translation on, IRQ 1)");
    let err = libhsync::serve(&res.endpoint)
        .on_irq(res.irq, Ps2::on_irq)
        .run(&mut args.ipc, &mut ps2, Ps2::dispatch);
    log::error!("ps2: stopped serving: {err:?}");
    2
}
