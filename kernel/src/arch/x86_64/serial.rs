//! COM1, the kernel's debug console: the sink of the `log` backend and of panic reports.
//!
//! The UART itself is driven by the `uart_16550` crate. This module adds what a kernel console
//! needs on top: one lock so records do not interleave, interrupts off while it is held (a handler
//! on the same CPU must never spin on a lock its own CPU holds), and a panic path that takes the
//! port over even when the lock is stuck (held by the code that faulted, or by another CPU that
//! will never let go). After a panic started, output is best effort by design.
//!
//! It refuses to buffer: every byte is on the wire before `write_str` returns, so the last line
//! before a crash is never lost.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use spin::{Mutex, MutexGuard};
use uart_16550::backend::PioBackend;
use uart_16550::{BaudRate, Config, Uart16550};

/// Legacy I/O base of COM1.
const COM1_BASE: u16 = 0x3F8;

/// How long the panic path waits for the current holder before breaking the lock (spin turns;
/// long enough for another CPU to finish a line at 115200 baud, short enough to never hang).
const PANIC_LOCK_SPINS: usize = 1 << 20;

struct Port {
    uart: Uart16550<PioBackend>,
    /// False until `init` found a UART; writes are dropped rather than spinning on absent hardware.
    present: bool,
}

const fn com1() -> Uart16550<PioBackend> {
    // SAFETY: 0x3F8..=0x3FF is the architectural COM1 register block and only this module
    // (through `PORT`) touches it.
    match unsafe { Uart16550::new_port(COM1_BASE) } {
        Ok(uart) => uart,
        Err(_) => panic!("COM1 base address is valid"),
    }
}

static PORT: Mutex<Port> = Mutex::new(Port {
    uart: com1(),
    present: false,
});

/// Set once the panic path owns the console; ordinary writers then stop taking the lock politely.
static PANICKING: AtomicBool = AtomicBool::new(false);

/// Programs COM1 (115200 8N1, FIFO on, no interrupts). Without a UART, output is discarded.
pub fn init() {
    let mut port = PORT.lock();
    let config = Config {
        baud_rate: BaudRate::Baud115200,
        ..Config::DEFAULT
    };
    port.present = port.uart.init(config).is_ok();
}

/// A locked console; dropping it releases the port and restores the interrupt flag.
pub struct Console {
    guard: Option<MutexGuard<'static, Port>>,
    interrupts_were_on: bool,
}

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(port) = self.guard.as_mut()
            && port.present
        {
            port.uart.send_bytes_exact(s.as_bytes());
        }
        Ok(())
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        drop(self.guard.take());
        if self.interrupts_were_on {
            x86_64::instructions::interrupts::enable();
        }
    }
}

/// Takes the console for one record (several `write!`s that must stay together).
pub fn lock() -> Console {
    let interrupts_were_on = x86_64::instructions::interrupts::are_enabled();
    x86_64::instructions::interrupts::disable();
    let guard = if PANICKING.load(Ordering::Acquire) {
        seize()
    } else {
        PORT.lock()
    };
    Console {
        guard: Some(guard),
        interrupts_were_on,
    }
}

/// Takes the console for a panic report: waits briefly for the holder, then breaks the lock.
/// Interrupts stay off (the panic path never turns them back on).
pub fn lock_for_panic() -> Console {
    x86_64::instructions::interrupts::disable();
    PANICKING.store(true, Ordering::Release);
    Console {
        guard: Some(seize()),
        interrupts_were_on: false,
    }
}

fn seize() -> MutexGuard<'static, Port> {
    for _ in 0..PANIC_LOCK_SPINS {
        if let Some(guard) = PORT.try_lock() {
            return guard;
        }
        core::hint::spin_loop();
    }
    // SAFETY: we only get here while a panic is in progress and the holder did not release the
    // port within the grace period: it is the interrupted code on this CPU or a CPU that is
    // stuck. Breaking the lock can interleave bytes of two writers; it cannot corrupt memory,
    // because `Port` holds no invariant beyond the UART's register state.
    unsafe { PORT.force_unlock() };
    PORT.lock()
}
