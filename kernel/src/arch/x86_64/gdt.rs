//! GDT and TSS: one set per CPU (the boot CPU's is a static, each AP's is built on the heap by
//! the boot CPU before the AP starts, [`new_ap_tables`]).
//!
//! Selector layout — fixed by `syscall`/`sysret`, which derive selectors from IA32_STAR:
//!
//! | selector | descriptor        | why here                                                   |
//! |----------|-------------------|------------------------------------------------------------|
//! | `0x00`   | null              |                                                            |
//! | `0x08`   | kernel code (64)  | STAR[47:32]: `syscall` loads CS = 0x08 ...                 |
//! | `0x10`   | kernel data       | ... and SS = 0x08 + 8                                      |
//! | `0x18`   | user code (32)    | STAR[63:48] base; unused (no compat mode), keeps the order  |
//! | `0x20`   | user data (`0x23`)| `sysret` loads SS = base + 8                               |
//! | `0x28`   | user code (`0x2b`)| `sysretq` loads CS = base + 16                             |
//! | `0x30`   | TSS (16 bytes)    |                                                            |
//!
//! The TSS carries the interrupt stacks (IST): double fault, NMI and machine check run on their
//! own stacks, because they can arrive when the current stack is unusable (overflowed into its
//! guard page) or in the middle of anything. Before the memory manager is up those are small
//! static stacks; `install_guarded_ist_stacks` replaces them with guarded ones.
//!
//! The TSS is followed by a full I/O permission bitmap (8 KiB, one bit per port, 1 = denied,
//! plus the terminating `0xff` byte the CPU may read past the last port). It starts all ones, so
//! with IOPL 0 every `in`/`out` from ring 3 raises #GP. [`set_io_ports`] clears or sets the bits
//! of one port range; the kernel's hardware module calls it on process switches (only for the
//! ranges the previous and next process enabled) — IOPL is never raised.

use core::sync::atomic::{AtomicPtr, Ordering};

use x86_64::PrivilegeLevel;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, FS, GS, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::segmentation::SegmentSelector;
use x86_64::structures::gdt::{Descriptor, DescriptorFlags, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;

use super::percpu::MAX_CPUS;

/// Kernel code selector.
pub const KERNEL_CS: u16 = 0x08;
/// Kernel stack/data selector.
pub const KERNEL_SS: u16 = 0x10;
/// User stack/data selector (RPL 3).
pub const USER_SS: u16 = 0x20 | 3;
/// User 64-bit code selector (RPL 3).
pub const USER_CS: u16 = 0x28 | 3;
/// The TSS selector.
pub const TSS_SEL: u16 = 0x30;
/// The value for IA32_STAR's selector half (bits 63:32): syscall CS = 0x08 / SS = 0x10,
/// sysretq CS = 0x1b + 16 = 0x2b / SS = 0x1b + 8 = 0x23.
pub const STAR_SELECTORS: u64 = ((0x18 | 3) << 16) | KERNEL_CS as u64;

/// IST slot (1-based, as the IDT gate names it) for each vector that needs its own stack.
pub const IST_DOUBLE_FAULT: u8 = 1;
/// See [`IST_DOUBLE_FAULT`].
pub const IST_NMI: u8 = 2;
/// See [`IST_DOUBLE_FAULT`].
pub const IST_MACHINE_CHECK: u8 = 3;
/// Number of IST stacks in use.
pub const IST_COUNT: usize = 3;

/// Size of each early (static, unguarded) IST stack.
const EARLY_IST_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct EarlyStack([u8; EARLY_IST_SIZE]);

/// Bytes of the I/O permission bitmap: one bit per port, plus the terminating all-ones byte.
const IOMAP_BYTES: usize = 0x1_0000 / 8 + 1;

/// One CPU's descriptor tables. `repr(C)`: the I/O bitmap must follow the TSS directly (its
/// offset is `tss.iomap_base`, and the TSS limit covers it).
#[repr(C)]
struct PerCpuTables {
    gdt: GlobalDescriptorTable<8>,
    tss: TaskStateSegment,
    iomap: [u8; IOMAP_BYTES],
}

/// Offset of the I/O bitmap from the start of the TSS.
const IOMAP_BASE: u16 = core::mem::size_of::<TaskStateSegment>() as u16;

/// The boot CPU's tables.
///
/// `static mut` on purpose: after `lgdt`/`ltr` the CPU reads this memory behind Rust's back, and
/// the IST slots and the I/O bitmap are rewritten in place later. It is only ever reached
/// through raw pointers, from this module, on the boot CPU with interrupts disabled.
static mut BSP_TABLES: PerCpuTables = PerCpuTables {
    gdt: GlobalDescriptorTable::empty(),
    tss: {
        let mut tss = TaskStateSegment::new();
        tss.iomap_base = IOMAP_BASE;
        tss
    },
    iomap: [0xff; IOMAP_BYTES],
};

/// Each CPU's tables, by CPU index (null until built).
static TABLES: [AtomicPtr<PerCpuTables>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];

/// The boot CPU's early IST stacks (in `.bss`: kept apart from the tables, which are not zero).
/// Only the CPU uses them, through the TSS.
static mut EARLY_IST: [EarlyStack; IST_COUNT] =
    [const { EarlyStack([0; EARLY_IST_SIZE]) }; IST_COUNT];

/// The calling CPU's tables. Only the owning CPU writes them, with interrupts disabled.
fn mine() -> *mut PerCpuTables {
    let cpu = super::cpu::cpu_id() as usize;
    let p = TABLES
        .get(cpu)
        .map_or(core::ptr::null_mut(), |t| t.load(Ordering::Acquire));
    if p.is_null() { &raw mut BSP_TABLES } else { p }
}

/// Fills the GDT of `tables` (fixed selector layout) and points its TSS at its I/O bitmap and
/// the IST stacks `ist`.
///
/// # Safety
/// `tables` is valid, `'static`, and not loaded on any CPU yet.
unsafe fn build(tables: *mut PerCpuTables, ist: [u64; IST_COUNT]) {
    // SAFETY: per the contract nothing else references the tables while we build them.
    unsafe {
        let tss = &raw mut (*tables).tss;
        for (slot, top) in ist.into_iter().enumerate() {
            (&raw mut (*tss).interrupt_stack_table[slot]).write_unaligned(VirtAddr::new(top));
        }
        let gdt = &mut (*tables).gdt;
        let kcs = gdt.append(Descriptor::kernel_code_segment());
        let kss = gdt.append(Descriptor::kernel_data_segment());
        gdt.append(Descriptor::UserSegment(DescriptorFlags::USER_CODE32.bits()));
        let uss = gdt.append(Descriptor::user_data_segment());
        let ucs = gdt.append(Descriptor::user_code_segment());
        // `repr(C)` puts `iomap` right after the 104-byte, 4-aligned TSS (no padding), which
        // is what `iomap_base` says; the descriptor's limit then covers the whole bitmap.
        debug_assert_eq!(
            (&raw const (*tables).iomap) as usize - tss as usize,
            usize::from(IOMAP_BASE)
        );
        let iomap: &'static [u8] = &(*tables).iomap;
        let Ok(tss_desc) = Descriptor::tss_segment_with_iomap(&*tss, iomap) else {
            panic!("TSS I/O bitmap layout rejected");
        };
        let tsel = gdt.append(tss_desc);
        debug_assert_eq!(
            [kcs.0, kss.0, uss.0, ucs.0, tsel.0],
            [KERNEL_CS, KERNEL_SS, USER_SS, USER_CS, TSS_SEL]
        );
    }
}

/// Loads `tables` on this CPU (GDT, every segment register, TR) and records it as CPU `cpu`'s.
///
/// # Safety
/// Once per CPU, interrupts off; `tables` was built by [`build`] and lives forever.
unsafe fn load(cpu: usize, tables: *mut PerCpuTables) {
    // SAFETY: per the contract the tables are complete and 'static; reloading CS/SS with the
    // kernel selectors of the same layout keeps the running code valid.
    unsafe {
        (*tables).gdt.load_unsafe();
        CS::set_reg(SegmentSelector::new(KERNEL_CS >> 3, PrivilegeLevel::Ring0));
        SS::set_reg(SegmentSelector::new(KERNEL_SS >> 3, PrivilegeLevel::Ring0));
        // Data segments are ignored in long mode; null them so no loader selector lingers.
        let null = SegmentSelector(0);
        DS::set_reg(null);
        ES::set_reg(null);
        FS::set_reg(null);
        GS::set_reg(null);
        load_tss(SegmentSelector(TSS_SEL));
    }
    if let Some(slot) = TABLES.get(cpu) {
        slot.store(tables, Ordering::Release);
    }
}

/// Builds and loads the boot CPU's GDT and TSS, and reloads every segment register.
///
/// # Safety
/// Call once, on the boot CPU, with interrupts disabled, before any IDT gate uses an IST slot.
pub unsafe fn init_bsp() {
    let tables = &raw mut BSP_TABLES;
    let early = &raw mut EARLY_IST;
    // SAFETY: single call on the boot CPU with interrupts off (caller contract): nothing else
    // references `BSP_TABLES` or `EARLY_IST` while we build and load them.
    unsafe {
        let ist = core::array::from_fn(|i| (&raw mut (*early)[i]).add(1) as u64);
        build(tables, ist);
        load(0, tables);
    }
}

/// An AP's tables, built on the heap by the boot CPU with IST stacks `ist`; the AP loads them
/// with [`load_ap`]. `None` when the heap is exhausted.
pub fn new_ap_tables(ist: [u64; IST_COUNT]) -> Option<ApTables> {
    let layout = core::alloc::Layout::new::<PerCpuTables>();
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { alloc::alloc::alloc(layout) }.cast::<PerCpuTables>();
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` is a fresh allocation with the right layout, never freed ('static); each
    // field is initialized in place before `build` reads it.
    unsafe {
        (&raw mut (*p).gdt).write(GlobalDescriptorTable::empty());
        let mut tss = TaskStateSegment::new();
        tss.iomap_base = IOMAP_BASE;
        (&raw mut (*p).tss).write(tss);
        (&raw mut (*p).iomap)
            .cast::<u8>()
            .write_bytes(0xff, IOMAP_BYTES);
        build(p, ist);
    }
    Some(ApTables(p))
}

/// An AP's descriptor tables, ready to be loaded on that AP.
pub struct ApTables(*mut PerCpuTables);

// SAFETY: a pointer to a leaked heap block that is handed from the boot CPU to exactly one AP.
unsafe impl Send for ApTables {}
// SAFETY: as above; the handle is only read (copied) by the AP that loads it.
unsafe impl Sync for ApTables {}

/// Loads `tables` on the calling AP, CPU `cpu`.
///
/// # Safety
/// Once, on that AP, interrupts off.
pub unsafe fn load_ap(cpu: usize, tables: &ApTables) {
    // SAFETY: forwarded; the tables were built by `new_ap_tables`.
    unsafe { load(cpu, tables.0) }
}

/// Points IST slot `ist` (1-based) at `top`. The old stack must not be in use by a handler.
///
/// # Safety
/// The calling CPU's TSS, interrupts disabled; `top` is the 16-byte aligned top of a mapped kernel stack
/// that stays mapped for as long as the slot points at it.
pub unsafe fn set_ist(ist: u8, top: u64) {
    let slot = usize::from(ist) - 1;
    // SAFETY: per the contract nothing else accesses the TSS now; the CPU only reads the slot
    // when delivering an exception, which cannot happen between these instructions for this slot
    // (interrupts off; the NMI/#MC/#DF handlers are not running). The TSS is packed, so its IST
    // slots are only 4-byte aligned: unaligned accesses.
    unsafe {
        let tss = &raw mut (*mine()).tss;
        (&raw mut (*tss).interrupt_stack_table[slot]).write_unaligned(VirtAddr::new(top));
    }
}

/// Sets TSS.rsp0: the stack the CPU switches to on an interrupt or exception from ring 3.
///
/// # Safety
/// The calling CPU's TSS, interrupts disabled; `top` is the 16-byte aligned top of a
/// mapped kernel stack that stays mapped while the slot points at it.
pub unsafe fn set_rsp0(top: u64) {
    // SAFETY: per the contract nothing else accesses the TSS now, and the CPU reads rsp0 only
    // on a ring 3 -> 0 transition, which cannot happen while this ring-0 code runs. Packed
    // struct: unaligned write.
    unsafe {
        let tss = &raw mut (*mine()).tss;
        (&raw mut (*tss).privilege_stack_table[0]).write_unaligned(VirtAddr::new(top));
    }
}

/// TSS.rsp0 (for tests).
pub fn rsp0() -> u64 {
    // SAFETY: reading an aligned-enough u64 of this CPU's TSS (unaligned read: packed).
    unsafe { (&raw const (*mine()).tss.privilege_stack_table[0]).read_unaligned() }.as_u64()
}

/// The current IST stack tops (index 0 = IST1).
pub fn ist_tops() -> [u64; IST_COUNT] {
    let mut out = [0; IST_COUNT];
    for (i, o) in out.iter_mut().enumerate() {
        // SAFETY: reading an aligned u64 of this CPU's TSS; writers run only during boot.
        // (Packed struct: the slot is only 4-byte aligned.)
        *o = unsafe { (&raw const (*mine()).tss.interrupt_stack_table[i]).read_unaligned() }
            .as_u64();
    }
    out
}

/// The task register (the loaded TSS selector).
pub fn task_register() -> u16 {
    let tr: u16;
    // SAFETY: `str` only reads TR.
    unsafe { core::arch::asm!("str {0:x}", out(reg) tr, options(nomem, nostack, preserves_flags)) };
    tr
}

/// Allows (`allow`) or denies ring-3 `in`/`out` on ports `first..first + count` (clipped at
/// port 0xffff) in this CPU's TSS I/O bitmap. Bytes wholly inside the range are written at once.
///
/// # Safety
/// The calling CPU's TSS, interrupts disabled: nothing else writes the bitmap now, and
/// the CPU reads it only for ring-3 port instructions, which cannot run during this call.
pub unsafe fn set_io_ports(first: u16, count: u32, allow: bool) {
    let start = usize::from(first);
    let end = (start + count as usize).min(0x1_0000);
    let tables = mine();
    // SAFETY: per the contract we are the only accessor; the pointer is to this CPU's tables.
    let map = unsafe { &mut (*tables).iomap };
    let mut port = start;
    while port < end {
        let (byte, bit) = (port / 8, port % 8);
        let Some(b) = map.get_mut(byte) else { break };
        if bit == 0 && end - port >= 8 {
            *b = if allow { 0 } else { 0xff };
            port += 8;
        } else {
            if allow {
                *b &= !(1 << bit);
            } else {
                *b |= 1 << bit;
            }
            port += 1;
        }
    }
}
