//! Memory-mapping flags, time deadlines and the small numeric limits of the ABI.

use crate::Error;

/// Page size: the unit of `frame_create` sizes and of every mapping address, offset and length.
pub const PAGE_SIZE: u64 = 4096;

/// A deadline that has always passed: turns a waiting call into a poll.
pub const DEADLINE_NOW: u64 = 0;

/// A deadline that never passes: wait without a time limit.
pub const DEADLINE_NEVER: u64 = u64::MAX;

/// Largest byte count of one `debug_log` call.
pub const DEBUG_LOG_MAX: u64 = 1024;

/// Largest byte count of a process name (`process_create`).
pub const PROCESS_NAME_MAX: u64 = 32;

/// Number of scheduling priorities; 0 is the lowest, `PRIORITY_LEVELS - 1` the highest.
pub const PRIORITY_LEVELS: u64 = 32;

bitflags::bitflags! {
    /// Permissions of a mapping made by `frame_map`.
    ///
    /// Valid combinations are R, RW and RX: x86 cannot map a page unreadable, and the kernel
    /// enforces W^X for user space as well as for itself.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct MapFlags: u32 {
        /// Readable (required).
        const READ = 1 << 0;
        /// Writable (needs the Frame's `WRITE` right; excludes `EXECUTE`).
        const WRITE = 1 << 1;
        /// Executable (needs the Frame's `EXECUTE` right; excludes `WRITE`).
        const EXECUTE = 1 << 2;
    }
}

impl MapFlags {
    /// Decode a flags argument. Unknown bits, a missing `READ`, or `WRITE | EXECUTE` together
    /// are [`Error::InvalidArgument`].
    pub fn from_raw(raw: u64) -> Result<MapFlags, Error> {
        let flags = u32::try_from(raw)
            .ok()
            .and_then(MapFlags::from_bits)
            .ok_or(Error::InvalidArgument)?;
        if !flags.contains(MapFlags::READ) || flags.contains(MapFlags::WRITE | MapFlags::EXECUTE) {
            return Err(Error::InvalidArgument);
        }
        Ok(flags)
    }

    /// The register value.
    pub const fn raw(self) -> u64 {
        self.bits() as u64
    }

    /// The Frame rights a mapping with these flags needs: `MAP` plus one right per permission.
    pub fn required_rights(self) -> crate::Rights {
        use crate::Rights;
        let mut r = Rights::MAP;
        if self.contains(MapFlags::READ) {
            r |= Rights::READ;
        }
        if self.contains(MapFlags::WRITE) {
            r |= Rights::WRITE;
        }
        if self.contains(MapFlags::EXECUTE) {
            r |= Rights::EXECUTE;
        }
        r
    }
}
