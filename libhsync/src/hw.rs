//! Hardware access for drivers: I/O ports ([`IoPorts`]), interrupt lines ([`Irq`]) and device
//! memory ([`Mmio`]), built from the capabilities root grants.
//!
//! This module is the only place in user space that executes `in`/`out`, and the only one that
//! touches device memory. Servers stay `#![forbid(unsafe_code)]`: the capability decides what a
//! process may reach and the kernel enforces it (a port outside the enabled ranges is a #GP
//! that kills the process; a device Frame exists only over memory that is not RAM). What the
//! types cannot promise is what a *device* does when told to: a driver that programs a DMA
//! engine through its ports can still write anywhere in physical memory. Granting a device to a
//! server is a trust decision, made once, in the manifest.
//!
//! ```no_run
//! use libhsync::hw::{HwAuthority, IoPorts};
//! let auth = HwAuthority::root().expect("only root holds the authority");
//! let com1 = IoPorts::enable(auth.ioport_create(0x3f8, 8).unwrap(), 0x3f8, 8).unwrap();
//! let line_status = com1.read_u8(5);
//! ```

use hsync_abi::{DeviceCache, Error, ObjectKind, ROOT_HW_AUTHORITY, Rights, Sysnum};

use crate::handle::Handle;
use crate::memory::Mapping;
use crate::{Frame, Notification, sys};

/// Kind markers of the hardware handles.
pub mod kinds {
    use hsync_abi::ObjectKind;

    use crate::handle::kind::Kind;

    /// Marker of [`IoPortRange`](super::IoPortRange).
    #[derive(Debug)]
    pub enum IoPortRange {}
    impl Kind for IoPortRange {
        const KIND: Option<ObjectKind> = Some(ObjectKind::IoPortRange);
    }

    /// Marker of [`IrqLine`](super::IrqLine).
    #[derive(Debug)]
    pub enum IrqLine {}
    impl Kind for IrqLine {
        const KIND: Option<ObjectKind> = Some(ObjectKind::IrqLine);
    }

    /// Marker of [`HwAuthority`](super::HwAuthority).
    #[derive(Debug)]
    pub enum HwAuthority {}
    impl Kind for HwAuthority {
        const KIND: Option<ObjectKind> = Some(ObjectKind::HwAuthority);
    }
}

/// The right to make hardware capabilities (root's; see `docs/capabilities.md`).
pub type HwAuthority = Handle<kinds::HwAuthority>;
/// A range of I/O ports; [`IoPorts::enable`] turns it into port access for this process.
pub type IoPortRange = Handle<kinds::IoPortRange>;
/// An interrupt line; bind it to a notification ([`IrqLine::bind`]) or use [`Irq`].
pub type IrqLine = Handle<kinds::IrqLine>;

fn handle<K: crate::handle::kind::Kind>(raw: u64) -> Handle<K> {
    Handle::from_raw(hsync_abi::Handle::from_raw(raw))
}

impl HwAuthority {
    /// A copy of root's hardware authority (the handle the kernel put at
    /// [`ROOT_HW_AUTHORITY`]), or `None` in any process that does not hold it there. The
    /// original stays in place, so dropping the copy gives nothing up.
    pub fn root() -> Option<HwAuthority> {
        let info = crate::handle::inspect_raw(ROOT_HW_AUTHORITY).ok()?;
        if info.kind != ObjectKind::HwAuthority {
            return None;
        }
        let out = sys::pure(
            Sysnum::HandleDuplicate,
            [ROOT_HW_AUTHORITY.raw(), info.rights.raw(), 0, 0, 0, 0],
        )
        .ok()?;
        Some(handle(out[0]))
    }

    /// `ioport_create`: a capability for ports `first..first + count`.
    pub fn ioport_create(&self, first: u16, count: u32) -> Result<IoPortRange, Error> {
        let out = sys::pure(
            Sysnum::IoportCreate,
            [self.raw().raw(), first.into(), count.into(), 0, 0, 0],
        )?;
        Ok(handle(out[0]))
    }

    /// `irq_create`: a capability for an ISA IRQ (`irq < 16`, MADT overrides applied, e.g.
    /// IRQ0 is GSI 2) or a GSI (`irq >= 16`).
    pub fn irq_create(&self, irq: u32) -> Result<IrqLine, Error> {
        let out = sys::pure(
            Sysnum::IrqCreate,
            [self.raw().raw(), irq.into(), 0, 0, 0, 0],
        )?;
        Ok(handle(out[0]))
    }

    /// `system_power(authority, POWER_OFF)`: ACPI power-off. Returns only on failure.
    pub fn power_off(&self) -> Error {
        self.system_power(hsync_abi::POWER_OFF)
            .err()
            .unwrap_or(Error::InvalidState)
    }

    /// `system_power(authority, POWER_REBOOT)`: reset the machine. Returns only on failure.
    pub fn reboot(&self) -> Error {
        self.system_power(hsync_abi::POWER_REBOOT)
            .err()
            .unwrap_or(Error::InvalidState)
    }

    /// `system_power(authority, op)` with a raw op (tests of the argument check). Returns only
    /// on failure.
    pub fn system_power(&self, op: u64) -> Result<(), Error> {
        sys::pure(Sysnum::SystemPower, [self.raw().raw(), op, 0, 0, 0, 0]).map(|_| ())
    }

    /// `framebuffer_info`: the boot framebuffer's geometry and pixel format;
    /// `Err(NotFound)` when the loader gave none (e.g. the direct Multiboot boot in text mode).
    pub fn framebuffer_info(&self) -> Result<hsync_abi::FramebufferInfo, Error> {
        use hsync_abi::FramebufferInfo;
        let mut words = [0u64; FramebufferInfo::WORDS];
        // SAFETY: the kernel writes exactly `SIZE` bytes to `words`, a local array no
        // reference covers during the call.
        unsafe {
            sys::call(
                Sysnum::FramebufferInfo,
                [
                    self.raw().raw(),
                    words.as_mut_ptr() as u64,
                    FramebufferInfo::SIZE as u64,
                    0,
                    0,
                    0,
                ],
            )
        }?;
        Ok(FramebufferInfo::from_words(&words))
    }

    /// `frame_create_physical`: a Frame over device memory `[phys, phys + len)` (page
    /// multiples; never RAM), mapped with `cache` wherever it is mapped.
    pub fn frame_create_physical(
        &self,
        phys: u64,
        len: u64,
        cache: DeviceCache,
    ) -> Result<Frame, Error> {
        let out = sys::pure(
            Sysnum::FrameCreatePhysical,
            [self.raw().raw(), phys, len, cache.raw(), 0, 0],
        )?;
        Ok(handle(out[0]))
    }
}

/// Port I/O on a contiguous range of ports, by offset from its first port.
///
/// Offsets outside the range panic (a driver bug, like an out-of-bounds slice index); the
/// kernel's bitmap is the real check.
#[derive(Debug)]
pub struct IoPorts {
    base: u16,
    count: u32,
    _range: Option<IoPortRange>,
}

impl IoPorts {
    /// Enables the ports of `range` for this process (`ioport_enable`) and returns access to
    /// `base..base + count`, which should be the range's ports: the kernel does not report
    /// them, and a port the range does not cover faults on first use.
    pub fn enable(range: IoPortRange, base: u16, count: u32) -> Result<IoPorts, Error> {
        sys::pure(Sysnum::IoportEnable, [range.raw().raw(), 0, 0, 0, 0, 0])?;
        Ok(IoPorts {
            base,
            count,
            _range: Some(range),
        })
    }

    /// Access to `base..base + count` without any capability: every access to a port this
    /// process has not enabled raises #GP and the kernel ends the process with a
    /// `GeneralProtection` fault. For tests of that enforcement, and for nothing else.
    pub fn without_grant(base: u16, count: u32) -> IoPorts {
        IoPorts {
            base,
            count,
            _range: None,
        }
    }

    /// The first port.
    pub fn base(&self) -> u16 {
        self.base
    }

    fn port(&self, offset: u16, width: u32) -> u16 {
        let end = u32::from(offset) + width;
        assert!(
            end <= self.count,
            "port offset {offset:#x} (+{width}) outside {:#x}+{:#x}",
            self.base,
            self.count
        );
        self.base.wrapping_add(offset)
    }

    /// `in al, dx` at `base + offset`.
    pub fn read_u8(&self, offset: u16) -> u8 {
        let port = self.port(offset, 1);
        let v: u8;
        // SAFETY: port input touches no memory of this process; the kernel's TSS bitmap decides
        // whether it is allowed (else #GP ends the process).
        unsafe {
            core::arch::asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags))
        };
        v
    }

    /// `in ax, dx` at `base + offset`.
    pub fn read_u16(&self, offset: u16) -> u16 {
        let port = self.port(offset, 2);
        let v: u16;
        // SAFETY: as in `read_u8`.
        unsafe {
            core::arch::asm!("in ax, dx", in("dx") port, out("ax") v, options(nomem, nostack, preserves_flags))
        };
        v
    }

    /// `in eax, dx` at `base + offset`.
    pub fn read_u32(&self, offset: u16) -> u32 {
        let port = self.port(offset, 4);
        let v: u32;
        // SAFETY: as in `read_u8`.
        unsafe {
            core::arch::asm!("in eax, dx", in("dx") port, out("eax") v, options(nomem, nostack, preserves_flags))
        };
        v
    }

    /// `out dx, al` at `base + offset`.
    pub fn write_u8(&self, offset: u16, value: u8) {
        let port = self.port(offset, 1);
        // SAFETY: as in `read_u8` (see the module documentation about devices that DMA).
        unsafe {
            core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
        };
    }

    /// `out dx, ax` at `base + offset`.
    pub fn write_u16(&self, offset: u16, value: u16) {
        let port = self.port(offset, 2);
        // SAFETY: as in `write_u8`.
        unsafe {
            core::arch::asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags))
        };
    }

    /// `out dx, eax` at `base + offset`.
    pub fn write_u32(&self, offset: u16, value: u32) {
        let port = self.port(offset, 4);
        // SAFETY: as in `write_u8`.
        unsafe {
            core::arch::asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
        };
    }
}

impl IrqLine {
    /// `irq_bind`: every interrupt on this line ORs `bits` into `notification`. The line is
    /// unmasked now and masked again by each interrupt until [`ack`](Self::ack).
    /// `Error::Exists` if the line is already bound to a live notification.
    pub fn bind(&self, notification: &Notification, bits: u64) -> Result<(), Error> {
        sys::pure(
            Sysnum::IrqBind,
            [self.raw().raw(), notification.raw().raw(), bits, 0, 0, 0],
        )
        .map(|_| ())
    }

    /// `irq_ack`: the interrupt was handled; let the line deliver again.
    pub fn ack(&self) -> Result<(), Error> {
        sys::pure(Sysnum::IrqAck, [self.raw().raw(), 0, 0, 0, 0, 0]).map(|_| ())
    }
}

/// An interrupt line bound to a notification of its own: wait, handle, ack.
///
/// ```no_run
/// # fn serve(line: libhsync::hw::IrqLine) -> Result<(), libhsync::Error> {
/// let irq = libhsync::hw::Irq::new(line)?;
/// loop {
///     irq.wait()?;
///     // ... read the device until its interrupt condition is clear ...
///     irq.ack()?;
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Irq {
    line: IrqLine,
    notification: Notification,
}

impl Irq {
    /// Binds `line` to a new notification (bit 0).
    pub fn new(line: IrqLine) -> Result<Irq, Error> {
        let notification = Notification::create()?;
        line.bind(&notification, 1)?;
        Ok(Irq { line, notification })
    }

    /// Blocks until the line has fired (at least once since the last wait).
    pub fn wait(&self) -> Result<(), Error> {
        self.notification.wait().map(|_| ())
    }

    /// Whether the line fired since the last wait or poll (never blocks).
    pub fn poll(&self) -> Result<bool, Error> {
        match self.notification.poll() {
            Ok(_) => Ok(true),
            Err(Error::WouldBlock) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Unmasks the line (`irq_ack`).
    pub fn ack(&self) -> Result<(), Error> {
        self.line.ack()
    }

    /// The line.
    pub fn line(&self) -> &IrqLine {
        &self.line
    }
}

/// Runs a driver's interrupt loop: waits for `irq`, asks the server behind `ep` (usually the
/// driver's own endpoint, badged so the server can tell interrupts from clients) to handle it
/// with an empty message labelled `label`, acks (unmasks) the line, then asks once more: an
/// edge-triggered device raises no new edge for work that arrived while the line was masked, so
/// the server must drain again after unmasking. Returns only when something failed — the server
/// died, the line was closed — with that error.
pub fn irq_pump(irq: &Irq, ep: &crate::Endpoint, label: u64) -> Error {
    let handle = || -> Result<(), Error> { ep.call(crate::Msg::new(label, &[])?).map(|_| ()) };
    loop {
        if let Err(e) = irq
            .wait()
            .and_then(|()| handle())
            .and_then(|()| irq.ack())
            .and_then(|()| handle())
        {
            return e;
        }
    }
}

/// Device memory mapped into this process, accessed only with volatile loads and stores at
/// naturally aligned offsets. Out-of-range or misaligned offsets panic (driver bugs).
#[derive(Debug)]
pub struct Mmio {
    map: Mapping,
    _frame: Frame,
}

impl Mmio {
    /// Maps the first `len` bytes (a page multiple) of a device `frame` read-write (with the
    /// cache mode the frame was created with).
    pub fn map(frame: Frame, len: u64) -> Result<Mmio, Error> {
        let info = frame.inspect()?;
        if !info.rights.contains(Rights::WRITE) {
            return Err(Error::MissingRights);
        }
        let map = Mapping::new_rw(&frame, len)?;
        Ok(Mmio { map, _frame: frame })
    }

    /// Size of the mapping in bytes.
    pub fn len(&self) -> u64 {
        self.map.len()
    }

    /// Always false (a mapping has at least one page).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn addr(&self, offset: usize, size: usize) -> usize {
        let fits = offset
            .checked_add(size)
            .is_some_and(|end| end as u64 <= self.map.len());
        assert!(
            fits && offset.is_multiple_of(size),
            "MMIO access at {offset:#x} (size {size}) outside or misaligned in {:#x} bytes",
            self.map.len()
        );
        self.map.addr() as usize + offset
    }
}

macro_rules! mmio_access {
    ($($read:ident, $write:ident: $t:ty;)*) => {
        impl Mmio {
            $(
                #[doc = concat!("Volatile `", stringify!($t), "` load at byte `offset`.")]
                pub fn $read(&self, offset: usize) -> $t {
                    let a = self.addr(offset, core::mem::size_of::<$t>());
                    // SAFETY: `a` is inside the mapping (checked), aligned for the type, and the
                    // mapping lives as long as `self`; device memory is only ever accessed with
                    // volatile operations, never through references.
                    unsafe { core::ptr::read_volatile(a as *const $t) }
                }

                #[doc = concat!("Volatile `", stringify!($t), "` store at byte `offset`.")]
                pub fn $write(&self, offset: usize, value: $t) {
                    let a = self.addr(offset, core::mem::size_of::<$t>());
                    // SAFETY: as in the load; the mapping is writable (`map` maps it RW).
                    unsafe { core::ptr::write_volatile(a as *mut $t, value) }
                }
            )*
        }
    };
}

impl Mmio {
    /// Volatile stores of `bytes` from byte `offset` on: 8-byte stores where the address is
    /// aligned, single bytes at the unaligned edges. A bulk copy into device memory (a
    /// framebuffer's damaged span) at a fraction of the cost of one call per word. Panics if
    /// the range is outside the mapping (a driver bug).
    pub fn write_bytes(&self, offset: usize, bytes: &[u8]) {
        let fits = offset
            .checked_add(bytes.len())
            .is_some_and(|end| end as u64 <= self.map.len());
        assert!(
            fits,
            "MMIO copy of {} bytes at {offset:#x} outside {:#x} bytes",
            bytes.len(),
            self.map.len()
        );
        let base = self.map.addr() as usize + offset;
        let mut i = 0;
        while i < bytes.len() && !(base + i).is_multiple_of(8) {
            // SAFETY: `base + i` is inside the mapping (the whole range was checked above); a
            // byte store needs no alignment; device memory is only accessed volatilely.
            unsafe { core::ptr::write_volatile((base + i) as *mut u8, bytes[i]) };
            i += 1;
        }
        while i + 8 <= bytes.len() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[i..i + 8]);
            // SAFETY: `base + i .. base + i + 8` is inside the checked range and 8-aligned (the
            // loop above aligned it and each step adds 8); the mapping is writable.
            unsafe { core::ptr::write_volatile((base + i) as *mut u64, u64::from_le_bytes(w)) };
            i += 8;
        }
        while i < bytes.len() {
            // SAFETY: as for the leading bytes.
            unsafe { core::ptr::write_volatile((base + i) as *mut u8, bytes[i]) };
            i += 1;
        }
    }
}

mmio_access! {
    read_u8, write_u8: u8;
    read_u16, write_u16: u16;
    read_u32, write_u32: u32;
    read_u64, write_u64: u64;
}
