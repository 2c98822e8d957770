//! COM1 output for the shim's few log lines (polled, 115200 8N1).
//!
//! Hand-written rather than `uart_16550`: six port writes and a polled transmit are all the
//! shim needs, and it keeps the shim free of dependencies beyond `hsync-bootcore`.

use core::arch::asm;
use core::fmt;

const COM1: u16 = 0x3f8;

/// Writes `value` to I/O `port`.
pub fn outb(port: u16, value: u8) {
    // SAFETY: the shim owns the machine; it only writes the COM1, PIC and debug-exit ports,
    // none of which can affect memory safety.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: reading the COM1 line-status register has no side effects.
    unsafe {
        asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    value
}

/// Programs COM1 for 115200 8N1, FIFOs on, interrupts off.
pub fn init() {
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x80);
    outb(COM1, 0x01);
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);
    outb(COM1 + 2, 0xc7);
    outb(COM1 + 4, 0x03);
}

/// The serial port as a `fmt::Write` sink.
pub struct Serial;

impl fmt::Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                write_byte(b'\r');
            }
            write_byte(b);
        }
        Ok(())
    }
}

fn write_byte(b: u8) {
    // Bounded wait: a missing UART must not hang the boot.
    for _ in 0..100_000 {
        if inb(COM1 + 5) & 0x20 != 0 {
            break;
        }
    }
    outb(COM1, b);
}

/// `println!` to COM1.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::serial::Serial, format_args!($($arg)*));
        let _ = core::fmt::Write::write_str(&mut $crate::serial::Serial, "\n");
    }};
}
