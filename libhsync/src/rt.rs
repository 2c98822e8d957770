//! The runtime every HSYNC-OS program links: `_start`, the heap, panics, the `log` backend and
//! line printing.
//!
//! Start-up: the kernel enters `_start(arg0, arg1, ipc_buffer)` on the main stack. By the
//! libhsync convention `arg0` is a handle to the process itself (needed for the heap and for
//! mappings); `arg1` is the initfs Frame for root, or [`CHILD_ARGS_ADDR`] for a child made by
//! [`crate::process::Spawn`]. `_start` records them, installs the `log` backend and calls the
//! program's `main` (declared with [`crate::entry!`]); `main`'s return value is the exit code.
//! A panic prints `panic: <message>` to the debug log and exits with [`PANIC_EXIT_CODE`].

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

use hsync_abi::{DEBUG_LOG_MAX, PAGE_SIZE};

use crate::handle::Process;
use crate::memory::CHILD_ARGS_ADDR;

/// Exit code of a process whose Rust code panicked.
pub const PANIC_EXIT_CODE: u64 = 101;

static OWN_PROCESS: AtomicU64 = AtomicU64::new(0);

/// This process's own Process handle (from `arg0`), if the creator provided one.
pub fn own_process() -> Option<hsync_abi::Handle> {
    let raw = hsync_abi::Handle::from_raw(OWN_PROCESS.load(Ordering::Relaxed));
    (!raw.is_null()).then_some(raw)
}

/// Whether `p` is this process's own handle value (a cheap identity check used to refuse
/// self-directed unmaps and thread creation through the process-to-process APIs).
pub fn is_self(p: &Process) -> bool {
    own_process() == Some(p.raw())
}

/// Records the own-process handle; called by `_start` (and by host tests).
pub fn set_own_process(h: hsync_abi::Handle) {
    OWN_PROCESS.store(h.raw(), Ordering::Relaxed);
}

/// A fixed buffer that formats a line, truncating at [`DEBUG_LOG_MAX`] bytes.
pub struct LineBuf {
    buf: [u8; DEBUG_LOG_MAX as usize],
    len: usize,
}

impl LineBuf {
    /// An empty line.
    pub const fn new() -> LineBuf {
        LineBuf {
            buf: [0; DEBUG_LOG_MAX as usize],
            len: 0,
        }
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Default for LineBuf {
    fn default() -> Self {
        LineBuf::new()
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Formats `args` and writes it as one debug-log line (what [`crate::println!`] calls).
pub fn print_line(args: fmt::Arguments<'_>) {
    let mut line = LineBuf::new();
    let _ = line.write_fmt(args);
    let _ = crate::sysinfo::debug_log(line.as_bytes());
}

/// The `log` backend: one line per record, `LEVEL target: message`, to the serial server when
/// [`crate::logsink`] has its endpoint, else to the debug log.
struct DebugLogger;

impl log::Log for DebugLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let mut line = LineBuf::new();
        let _ = write!(
            line,
            "{:<5} {}: {}",
            record.level(),
            record.target(),
            record.args()
        );
        // The serial server when this process opted in (`logsink::set_endpoint`), else the
        // kernel's debug log.
        if !crate::logsink::write_line(line.as_bytes()) {
            let _ = crate::sysinfo::debug_log(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

static LOGGER: DebugLogger = DebugLogger;

/// Installs the `log` backend at `level` (done by `_start` with `Info`).
pub fn init_log(level: log::LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// The heap: talc over [`HEAP_BASE`](crate::memory::HEAP_BASE)..[`HEAP_END`](crate::memory::HEAP_END),
/// grown by mapping fresh Frames at its top.
#[cfg(all(target_os = "none", not(test)))]
mod heap {
    use super::*;
    use crate::memory::{HEAP_BASE, HEAP_END};
    use crate::sys;
    use hsync_abi::{MapFlags, Sysnum};

    /// The heap: talc over [`HEAP_BASE`]..[`HEAP_END`], grown by mapping fresh Frames at its top.
    struct GrowOnDemand {
        heap: talc::Span,
        mapped: u64,
    }

    const HEAP_MIN_GROWTH: u64 = 64 * 1024;

    impl talc::OomHandler for GrowOnDemand {
        fn handle_oom(talc: &mut talc::Talc<Self>, layout: core::alloc::Layout) -> Result<(), ()> {
            let me = own_process().ok_or(())?;
            let need = (layout.size() as u64)
                .saturating_add(layout.align() as u64)
                .saturating_add(64);
            let grow = need.max(HEAP_MIN_GROWTH).next_multiple_of(PAGE_SIZE);
            let mapped = talc.oom_handler.mapped;
            let top = HEAP_BASE + mapped;
            if top.checked_add(grow).is_none_or(|end| end > HEAP_END) {
                return Err(());
            }
            let frame = sys::pure(Sysnum::FrameCreate, [grow, 0, 0, 0, 0, 0]).map_err(|_| ())?;
            let mapped_ok = sys::pure(
                Sysnum::FrameMap,
                [
                    frame[0],
                    me.raw(),
                    top,
                    (MapFlags::READ | MapFlags::WRITE).raw(),
                    0,
                    grow,
                ],
            );
            // The mapping keeps the memory; the handle is not needed any more.
            let _ = crate::handle::close_raw(hsync_abi::Handle::from_raw(frame[0]));
            mapped_ok.map_err(|_| ())?;
            talc.oom_handler.mapped = mapped + grow;
            let span = talc::Span::from_base_size(HEAP_BASE as *mut u8, (mapped + grow) as usize);
            let old = talc.oom_handler.heap;
            let new = if old.is_empty() {
                // SAFETY: `span` was just mapped RW at the heap base, which nothing else uses.
                unsafe { talc.claim(span)? }
            } else {
                // SAFETY: `old` is the span talc returned last; `span` contains it, and the pages
                // above it were just mapped RW for the heap alone.
                unsafe { talc.extend(old, span) }
            };
            talc.oom_handler.heap = new;
            Ok(())
        }
    }

    #[global_allocator]
    static ALLOCATOR: talc::Talck<spin::Mutex<()>, GrowOnDemand> = talc::Talc::new(GrowOnDemand {
        heap: talc::Span::empty(),
        mapped: 0,
    })
    .lock();
}

#[cfg(all(target_os = "none", not(test)))]
mod entry_glue {
    use super::*;

    unsafe extern "Rust" {
        /// The program's `main`, defined by [`crate::entry!`].
        fn __hsync_main(args: crate::StartArgs) -> i32;
    }

    /// The ELF entry point (see the module docs for the register contract).
    #[unsafe(no_mangle)]
    extern "C" fn _start(arg0: u64, arg1: u64, ipc_buffer: u64) -> ! {
        set_own_process(hsync_abi::Handle::from_raw(arg0));
        init_log(log::LevelFilter::Info);
        // SAFETY: the kernel registered `ipc_buffer` for this (main) thread and nothing else
        // wraps it.
        let ipc = unsafe { crate::ipc::IpcBuf::new(ipc_buffer) };
        let args = crate::StartArgs::new(arg0, arg1, ipc);
        // SAFETY: `entry!` defines `__hsync_main` with exactly this signature.
        let code = unsafe { __hsync_main(args) };
        crate::process::exit(code as u64)
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        print_line(format_args!("panic: {info}"));
        crate::process::exit(PANIC_EXIT_CODE)
    }
}

/// Reads word `i` of the child start page, if this process has one.
pub(crate) fn child_word(arg1: u64, i: usize) -> Option<u64> {
    if arg1 != CHILD_ARGS_ADDR || i >= (PAGE_SIZE as usize) / 8 {
        return None;
    }
    // SAFETY: by the libhsync convention `arg1 == CHILD_ARGS_ADDR` means the parent mapped the
    // start page there read-only before starting us; `i` is inside the page. Volatile: the page
    // is shared with the parent's frame, never referenced as a Rust object.
    Some(unsafe { (CHILD_ARGS_ADDR as *const u64).add(i).read_volatile() })
}
