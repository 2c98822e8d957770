//! IOAPICs: device interrupts (GSIs) routed to vectors, masked and unmasked on request.
//!
//! [`init`] reads the ACPI MADT (through the `acpi` crate, mapping tables with
//! `mm::map_physical`): every IOAPIC (MMIO base, first GSI, pin count) and every ISA interrupt
//! source override (e.g. IRQ0 → GSI 2, with its polarity and trigger mode). It masks every pin.
//! Without a MADT (or without an IOAPIC) there are no routable lines and [`route`] fails.
//!
//! Vectors: GSI `n` is delivered on [`VECTOR_BASE`]` + n` (`0x40..=0x7f`, above the local APIC
//! timer's 0x30 and below nothing else in use), fixed delivery, physical destination = the boot
//! CPU. The trap dispatcher calls [`on_vector`] for that range: it masks the pin, sends the EOI
//! and hands the GSI to the kernel's hardware module, which signals the bound notification. The
//! pin stays masked until the holder acks ([`unmask`]) — safe for level-triggered lines, whose
//! device keeps asserting until the driver has served it.
//!
//! Concurrency: the register window (IOREGSEL/IOWIN) is a two-step access, so every access
//! holds [`IOAPICS`]'s lock; interrupts are off whenever kernel code runs.

use acpi::AcpiTables;
use acpi::madt::{Madt, MadtEntry};
use spin::{Mutex, Once};

use crate::boot::BootInfo;

/// Vector of GSI 0.
pub const VECTOR_BASE: u64 = 0x40;
/// Number of GSIs (and vectors) routed: `VECTOR_BASE..VECTOR_BASE + GSI_COUNT`.
pub const GSI_COUNT: u32 = hsync_abi::MAX_GSIS as u32;

/// At most this many IOAPICs are used (PCs have one or two).
const MAX_IOAPICS: usize = 4;

const REG_ID: u32 = 0x00;
const REG_VERSION: u32 = 0x01;
const REG_REDIRECTION: u32 = 0x10;

const MASKED: u64 = 1 << 16;
const LEVEL: u64 = 1 << 15;
const ACTIVE_LOW: u64 = 1 << 13;

/// Polarity and trigger mode of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    /// Level-triggered (else edge).
    pub level: bool,
    /// Active low (else active high).
    pub active_low: bool,
}

impl Mode {
    /// ISA default: edge, active high.
    const ISA: Mode = Mode {
        level: false,
        active_low: false,
    };
    /// PCI default: level, active low.
    const PCI: Mode = Mode {
        level: true,
        active_low: true,
    };
}

#[derive(Clone, Copy, Debug)]
struct IoApic {
    /// Kernel virtual address of the register window (uncached).
    base: u64,
    gsi_base: u32,
    pins: u32,
}

impl IoApic {
    fn read(&self, reg: u32) -> u32 {
        // SAFETY: `base` maps this IOAPIC's register page uncached (`init`); IOREGSEL is at +0
        // and IOWIN at +0x10, both 32-bit. The caller holds `IOAPICS`'s lock, so the select and
        // the access are not interleaved with another CPU's.
        unsafe {
            core::ptr::write_volatile(self.base as *mut u32, reg);
            core::ptr::read_volatile((self.base + 0x10) as *const u32)
        }
    }

    fn write(&self, reg: u32, value: u32) {
        // SAFETY: as in `read`.
        unsafe {
            core::ptr::write_volatile(self.base as *mut u32, reg);
            core::ptr::write_volatile((self.base + 0x10) as *mut u32, value);
        }
    }

    fn set_redirection(&self, pin: u32, value: u64) {
        let r = REG_REDIRECTION + 2 * pin;
        // Mask first, then the high half, then the low half (with the final mask bit): the
        // entry is never live with half-written contents.
        self.write(r, MASKED as u32);
        self.write(r + 1, (value >> 32) as u32);
        self.write(r, value as u32);
    }
}

/// What the MADT told us.
struct Routing {
    ioapics: [Option<IoApic>; MAX_IOAPICS],
    /// ISA IRQ → (GSI, mode), with the overrides applied.
    isa: [(u32, Mode); 16],
}

impl Routing {
    fn find(&self, gsi: u32) -> Option<(&IoApic, u32)> {
        self.ioapics
            .iter()
            .flatten()
            .find(|a| (a.gsi_base..a.gsi_base + a.pins).contains(&gsi))
            .map(|a| (a, gsi - a.gsi_base))
    }
}

static IOAPICS: Once<Mutex<Routing>> = Once::new();

/// Finds the IOAPICs and ISA overrides in the MADT and masks every pin. Logs what it found.
pub fn init(info: &BootInfo) {
    let routing = match parse_madt(info) {
        Ok(r) => r,
        Err(e) => {
            log::warn!(target: "ioapic", "no IOAPIC routing ({e}); IRQ lines unavailable");
            return;
        }
    };
    for a in routing.ioapics.iter().flatten() {
        for pin in 0..a.pins {
            a.set_redirection(pin, MASKED);
        }
        log::info!(
            target: "ioapic",
            "IOAPIC id {} at GSI {}..{} (version {:#x}), all pins masked",
            a.read(REG_ID) >> 24,
            a.gsi_base,
            a.gsi_base + a.pins,
            a.read(REG_VERSION) & 0xff
        );
    }
    for (irq, &(gsi, mode)) in routing.isa.iter().enumerate() {
        if gsi != irq as u32 || mode != Mode::ISA {
            log::info!(target: "ioapic", "ISA IRQ {irq} -> GSI {gsi} {mode:?}");
        }
    }
    IOAPICS.call_once(|| Mutex::new(routing));
}

fn parse_madt(info: &BootInfo) -> Result<Routing, &'static str> {
    let rsdp = info.rsdp_phys.ok_or("no RSDP")?;
    // SAFETY: `rsdp` is the physical RSDP address the loader reported; the crate validates it.
    let tables = unsafe { AcpiTables::from_rsdp(super::power::Mapper, rsdp as usize) }
        .map_err(|_| "bad RSDP/RSDT")?;
    let madt = tables.find_table::<Madt>().map_err(|_| "no MADT")?;
    let mut r = Routing {
        ioapics: [None; MAX_IOAPICS],
        isa: core::array::from_fn(|i| (i as u32, Mode::ISA)),
    };
    let mut n = 0;
    for entry in madt.get().entries() {
        match entry {
            MadtEntry::IoApic(a) => {
                let (phys, gsi_base) = (a.io_apic_address, a.global_system_interrupt_base);
                let Ok(base) =
                    crate::mm::map_physical(u64::from(phys), 0x20, crate::mm::Cache::Uncached)
                else {
                    log::warn!(target: "ioapic", "cannot map the IOAPIC at {phys:#x}");
                    continue;
                };
                let Some(slot) = r.ioapics.get_mut(n) else {
                    log::warn!(target: "ioapic", "more than {MAX_IOAPICS} IOAPICs; ignoring {phys:#x}");
                    continue;
                };
                let mut a = IoApic {
                    base: base.as_u64(),
                    gsi_base,
                    pins: 0,
                };
                a.pins = ((a.read(REG_VERSION) >> 16) & 0xff) + 1;
                *slot = Some(a);
                n += 1;
            }
            MadtEntry::InterruptSourceOverride(o) if o.bus == 0 => {
                let (irq, gsi, flags) = (o.irq, o.global_system_interrupt, o.flags);
                // MPS INTI flags: polarity bits 1:0 (01 high, 11 low), trigger bits 3:2 (01
                // edge, 11 level); 00 = "conforms to the bus" = ISA's edge/high.
                let mode = Mode {
                    active_low: flags & 0b11 == 0b11,
                    level: (flags >> 2) & 0b11 == 0b11,
                };
                if let Some(slot) = r.isa.get_mut(usize::from(irq)) {
                    *slot = (gsi, mode);
                }
            }
            _ => {}
        }
    }
    if n == 0 {
        return Err("the MADT lists no IOAPIC");
    }
    Ok(r)
}

/// The GSI and mode for `irq`: an ISA IRQ (below 16, overrides applied) or a GSI (PCI mode).
/// `None` if no IOAPIC serves it or it is not below [`GSI_COUNT`].
pub fn resolve(irq: u32) -> Option<(u32, Mode)> {
    let routing = IOAPICS.get()?.lock();
    let (gsi, mode) = match routing.isa.get(irq as usize) {
        Some(&isa) => isa,
        None => (irq, Mode::PCI),
    };
    (gsi < GSI_COUNT && routing.find(gsi).is_some()).then_some((gsi, mode))
}

/// Programs `gsi` to deliver [`VECTOR_BASE`]` + gsi` to the boot CPU (whoever calls) with
/// `mode`, masked.
/// Returns false if no IOAPIC serves it.
pub fn route(gsi: u32, mode: Mode) -> bool {
    let Some(routing) = IOAPICS.get() else {
        return false;
    };
    let routing = routing.lock();
    let Some((a, pin)) = routing.find(gsi).filter(|_| gsi < GSI_COUNT) else {
        return false;
    };
    let mut entry = (VECTOR_BASE + u64::from(gsi)) | MASKED;
    if mode.level {
        entry |= LEVEL;
    }
    if mode.active_low {
        entry |= ACTIVE_LOW;
    }
    // Always the boot CPU, whichever CPU programs the pin (docs/smp.md).
    let bsp = super::percpu::cpu_block(0).map_or(0, |b| b.apic_id());
    entry |= u64::from(bsp & 0xff) << 56;
    a.set_redirection(pin, entry);
    true
}

fn set_mask(gsi: u32, masked: bool) {
    let Some(routing) = IOAPICS.get() else { return };
    let routing = routing.lock();
    if let Some((a, pin)) = routing.find(gsi) {
        let r = REG_REDIRECTION + 2 * pin;
        let low = a.read(r);
        let low = if masked {
            low | MASKED as u32
        } else {
            low & !(MASKED as u32)
        };
        a.write(r, low);
    }
}

/// Lets `gsi` deliver again.
pub fn unmask(gsi: u32) {
    set_mask(gsi, false);
}

/// Stops `gsi` from delivering.
pub fn mask(gsi: u32) {
    set_mask(gsi, true);
}

/// A device interrupt arrived on `vector` (in `VECTOR_BASE..VECTOR_BASE + GSI_COUNT`): mask the
/// pin, EOI, then let the kernel signal whoever bound it.
pub fn on_vector(vector: u64) {
    let gsi = (vector - VECTOR_BASE) as u32;
    mask(gsi);
    super::apic::eoi();
    crate::hw::on_irq(gsi);
}
