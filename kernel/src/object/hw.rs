//! Hardware capability objects: [`HwAuthority`] (root's right to make the others),
//! [`IoPortRange`] and [`IrqLine`]. Their system calls live in `crate::hw`; device Frames are
//! ordinary [`Frame`](super::Frame)s over device [`Memory`](crate::mm::memory::Memory).

use hsync_abi::ObjectKind;

use super::Live;

/// The authority to create hardware capabilities. The kernel makes exactly one, for root.
#[derive(Debug)]
pub struct HwAuthority {
    _live: Live,
}

impl HwAuthority {
    /// The authority (made once, by `root::start`).
    pub fn new() -> HwAuthority {
        HwAuthority {
            _live: Live::new(ObjectKind::HwAuthority),
        }
    }
}

/// Ports `first..first + count`.
#[derive(Debug)]
pub struct IoPortRange {
    /// First port.
    pub first: u16,
    /// Number of ports (1..=65536, not past port 0xffff).
    pub count: u32,
    _live: Live,
}

impl IoPortRange {
    /// A range; the caller has checked `first + count <= 0x10000` and `count > 0`.
    pub fn new(first: u16, count: u32) -> IoPortRange {
        IoPortRange {
            first,
            count,
            _live: Live::new(ObjectKind::IoPortRange),
        }
    }
}

/// One interrupt line (a GSI). Binding it to a notification is recorded in `crate::hw`; when
/// the last reference goes, a binding made through it is dissolved and the line masked.
#[derive(Debug)]
pub struct IrqLine {
    /// The global system interrupt.
    pub gsi: u32,
    _live: Live,
}

impl IrqLine {
    /// A line for `gsi` (already routed, masked, by `crate::hw`).
    pub fn new(gsi: u32) -> IrqLine {
        IrqLine {
            gsi,
            _live: Live::new(ObjectKind::IrqLine),
        }
    }
}

impl Drop for IrqLine {
    fn drop(&mut self) {
        crate::hw::line_dropped(self);
    }
}
