//! Hardware capabilities: I/O ports, IRQ lines and device memory for user-space drivers.
//!
//! Authority: the kernel makes one [`HwAuthority`] and puts it in root's table at
//! `hsync_abi::ROOT_HW_AUTHORITY`; every hardware capability is made from it
//! (`ioport_create`, `irq_create`, `frame_create_physical`). Root grants them per the manifest.
//!
//! * **Ports.** `ioport_enable(range)` adds the range to the calling process's [`IoPerm`]. On a
//!   switch to a thread of another process, [`switch_io`] denies the previous process's ranges
//!   and allows the next one's in the TSS I/O permission bitmap (only those bits, not 8 KiB);
//!   switching between processes without ports, or back to the loaded one, costs a comparison.
//!   IOPL stays 0, so any other port is a #GP and the process faults.
//! * **IRQs.** A GSI is bound to at most one live notification. The arch layer masks the pin
//!   when it fires and calls [`on_irq`], which signals the notification; `irq_ack` unmasks.
//! * **Device memory.** `frame_create_physical` makes a Frame over a physical range that the
//!   boot memory map does not list as RAM (usable, reclaimable, kernel/modules, ACPI, bad), so a
//!   device Frame can never alias memory the kernel or another process owns.
//!
//! The handlers are reached from `syscall::call` through one dispatch arm ([`call`]).

use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use hsync_abi::{
    DeviceCache, Error, Handle, IO_PORTS, MAX_GSIS, ObjectKind, PAGE_SIZE, Rights, Sysnum,
};
use hsync_kcore::mem::RegionKind;
use spin::{Mutex, Once};

use crate::arch;
use crate::boot::BootInfo;
use crate::object::{Frame, HwAuthority, IoPortRange, IrqLine, KObject, Notification, Process};

/// Most port ranges one process may enable.
pub const MAX_IO_RANGES: usize = 16;

/// Physical addresses at or above this are beyond any x86_64 physical address width.
const PHYS_LIMIT: u64 = 1 << 52;

/// Memory-map kinds that are RAM (or hold the kernel): never available as device memory.
const RAM_KINDS: &[RegionKind] = &[
    RegionKind::Usable,
    RegionKind::AcpiReclaimable,
    RegionKind::AcpiNvs,
    RegionKind::BadMemory,
    RegionKind::BootloaderReclaimable,
    RegionKind::ExecutableAndModules,
];

static BOOT_INFO: Once<&'static BootInfo> = Once::new();

/// Reads the IOAPIC routing from the MADT (all pins masked) and keeps the memory map for the
/// device-memory checks. Called once during boot, before root starts.
pub fn init(info: &'static BootInfo) {
    BOOT_INFO.call_once(|| info);
    arch::init_irq_routing(info);
}

/// The hardware authority root starts with.
pub fn authority() -> KObject {
    KObject::HwAuthority(Arc::new(HwAuthority::new()))
}

// ---------------------------------------------------------------------------------------------
// Ports

/// One enabled range of ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PortSpan {
    first: u16,
    count: u32,
    /// The IoPortRange it was enabled through (identity only): closing the process's last
    /// handle to that range revokes the span ([`revoke_unheld`]).
    src: usize,
}

/// A process's enabled port ranges. Immutable snapshots (`Arc<[PortSpan]>`) so that the
/// switch path clones a pointer instead of copying a list or allocating.
#[derive(Debug, Default)]
pub struct IoPerm {
    spans: Mutex<Option<Arc<[PortSpan]>>>,
    /// Set once any range was added (it stays set after revocation, which only costs the
    /// slow path's comparison): lets [`switch_io`] skip both locks when neither side has ports.
    any: AtomicBool,
}

impl IoPerm {
    /// No ports.
    pub fn new() -> IoPerm {
        IoPerm::default()
    }

    fn snapshot(&self) -> Option<Arc<[PortSpan]>> {
        self.spans.lock().clone()
    }

    fn add(&self, span: PortSpan) -> Result<(), Error> {
        let mut spans = self.spans.lock();
        let old: &[PortSpan] = spans.as_deref().unwrap_or(&[]);
        if old.contains(&span) {
            return Ok(());
        }
        if old.len() >= MAX_IO_RANGES {
            return Err(Error::OutOfMemory);
        }
        let mut v = Vec::new();
        v.try_reserve_exact(old.len() + 1)
            .map_err(|_| Error::OutOfMemory)?;
        v.extend_from_slice(old);
        v.push(span);
        *spans = Some(Arc::from(v));
        self.any.store(true, Ordering::Release);
        Ok(())
    }
}

impl IoPerm {
    /// Removes the spans enabled through the range at `src`; whether any were.
    fn remove(&self, src: usize) -> Result<bool, Error> {
        let mut spans = self.spans.lock();
        let old: &[PortSpan] = spans.as_deref().unwrap_or(&[]);
        if !old.iter().any(|s| s.src == src) {
            return Ok(false);
        }
        let mut v = Vec::new();
        v.try_reserve_exact(old.len())
            .map_err(|_| Error::OutOfMemory)?;
        v.extend(old.iter().filter(|s| s.src != src).copied());
        *spans = (!v.is_empty()).then(|| Arc::from(v));
        Ok(true)
    }
}

/// Revocation: `p` just closed a handle to `range`. If no other handle in its table names that
/// range, the ports it enabled through it are disabled for it (in the TSS bitmap at once if it
/// is the loaded process). Should the new span list not fit the heap, the process is killed
/// rather than left with ports it no longer holds.
pub fn revoke_unheld(p: &Arc<Process>, range: &Arc<IoPortRange>) {
    let held = p
        .handles
        .lock()
        .iter()
        .any(|(_, e)| matches!(e.object(), KObject::IoPortRange(r) if Arc::ptr_eq(r, range)));
    if held {
        return;
    }
    match p.io.remove(Arc::as_ptr(range) as usize) {
        Ok(false) => {}
        Ok(true) => {
            let mut l = LOADED[cpu_index()].lock();
            if l.pid == p.id {
                install(&mut l, p.id, p.io.snapshot());
            }
            drop(l);
            // Another CPU with this process's bitmap loaded reloads it at its next switch
            // (docs/smp.md: until then a thread of it running there keeps the old ports).
            forget_elsewhere(p.id);
        }
        Err(_) => p.end(hsync_abi::ExitStatus::Killed, None),
    }
}

/// Makes every other CPU that has process `pid`'s port bitmap loaded reload it at its next
/// switch to that process.
fn forget_elsewhere(pid: u64) {
    for (i, l) in LOADED.iter().enumerate() {
        if i != cpu_index() {
            let mut l = l.lock();
            if l.pid == pid {
                l.pid = u64::MAX;
            }
        }
    }
}

/// Whose ports this CPU's TSS bitmap currently allows.
struct Loaded {
    /// Process id (0 = no process / none).
    pid: u64,
    spans: Option<Arc<[PortSpan]>>,
}

/// Each CPU's loaded bitmap state (each CPU has its own TSS).
static LOADED: [Mutex<Loaded>; arch::MAX_CPUS] = [const {
    Mutex::new(Loaded {
        pid: 0,
        spans: None,
    })
}; arch::MAX_CPUS];

/// Per CPU: whether its TSS bitmap allows any port now (`LOADED[cpu].spans.is_some()`),
/// readable without the lock.
static LOADED_ANY: [AtomicBool; arch::MAX_CPUS] =
    [const { AtomicBool::new(false) }; arch::MAX_CPUS];

fn cpu_index() -> usize {
    (arch::cpu_id() as usize).min(arch::MAX_CPUS - 1)
}

fn install(l: &mut Loaded, pid: u64, spans: Option<Arc<[PortSpan]>>) {
    if let Some(old) = l.spans.take() {
        for s in old.iter() {
            arch::set_io_ports(s.first, s.count, false);
        }
    }
    if let Some(new) = &spans {
        for s in new.iter() {
            arch::set_io_ports(s.first, s.count, true);
        }
    }
    l.pid = pid;
    LOADED_ANY[cpu_index()].store(spans.is_some(), Ordering::Relaxed);
    l.spans = spans;
}

/// Called by the scheduler just before it switches to `next`: make the TSS I/O bitmap allow
/// exactly `next`'s process's ports. Cheap when nothing changes (same process, or neither the
/// previous nor the next process has ports).
#[inline(always)]
pub fn switch_io(next: &crate::object::Thread) {
    let p = next.process.as_deref();
    // Neither the loaded bitmap nor the next process allows a port: nothing to change. (The
    // loaded pid may then go stale; that is harmless, because a process only gains ports by
    // its own `ioport_enable`, which installs them at once.)
    if LOADED_ANY[cpu_index()].load(Ordering::Relaxed)
        || p.is_some_and(|p| p.io.any.load(Ordering::Acquire))
    {
        switch_io_slow(p);
    }
}

#[inline(never)]
fn switch_io_slow(p: Option<&Process>) {
    let pid = p.map_or(0, |p| p.id);
    let mut l = LOADED[cpu_index()].lock();
    if l.pid == pid {
        return;
    }
    let spans = p.and_then(|p| p.io.snapshot());
    if l.spans.is_none() && spans.is_none() {
        l.pid = pid;
        return;
    }
    install(&mut l, pid, spans);
}

// ---------------------------------------------------------------------------------------------
// IRQs

/// A GSI's binding: which IrqLine object made it, and what to signal.
struct Binding {
    /// Address of the binding `IrqLine` (identity only; the binding is removed when it drops).
    line: usize,
    notification: Weak<Notification>,
    bits: u64,
}

impl Binding {
    fn live(&self) -> bool {
        self.notification.strong_count() > 0
    }
}

static BINDINGS: Mutex<[Option<Binding>; MAX_GSIS as usize]> =
    Mutex::new([const { None }; MAX_GSIS as usize]);

fn line_id(line: &IrqLine) -> usize {
    core::ptr::from_ref(line) as usize
}

/// An interrupt on `gsi` arrived (the arch layer masked the pin and sent the EOI): signal the
/// bound notification. An unbound or stale line stays masked.
pub fn on_irq(gsi: u32) {
    let target = {
        let b = BINDINGS.lock();
        b.get(gsi as usize)
            .and_then(Option::as_ref)
            .and_then(|b| b.notification.upgrade().map(|n| (n, b.bits)))
    };
    match target {
        Some((n, bits)) => n.signal(bits),
        None => log::debug!(target: "hw", "interrupt on unbound GSI {gsi}; left masked"),
    }
}

/// The last reference to `line` is going: dissolve a binding it made and mask the pin.
pub fn line_dropped(line: &IrqLine) {
    let id = line_id(line);
    let mut b = BINDINGS.lock();
    if let Some(slot) = b.get_mut(line.gsi as usize)
        && slot.as_ref().is_some_and(|x| x.line == id)
    {
        *slot = None;
        arch::mask_irq(line.gsi);
    }
}

// ---------------------------------------------------------------------------------------------
// System calls

/// Handles the hardware system calls for process `p`.
pub fn call(p: &Arc<Process>, nr: Sysnum, a: [u64; 6]) -> Result<[u64; 6], Error> {
    let ok = |v: u64| Ok([v, 0, 0, 0, 0, 0]);
    match nr {
        Sysnum::IoportCreate => {
            authority_of(p, a[0])?;
            let (first, count) = (a[1], a[2]);
            if count == 0 || first.checked_add(count).is_none_or(|end| end > IO_PORTS) {
                return Err(Error::InvalidArgument);
            }
            // Both fit: first < 0x10000, count <= 0x10000.
            let r = IoPortRange::new(first as u16, count as u32);
            ok(insert(p, KObject::IoPortRange(Arc::new(r)), None)?)
        }
        Sysnum::IoportEnable => {
            let KObject::IoPortRange(r) = get(p, a[0], ObjectKind::IoPortRange, Rights::MANAGE)?
            else {
                return Err(Error::WrongKind);
            };
            p.io.add(PortSpan {
                first: r.first,
                count: r.count,
                src: Arc::as_ptr(&r) as usize,
            })?;
            // The caller's process is the one running on this CPU: allow its ports now. Other
            // CPUs that have this process's bitmap loaded reload it at their next switch.
            install(&mut LOADED[cpu_index()].lock(), p.id, p.io.snapshot());
            forget_elsewhere(p.id);
            Ok([0; 6])
        }
        Sysnum::IrqCreate => {
            authority_of(p, a[0])?;
            let irq = u32::try_from(a[1]).map_err(|_| Error::InvalidArgument)?;
            let (gsi, mode) = arch::resolve_irq(irq).ok_or(Error::InvalidArgument)?;
            p.handles.lock().reserve(1)?;
            {
                // Program the pin (masked) unless a live binding is using it as it is.
                let b = BINDINGS.lock();
                let busy = b
                    .get(gsi as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(Binding::live);
                if !busy && !arch::route_irq(gsi, mode) {
                    return Err(Error::InvalidArgument);
                }
            }
            ok(insert(
                p,
                KObject::IrqLine(Arc::new(IrqLine::new(gsi))),
                None,
            )?)
        }
        Sysnum::IrqBind => {
            let line = irq_line(p, a[0])?;
            let KObject::Notification(n) = get(p, a[1], ObjectKind::Notification, Rights::SIGNAL)?
            else {
                return Err(Error::WrongKind);
            };
            if a[2] == 0 {
                return Err(Error::InvalidArgument);
            }
            {
                let mut b = BINDINGS.lock();
                let slot = b.get_mut(line.gsi as usize).ok_or(Error::InvalidArgument)?;
                if slot.as_ref().is_some_and(Binding::live) {
                    return Err(Error::Exists);
                }
                *slot = Some(Binding {
                    line: line_id(&line),
                    notification: Arc::downgrade(&n),
                    bits: a[2],
                });
            }
            arch::unmask_irq(line.gsi);
            Ok([0; 6])
        }
        Sysnum::IrqAck => {
            let line = irq_line(p, a[0])?;
            let b = BINDINGS.lock();
            let bound = b
                .get(line.gsi as usize)
                .and_then(Option::as_ref)
                .is_some_and(|x| x.line == line_id(&line));
            if !bound {
                return Err(Error::InvalidState);
            }
            arch::unmask_irq(line.gsi);
            Ok([0; 6])
        }
        Sysnum::FrameCreatePhysical => {
            authority_of(p, a[0])?;
            let frame = device_frame(a[1], a[2], a[3])?;
            let rights =
                Rights::READ | Rights::WRITE | Rights::MAP | Rights::DUPLICATE | Rights::TRANSFER;
            ok(insert(p, KObject::Frame(Arc::new(frame)), Some(rights))?)
        }
        Sysnum::SystemPower => {
            authority_of(p, a[0])?;
            match a[1] {
                hsync_abi::POWER_OFF => {
                    log::info!(target: "hw", "power off requested by process {}", p.id);
                    arch::power_off()
                }
                hsync_abi::POWER_REBOOT => {
                    log::info!(target: "hw", "reboot requested by process {}", p.id);
                    arch::reboot()
                }
                _ => Err(Error::InvalidArgument),
            }
        }
        _ => Err(Error::InvalidSyscall),
    }
}

fn get(p: &Process, h: u64, kind: ObjectKind, rights: Rights) -> Result<KObject, Error> {
    p.handles
        .lock()
        .get_kind(Handle::from_raw(h), kind, rights)
        .cloned()
}

pub(crate) fn authority_of(p: &Process, h: u64) -> Result<(), Error> {
    get(p, h, ObjectKind::HwAuthority, Rights::MANAGE).map(drop)
}

fn irq_line(p: &Process, h: u64) -> Result<Arc<IrqLine>, Error> {
    match get(p, h, ObjectKind::IrqLine, Rights::MANAGE)? {
        KObject::IrqLine(l) => Ok(l),
        _ => Err(Error::WrongKind),
    }
}

fn insert(p: &Process, obj: KObject, rights: Option<Rights>) -> Result<u64, Error> {
    match rights {
        None => crate::object::process::insert(p, obj).map(Handle::raw),
        Some(r) => p.handles.lock().insert(obj, r).map(Handle::raw),
    }
}

/// A Frame over device memory `[phys, phys + len)`, refusing RAM.
fn device_frame(phys: u64, len: u64, cache: u64) -> Result<Frame, Error> {
    let cache = match DeviceCache::try_from(cache)? {
        DeviceCache::Uncached => arch::paging::Cache::Uncached,
        DeviceCache::WriteCombining => arch::paging::Cache::WriteCombining,
    };
    if len == 0 {
        return Err(Error::InvalidArgument);
    }
    if !phys.is_multiple_of(PAGE_SIZE) || !len.is_multiple_of(PAGE_SIZE) {
        return Err(Error::Misaligned);
    }
    let end = phys.checked_add(len).ok_or(Error::BadAddress)?;
    if end > PHYS_LIMIT {
        return Err(Error::BadAddress);
    }
    if overlaps_ram(phys, end) {
        return Err(Error::InvalidArgument);
    }
    let pages = usize::try_from(len / PAGE_SIZE).map_err(|_| Error::BadAddress)?;
    let mem = crate::mm::memory::Memory::device(phys, pages, cache)?;
    if !mem.is_device() && !within_framebuffer(phys, end) {
        // The direct map covers it after all: RAM the memory map did not describe. (The boot
        // framebuffer is direct-mapped on purpose, write-combining, so it is the one exception.)
        return Err(Error::InvalidArgument);
    }
    Ok(Frame::new(mem))
}

/// Whether `[start, end)` lies entirely inside the memory map's framebuffer regions.
fn within_framebuffer(start: u64, end: u64) -> bool {
    let Some(info) = BOOT_INFO.get() else {
        return false;
    };
    info.memory_map.iter().any(|r| {
        r.kind == RegionKind::Framebuffer && r.base <= start && end <= r.base.saturating_add(r.len)
    })
}

/// Whether `[start, end)` touches any memory-map region that is RAM (or unknown: no map).
fn overlaps_ram(start: u64, end: u64) -> bool {
    let Some(info) = BOOT_INFO.get() else {
        return true;
    };
    info.memory_map.iter().any(|r| {
        RAM_KINDS.contains(&r.kind) && r.base < end && start < r.base.saturating_add(r.len)
    })
}
