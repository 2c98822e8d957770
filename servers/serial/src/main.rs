//! `serial`: the COM1 16550 UART — interrupt-driven receive into a ring buffer, buffered
//! transmit, and the system log sink (`log_chunk`, see `libhsync::logsink`).
//!
//! One thread owns the UART and all state: the serving thread of [`libhsync::serve`], which
//! hands it IRQ 4 ([`Serial::on_irq`]) between two client requests, never in the middle of one,
//! and unmasks the line after each. So there is no lock.
//!
//! Why not the `uart_16550` crate (the kernel uses it for its own log): it executes `in`/`out`
//! itself on its own port type, and servers are `forbid(unsafe_code)` with port access only
//! through `libhsync::hw::IoPorts`; the register protocol below is forty lines.
//!
//! Start: by root ([`hsync_root_api::Start`]: export 0 = `serial`, I/O ports 0x3F8+8, IRQ 4),
//! or, in the driver bring-up image (`cargo xtask test --filter serial`), as the first process
//! holding the hardware authority: it then claims COM1 itself and echoes what it receives.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use hsync_root_api::Start;
use hsync_serial_api::{Bytes, RX_READY, SerialError, SerialServer};
use libhsync::hw::{HwAuthority, IoPorts, IrqLine};
use libhsync::{Endpoint, Notification, StartArgs};

libhsync::entry!(main);

/// Receive and transmit buffer sizes.
const RX_CAP: usize = 4096;
const TX_CAP: usize = 8192;
/// Subscriber slots.
const MAX_SUBSCRIBERS: usize = 8;
/// Longest log line kept; the rest of a longer one is cut.
const MAX_LOG_LINE: usize = 512;

// 16550 registers (offsets from the base port).
const DATA: u16 = 0; // RBR / THR; DLL when DLAB
const IER: u16 = 1; // DLM when DLAB
const FCR: u16 = 2; // IIR on read
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;
const LSR_DATA_READY: u8 = 1 << 0;
const LSR_OVERRUN: u8 = 1 << 1;
const LSR_THR_EMPTY: u8 = 1 << 5;
const IER_RX: u8 = 1 << 0;
const IER_THRE: u8 = 1 << 1;
/// Bytes the transmit FIFO takes once THR is empty.
const TX_FIFO: usize = 16;

/// A byte ring buffer.
struct Ring {
    buf: Vec<u8>,
    head: usize,
    len: usize,
}

impl Ring {
    fn new(cap: usize) -> Ring {
        Ring {
            buf: alloc::vec![0; cap],
            head: 0,
            len: 0,
        }
    }
    fn push(&mut self, b: u8) -> bool {
        if self.len == self.buf.len() {
            return false;
        }
        let at = (self.head + self.len) % self.buf.len();
        self.buf[at] = b;
        self.len += 1;
        true
    }
    fn pop(&mut self) -> Option<u8> {
        if self.len == 0 {
            return None;
        }
        let b = self.buf[self.head];
        self.head = (self.head + 1) % self.buf.len();
        self.len -= 1;
        Some(b)
    }
    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The UART and everything the server keeps.
struct Serial {
    uart: IoPorts,
    ier: u8,
    rx: Ring,
    tx: Ring,
    subscribers: [Option<Notification>; MAX_SUBSCRIBERS],
    /// Partial log lines by client badge.
    partial: BTreeMap<u64, Vec<u8>>,
    rx_bytes: u64,
    tx_bytes: u64,
    dropped: u64,
    /// Bring-up mode: echo input and log each received line.
    echo: Option<Vec<u8>>,
}

impl Serial {
    /// Programs the UART: 115200 8N1, FIFOs on and cleared (14-byte receive trigger), DTR/RTS
    /// and OUT2 (which gates the IRQ line on a PC), receive interrupts on.
    fn new(uart: IoPorts) -> Serial {
        uart.write_u8(IER, 0);
        uart.write_u8(LCR, 0x80); // DLAB: the divisor latch
        uart.write_u8(DATA, 1); // divisor 1 = 115200 baud
        uart.write_u8(IER, 0);
        uart.write_u8(LCR, 0x03); // 8 data bits, no parity, 1 stop bit
        uart.write_u8(FCR, 0xC7);
        uart.write_u8(MCR, 0x0B);
        // Anything the firmware left in the receiver is stale.
        while uart.read_u8(LSR) & LSR_DATA_READY != 0 {
            let _ = uart.read_u8(DATA);
        }
        uart.write_u8(IER, IER_RX);
        Serial {
            uart,
            ier: IER_RX,
            rx: Ring::new(RX_CAP),
            tx: Ring::new(TX_CAP),
            subscribers: Default::default(),
            partial: BTreeMap::new(),
            rx_bytes: 0,
            tx_bytes: 0,
            dropped: 0,
            echo: None,
        }
    }

    fn set_ier(&mut self, ier: u8) {
        if ier != self.ier {
            self.ier = ier;
            self.uart.write_u8(IER, ier);
        }
    }

    /// Moves queued bytes into the transmit FIFO while it has room; asks for the
    /// THR-empty interrupt only while bytes are left.
    fn pump_tx(&mut self) {
        while !self.tx.is_empty() && self.uart.read_u8(LSR) & LSR_THR_EMPTY != 0 {
            for _ in 0..TX_FIFO {
                let Some(b) = self.tx.pop() else { break };
                self.uart.write_u8(DATA, b);
                self.tx_bytes += 1;
            }
        }
        let ier = if self.tx.is_empty() {
            IER_RX
        } else {
            IER_RX | IER_THRE
        };
        self.set_ier(ier);
    }

    /// Queues `data`; when the buffer is full, drains it to the UART first (the line is the
    /// back-pressure), so every byte is accepted.
    fn queue(&mut self, data: &[u8]) {
        for &b in data {
            while !self.tx.push(b) {
                self.pump_tx();
            }
        }
        self.pump_tx();
    }

    /// The interrupt: read everything received, refill the transmitter, tell subscribers.
    fn on_irq(&mut self) {
        let mut got = 0usize;
        let mut echo: Vec<u8> = Vec::new();
        loop {
            let lsr = self.uart.read_u8(LSR);
            if lsr & LSR_OVERRUN != 0 {
                self.dropped += 1;
            }
            if lsr & LSR_DATA_READY == 0 {
                break;
            }
            let b = self.uart.read_u8(DATA);
            self.rx_bytes += 1;
            got += 1;
            if self.echo.is_some() {
                echo.push(b);
            } else if !self.rx.push(b) {
                self.dropped += 1;
            }
        }
        if !echo.is_empty() {
            self.bring_up_echo(&echo);
        }
        self.pump_tx();
        if got > 0 && !self.rx.is_empty() {
            for n in self.subscribers.iter().flatten() {
                let _ = n.signal(RX_READY);
            }
        }
    }

    /// Bring-up mode: echo the bytes and log each completed line.
    fn bring_up_echo(&mut self, bytes: &[u8]) {
        self.queue(bytes);
        let Some(mut line) = self.echo.take() else {
            return;
        };
        for &b in bytes {
            if b == b'\r' || b == b'\n' {
                if !line.is_empty() {
                    log::info!(
                        "serial: received line {:?}",
                        core::str::from_utf8(&line).unwrap_or("<not UTF-8>")
                    );
                    line.clear();
                }
            } else if line.len() < MAX_LOG_LINE {
                line.push(b);
            }
        }
        self.echo = Some(line);
    }
}

impl SerialServer for Serial {
    fn write(&mut self, _badge: u64, data: &[u8]) -> Result<u64, SerialError> {
        self.queue(data);
        Ok(data.len() as u64)
    }

    fn read(&mut self, _badge: u64, max: u64) -> Result<Bytes, SerialError> {
        let max = usize::try_from(max)
            .unwrap_or(usize::MAX)
            .min(Bytes::CAPACITY);
        let mut out = Bytes::new();
        while out.len() < max {
            let Some(b) = self.rx.pop() else { break };
            out.extend(&[b]);
        }
        Ok(out)
    }

    fn subscribe(&mut self, _badge: u64, notification: Notification) -> Result<(), SerialError> {
        // Slots of subscribers that are gone (signal fails) are reused.
        let slot = self
            .subscribers
            .iter_mut()
            .find(|s| s.as_ref().is_none_or(|n| n.signal(0).is_err()))
            .ok_or(SerialError::TooManySubscribers)?;
        if !self.rx.is_empty() {
            let _ = notification.signal(RX_READY);
        }
        *slot = Some(notification);
        Ok(())
    }

    fn log_chunk(
        &mut self,
        badge: u64,
        info: u64,
        a: u64,
        b: u64,
        c: u64,
    ) -> Result<(), SerialError> {
        let (buf, len, end) =
            libhsync::logsink::unpack_chunk(info, a, b, c).ok_or(SerialError::BadChunk)?;
        let line = self.partial.entry(badge).or_default();
        let room = MAX_LOG_LINE.saturating_sub(line.len());
        line.extend_from_slice(&buf[..len.min(room)]);
        if end {
            let mut line = self.partial.remove(&badge).unwrap_or_default();
            line.extend_from_slice(b"\r\n");
            self.queue(&line);
        }
        Ok(())
    }

    fn stats(&mut self, _badge: u64) -> Result<(u64, u64, u64), SerialError> {
        Ok((self.rx_bytes, self.tx_bytes, self.dropped))
    }

    fn crash(&mut self, badge: u64) -> Result<(), SerialError> {
        log::warn!("serial: crash requested by client {badge}; faulting on purpose");
        libhsync::fault::page_fault(0)
    }
}

/// What the server runs with, however it was started.
struct Resources {
    endpoint: Endpoint,
    uart: IoPorts,
    irq: IrqLine,
    root: Option<hsync_root_api::RootClient>,
    bring_up: bool,
}

fn resources(args: &mut StartArgs) -> Result<Resources, &'static str> {
    if let Some(mut start) = Start::take(args) {
        let endpoint = start.export(0).ok_or("no export endpoint")?;
        let uart = start
            .io_ports(0)
            .ok_or("no I/O port range")?
            .map_err(|_| "ioport_enable failed")?;
        let (irq, _) = start.irq(0).ok_or("no IRQ line")?;
        return Ok(Resources {
            endpoint,
            uart,
            irq,
            root: start.root(),
            bring_up: false,
        });
    }
    // Bring-up image: we are the first process and claim COM1 ourselves.
    let auth = HwAuthority::root().ok_or("not started by root and no hardware authority")?;
    let range = auth
        .ioport_create(0x3F8, 8)
        .map_err(|_| "ioport_create failed")?;
    Ok(Resources {
        endpoint: Endpoint::create().map_err(|_| "endpoint_create failed")?,
        uart: IoPorts::enable(range, 0x3F8, 8).map_err(|_| "ioport_enable failed")?,
        irq: auth.irq_create(4).map_err(|_| "irq_create failed")?,
        root: None,
        bring_up: true,
    })
}

fn main(mut args: StartArgs) -> i32 {
    let res = match resources(&mut args) {
        Ok(r) => r,
        Err(e) => {
            log::error!("serial: cannot start: {e}");
            return 1;
        }
    };
    let mut serial = Serial::new(res.uart);
    if res.bring_up {
        serial.echo = Some(Vec::new());
    }
    if let Some(root) = &res.root
        && let Err(e) = root.ready(&mut args.ipc)
    {
        log::warn!("serial: ready handshake failed: {e}");
    }
    log::info!(
        "serial: COM1 ready (IRQ 4, {} byte receive buffer){}",
        RX_CAP,
        if res.bring_up { ", bring-up echo" } else { "" }
    );
    let err = libhsync::serve(&res.endpoint)
        .on_irq(res.irq, Serial::on_irq)
        .run(&mut args.ipc, &mut serial, Serial::dispatch);
    log::error!("serial: stopped serving: {err:?}");
    2
}
