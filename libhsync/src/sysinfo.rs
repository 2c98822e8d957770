//! Calls that name no object: the debug log, time, yielding, `null`, `system_info`.

use hsync_abi::{Error, Sysnum};

use crate::sys;

/// Writes `bytes` (at most `DEBUG_LOG_MAX`) as one line of the kernel debug log.
pub fn debug_log(bytes: &[u8]) -> Result<(), Error> {
    // The kernel only reads the range.
    sys::pure(
        Sysnum::DebugLog,
        [bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0, 0],
    )
    .map(|_| ())
}

/// The monotonic clock in nanoseconds since boot.
pub fn clock() -> u64 {
    sys::pure(Sysnum::ClockRead, [0; 6]).map_or(0, |o| o[0])
}

/// Gives the rest of the time slice to another ready thread of the same priority.
pub fn yield_now() {
    let _ = sys::pure(Sysnum::Yield, [0; 6]);
}

/// Blocks until the monotonic clock reaches `deadline` (ns).
pub fn sleep_until(deadline: u64) -> Result<(), Error> {
    sys::pure(Sysnum::SleepUntil, [deadline, 0, 0, 0, 0, 0]).map(|_| ())
}

/// The `null` system call: enters and leaves the kernel, nothing else.
pub fn null() -> Result<(), Error> {
    sys::pure(Sysnum::Null, [0; 6]).map(|_| ())
}

/// What `system_info` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemInfo {
    /// Free 4 KiB frames.
    pub free_frames: u64,
    /// Used 4 KiB frames.
    pub used_frames: u64,
    /// Frames the PMM manages.
    pub total_frames: u64,
    /// Live processes.
    pub processes: u64,
    /// Live threads.
    pub threads: u64,
    /// Live kernel objects of every kind.
    pub objects: u64,
}

/// The PMM counters and live kernel-object counts.
pub fn system_info() -> Result<SystemInfo, Error> {
    let o = sys::pure(
        Sysnum::SystemInfo,
        [hsync_abi::SYSINFO_MEMORY, 0, 0, 0, 0, 0],
    )?;
    Ok(SystemInfo {
        free_frames: o[0],
        used_frames: o[1],
        total_frames: o[2],
        processes: o[3],
        threads: o[4],
        objects: o[5],
    })
}

/// Kernel event counters since boot (`system_info` page `SYSINFO_COUNTERS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelCounters {
    /// #NM traps: a thread's first FPU/SSE instruction, or one after another thread used the
    /// FPU (the lazy FPU). Code that never touches FPU/SSE never adds to it.
    pub fpu_traps: u64,
    /// IPC fast-path handoffs: `ipc_call` / `ipc_reply_recv` that went straight to the peer.
    pub fast_handoffs: u64,
    /// Threads the fast path had parked at their syscall that the general scheduler resumed
    /// (woken by a message that needed the slow path, a kill, or a dead peer).
    pub parked_resumes: u64,
    /// The deepest any kernel stack has been used, in bytes, measured when a thread dies (debug
    /// kernels paint every kernel stack; 0 in release kernels).
    pub kstack_high_water: u64,
    /// The size of a thread's kernel stack, in bytes.
    pub kstack_size: u64,
    /// Dead processes and threads whose parts the kernel's reaper has destroyed (teardown runs
    /// one object per step, never recursively).
    pub reaped: u64,
}

/// The kernel's event counters.
///
/// ```no_run
/// let before = libhsync::sysinfo::kernel_counters()?;
/// // ... IPC ...
/// let after = libhsync::sysinfo::kernel_counters()?;
/// assert_eq!(after.fpu_traps, before.fpu_traps);
/// # Ok::<(), libhsync::Error>(())
/// ```
pub fn kernel_counters() -> Result<KernelCounters, Error> {
    let o = sys::pure(
        Sysnum::SystemInfo,
        [hsync_abi::SYSINFO_COUNTERS, 0, 0, 0, 0, 0],
    )?;
    Ok(KernelCounters {
        fpu_traps: o[0],
        fast_handoffs: o[1],
        parked_resumes: o[2],
        kstack_high_water: o[3],
        kstack_size: o[4],
        reaped: o[5],
    })
}

/// The kernel heap's size and the frames held back for it (`system_info` page
/// `SYSINFO_HEAP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapInfo {
    /// Bytes of the kernel heap backed by frames (it grows on demand and gives a free top back).
    pub mapped_bytes: u64,
    /// Bytes allocated from it.
    pub allocated_bytes: u64,
    /// Free frames that only the kernel heap may take: user frames fail with `OutOfMemory`
    /// before the free count reaches this.
    pub reserve_frames: u64,
    /// Frames the kernel's own page tables took since boot (they are kept for reuse, so a
    /// leak check counts them with the free frames).
    pub kernel_table_frames: u64,
}

/// The kernel heap's counters.
pub fn heap_info() -> Result<HeapInfo, Error> {
    let o = sys::pure(Sysnum::SystemInfo, [hsync_abi::SYSINFO_HEAP, 0, 0, 0, 0, 0])?;
    Ok(HeapInfo {
        mapped_bytes: o[0],
        allocated_bytes: o[1],
        reserve_frames: o[2],
        kernel_table_frames: o[3],
    })
}

/// How many CPUs run the system, and which one the caller runs on (`SYSINFO_CPUS`).
pub fn cpus() -> Result<(u64, u64), Error> {
    let o = sys::pure(Sysnum::SystemInfo, [hsync_abi::SYSINFO_CPUS, 0, 0, 0, 0, 0])?;
    Ok((o[0], o[1]))
}

/// One CPU as the kernel sees it (`system_info` page `SYSINFO_CPU + i`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuInfo {
    /// Its local APIC id.
    pub apic_id: u64,
    /// Running a thread (true) or idle.
    pub running: bool,
    /// Context switches to a thread on it since boot.
    pub switches: u64,
    /// Nanoseconds it spent outside its idle `hlt` since boot.
    pub busy_ns: u64,
    /// Its TSC minus CPU 0's, in cycles, measured at boot.
    pub tsc_offset: i64,
    /// Nanoseconds since boot when this was read.
    pub uptime_ns: u64,
}

/// CPU `index`'s state. Errors: `InvalidArgument` for a CPU that is not online.
pub fn cpu_info(index: u64) -> Result<CpuInfo, Error> {
    let o = sys::pure(
        Sysnum::SystemInfo,
        [hsync_abi::SYSINFO_CPU + index, 0, 0, 0, 0, 0],
    )?;
    Ok(CpuInfo {
        apic_id: o[0],
        running: o[1] != 0,
        switches: o[2],
        busy_ns: o[3],
        tsc_offset: o[4] as i64,
        uptime_ns: o[5],
    })
}

/// The time-stamp counter (user-mode `rdtsc` is allowed on HSYNC-OS).
#[inline(always)]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `rdtsc` only reads the TSC into edx:eax; CR4.TSD is clear.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    0
}
