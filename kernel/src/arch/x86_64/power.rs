//! Leaving the machine: ACPI S5 power-off, QEMU's isa-debug-exit, or halting forever.
//!
//! S5 needs two facts from ACPI: the PM1a/PM1b control ports (FADT, parsed by the `acpi`
//! crate) and SLP_TYPa/b, which live in the DSDT's `\_S5_` package. The `acpi` crate (5.x, no
//! AML interpreter) cannot evaluate AML, so we scan the DSDT bytes for the encoding of
//! `Name(_S5_, Package(){a, b, ...})` — the same shortcut every small kernel takes, and exact
//! for the way firmware (SeaBIOS, OVMF, real BIOSes) writes that object.

use core::ptr::NonNull;

use acpi::{AcpiHandler, AcpiTables, PhysicalMapping, fadt::Fadt};
use x86_64::instructions::port::Port;

use crate::boot::BootInfo;

/// QEMU isa-debug-exit port (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
const DEBUG_EXIT_PORT: u16 = 0xF4;
/// isa-debug-exit value meaning "success" (QEMU exits with status 33).
pub const EXIT_SUCCESS: u8 = 0x10;
/// isa-debug-exit value meaning "failure/panic" (QEMU exits with status 35).
pub const EXIT_FAILURE: u8 = 0x11;

/// Writes `code` to QEMU's isa-debug-exit device. Returns if the device is absent.
pub fn qemu_exit(code: u8) {
    let mut port = Port::<u32>::new(DEBUG_EXIT_PORT);
    // SAFETY: 0xF4 is unused on PCs; on QEMU with isa-debug-exit the write ends the VM,
    // elsewhere it goes nowhere.
    unsafe { port.write(u32::from(code)) };
}

/// Halts this CPU forever with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Where S5 is entered: PM1a/PM1b control ports and the sleep type values.
#[derive(Clone, Copy, Debug)]
struct S5 {
    pm1a_cnt: u16,
    pm1b_cnt: Option<u16>,
    slp_typ_a: u16,
    slp_typ_b: u16,
}

/// ACPI S5 where available, else QEMU's isa-debug-exit (success), else halt.
pub fn power_off(info: Option<&BootInfo>) -> ! {
    x86_64::instructions::interrupts::disable();
    match info.ok_or("no boot info").and_then(find_s5) {
        Ok(s5) => {
            log::info!(target: "power", "ACPI S5: PM1a_CNT={:#x} SLP_TYPa={}", s5.pm1a_cnt, s5.slp_typ_a);
            enter_s5(s5);
            log::warn!(target: "power", "still running after the S5 write");
        }
        Err(e) => log::warn!(target: "power", "no ACPI power-off ({e})"),
    }
    log::info!(target: "power", "exiting through isa-debug-exit (success)");
    qemu_exit(EXIT_SUCCESS);
    log::error!(target: "power", "could not power off; halting");
    halt_forever()
}

/// Resets the machine: the PCI reset control register (0xCF9), then the keyboard
/// controller's reset line (0x64 ← 0xFE), then a triple fault (an empty IDT and an exception).
pub fn reboot() -> ! {
    x86_64::instructions::interrupts::disable();
    log::info!(target: "power", "rebooting");
    let settle = || {
        let start = super::time::rdtsc();
        while super::time::rdtsc().wrapping_sub(start) < 50_000_000 {
            core::hint::spin_loop();
        }
    };
    let mut cf9 = Port::<u8>::new(0xCF9);
    // SAFETY: 0xCF9 is the PCI reset control register on PC chipsets (and QEMU's PIIX/Q35);
    // 0x02 then 0x06 requests a hard reset. We are resetting: nothing depends on continuing.
    unsafe {
        cf9.write(0x02);
        cf9.write(0x06);
    }
    settle();
    let mut kbc = Port::<u8>::new(0x64);
    // SAFETY: the 8042 command port; 0xFE pulses the CPU reset line.
    unsafe { kbc.write(0xFE) };
    settle();
    log::warn!(target: "power", "no reset yet; triple-faulting");
    let empty = x86_64::structures::DescriptorTablePointer {
        limit: 0,
        base: x86_64::VirtAddr::new(0),
    };
    // SAFETY: loading an empty IDT and raising an exception triple-faults, which resets the
    // CPU; that is the intent.
    unsafe {
        x86_64::instructions::tables::lidt(&empty);
        core::arch::asm!("int3");
    }
    halt_forever()
}

fn enter_s5(s5: S5) {
    const SLP_EN: u16 = 1 << 13;
    let mut a = Port::<u16>::new(s5.pm1a_cnt);
    // SAFETY: PM1a_CNT comes from the FADT; writing SLP_TYP|SLP_EN there is how ACPI enters S5.
    // We are shutting down: nothing depends on the machine continuing.
    unsafe { a.write((s5.slp_typ_a << 10) | SLP_EN) };
    if let Some(port) = s5.pm1b_cnt {
        let mut b = Port::<u16>::new(port);
        // SAFETY: as above, for the optional PM1b block.
        unsafe { b.write((s5.slp_typ_b << 10) | SLP_EN) };
    }
    // Real hardware takes a moment; give it a few milliseconds before falling back.
    let start = super::time::rdtsc();
    while super::time::rdtsc().wrapping_sub(start) < 100_000_000 {
        core::hint::spin_loop();
    }
}

/// Makes ACPI tables readable: `[phys, phys + len)` as a kernel virtual address. Under Limine
/// base revision 3 the direct map does not cover firmware-reserved memory (where SeaBIOS keeps
/// its tables), so this goes through the memory manager's permanent physical mappings.
fn map_acpi(phys: u64, len: u64) -> Option<u64> {
    crate::mm::map_physical(phys, len, crate::mm::Cache::WriteBack)
        .ok()
        .map(|v| v.as_u64())
}

/// Maps ACPI tables for the `acpi` crate (also used by `ioapic` for the MADT).
#[derive(Clone, Copy)]
pub(super) struct Mapper;

impl AcpiHandler for Mapper {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        let virt = map_acpi(phys as u64, size as u64).and_then(|v| NonNull::new(v as *mut T));
        let Some(virt) = virt else {
            panic!("cannot map ACPI table at {phys:#x} (+{size:#x})");
        };
        // SAFETY: `map_acpi` mapped [phys, phys + size) readable at `virt`, permanently.
        unsafe { PhysicalMapping::new(phys, virt, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {
        // Nothing to undo: `mm::map_physical` mappings are permanent (ACPI is read rarely).
    }
}

fn find_s5(info: &BootInfo) -> Result<S5, &'static str> {
    let rsdp = info.rsdp_phys.ok_or("no RSDP")?;
    // SAFETY: `rsdp` is the physical RSDP address the loader reported; the crate validates it.
    let tables =
        unsafe { AcpiTables::from_rsdp(Mapper, rsdp as usize) }.map_err(|_| "bad RSDP/RSDT")?;
    let fadt = tables.find_table::<Fadt>().map_err(|_| "no FADT")?;
    let io_port = |addr: acpi::address::GenericAddress| match addr.address_space {
        acpi::address::AddressSpace::SystemIo => u16::try_from(addr.address).ok(),
        _ => None,
    };
    let pm1a_cnt = fadt
        .pm1a_control_block()
        .ok()
        .and_then(io_port)
        .ok_or("PM1a_CNT not in I/O space")?;
    let pm1b_cnt = fadt.pm1b_control_block().ok().flatten().and_then(io_port);
    let dsdt = tables.dsdt().map_err(|_| "no DSDT")?;
    let map = map_acpi(dsdt.address as u64, u64::from(dsdt.length)).ok_or("cannot map the DSDT")?;
    // SAFETY: `map_acpi` mapped the DSDT's `length` bytes of AML, readable, at `map`.
    let aml = unsafe { core::slice::from_raw_parts(map as *const u8, dsdt.length as usize) };
    let (slp_typ_a, slp_typ_b) = scan_s5(aml).ok_or("no \\_S5_ package in the DSDT")?;
    Ok(S5 {
        pm1a_cnt,
        pm1b_cnt,
        slp_typ_a,
        slp_typ_b,
    })
}

/// Finds `NameOp "_S5_" PackageOp PkgLength NumElements a b` and returns `(a, b)`.
fn scan_s5(aml: &[u8]) -> Option<(u16, u16)> {
    const PACKAGE_OP: u8 = 0x12;
    let at = aml.windows(4).position(|w| w == b"_S5_")?;
    let mut rest = aml.get(at + 4..)?;
    if *rest.first()? != PACKAGE_OP {
        return None;
    }
    // PkgLength: bits 7:6 of the lead byte count the bytes that follow it.
    let len_bytes = usize::from(rest.get(1)? >> 6) + 1;
    rest = rest.get(1 + len_bytes + 1..)?; // skip PkgLength and NumElements
    let (a, rest) = aml_integer(rest)?;
    let (b, _) = aml_integer(rest)?;
    Some((a, b))
}

/// Decodes one small AML integer (ZeroOp, OneOp, BytePrefix, WordPrefix).
fn aml_integer(aml: &[u8]) -> Option<(u16, &[u8])> {
    match *aml.first()? {
        0x00 => Some((0, &aml[1..])),
        0x01 => Some((1, &aml[1..])),
        0x0A => Some((u16::from(*aml.get(1)?), aml.get(2..)?)),
        0x0B => Some((
            u16::from_le_bytes([*aml.get(1)?, *aml.get(2)?]),
            aml.get(3..)?,
        )),
        _ => None,
    }
}

/// Tests for the AML scan (run in the kernel; they are pure but live next to their code).
pub fn scan_s5_self_test() -> Result<(), &'static str> {
    // QEMU/SeaBIOS style: Name(_S5_, Package(4){Zero, Zero, Zero, Zero})
    let seabios = [
        0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00,
    ];
    // Typical real firmware: Package(){0x05, 0x05, Zero, Zero} with byte prefixes
    let bytes = [
        0x08, b'_', b'S', b'5', b'_', 0x12, 0x08, 0x04, 0x0A, 0x05, 0x0A, 0x07, 0, 0,
    ];
    if scan_s5(&seabios) != Some((0, 0)) {
        return Err("SeaBIOS-style _S5_ not decoded");
    }
    if scan_s5(&bytes) != Some((5, 7)) {
        return Err("byte-prefixed _S5_ not decoded");
    }
    if scan_s5(b"\x08_S5_\x13").is_some() {
        return Err("non-package _S5_ accepted");
    }
    Ok(())
}
