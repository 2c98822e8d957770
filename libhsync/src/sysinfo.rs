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
    let o = sys::pure(Sysnum::SystemInfo, [0; 6])?;
    Ok(SystemInfo {
        free_frames: o[0],
        used_frames: o[1],
        total_frames: o[2],
        processes: o[3],
        threads: o[4],
        objects: o[5],
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
