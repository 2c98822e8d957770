//! Starting the application processors (APs) and measuring their TSC offsets.
//!
//! The kernel starts every AP itself with INIT-SIPI-SIPI and a trampoline below 1 MiB, on every
//! boot path (shim or Limine: the kernel never asks for Limine's MP request, so the APs are
//! still waiting for a SIPI). Why and how: `docs/smp.md`.
//!
//! [`start_aps`] (boot CPU): reads the CPUs from the MADT, writes the trampoline and its page
//! tables into the frames `mm` reserved below 1 MiB, and starts the APs one at a time. Before
//! each SIPI it prepares everything the AP needs (GDT/TSS with guarded IST stacks, a guarded
//! boot stack); the AP runs [`ap_entry`], loads them, sets up its CPU like the boot CPU, says it
//! is alive and answers the TSC ping-pong ([`measure_offset`]). Then it waits in
//! [`ap_idle`] until the scheduler takes it.

use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};

use acpi::AcpiTables;
use acpi::madt::{Madt, MadtEntry};
use spin::Mutex;

use super::percpu::{self, MAX_CPUS};
use super::{apic, cpu, gdt, time, trap, user};
use crate::boot::BootInfo;

// The trampoline. Copied to a page P below 1 MiB and entered by a SIPI in real mode at P:0 with
// CS = P >> 4. EBX holds P from the first instructions on (registers survive the mode changes);
// the far pointers, the GDT base and the parameter block are patched by `write_trampoline`.
global_asm!(
    r#"
    .section .text.hsync_ap_trampoline, "ax", @progbits
    .globl hsync_ap_start
    .globl hsync_ap_end
    .p2align 4
    .code16
hsync_ap_start:
    cli
    cld
    xorl %eax, %eax
    movw %cs, %ax
    movw %ax, %ds
    shll $4, %eax
    movl %eax, %ebx
    lgdtl (hsync_ap_gdtr - hsync_ap_start)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl *(hsync_ap_pm_ptr - hsync_ap_start)
    .code32
hsync_ap_pm:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl (hsync_ap_cr3 - hsync_ap_start)(%ebx), %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx
    movl (hsync_ap_efer - hsync_ap_start)(%ebx), %eax
    xorl %edx, %edx
    wrmsr
    movl %cr0, %eax
    orl $0x80010001, %eax
    movl %eax, %cr0
    ljmpl *(hsync_ap_lm_ptr - hsync_ap_start)(%ebx)
    .code64
hsync_ap_lm:
    movl %ebx, %ebx
    movq (hsync_ap_stack - hsync_ap_start)(%rbx), %rsp
    movq (hsync_ap_arg - hsync_ap_start)(%rbx), %rdi
    movq (hsync_ap_entry - hsync_ap_start)(%rbx), %rax
    xorl %ebp, %ebp
    jmpq *%rax
    .p2align 3
hsync_ap_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00af9a000000ffff
hsync_ap_gdtr:
    .word 31
    .long 0
    .p2align 3
hsync_ap_pm_ptr:
    .long 0
    .word 0x08
    .p2align 3
hsync_ap_lm_ptr:
    .long 0
    .word 0x18
    .p2align 3
hsync_ap_cr3:
    .quad 0
hsync_ap_efer:
    .quad 0
hsync_ap_stack:
    .quad 0
hsync_ap_arg:
    .quad 0
hsync_ap_entry:
    .quad 0
hsync_ap_end:
    .text
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    static hsync_ap_start: u8;
    static hsync_ap_end: u8;
    static hsync_ap_pm: u8;
    static hsync_ap_lm: u8;
    static hsync_ap_gdt: u8;
    static hsync_ap_gdtr: u8;
    static hsync_ap_pm_ptr: u8;
    static hsync_ap_lm_ptr: u8;
    static hsync_ap_cr3: u8;
    static hsync_ap_efer: u8;
    static hsync_ap_stack: u8;
    static hsync_ap_arg: u8;
    static hsync_ap_entry: u8;
}

/// Offset of a trampoline label from its start.
fn off(label: *const u8) -> usize {
    label as usize - (&raw const hsync_ap_start) as usize
}

/// Pages of an AP's boot stack (its idle thread runs on it).
const AP_STACK_PAGES: usize = 16;
/// How long the boot CPU waits for an AP to come alive after its SIPIs.
const ALIVE_TIMEOUT_NS: u64 = 1_000_000_000;
/// Rounds of the TSC ping-pong.
const SYNC_ROUNDS: u64 = 64;

/// What the boot CPU prepared for the AP being started.
struct ApBoot {
    cpu: usize,
    tables: gdt::ApTables,
}

static AP_BOOT: Mutex<Option<ApBoot>> = Mutex::new(None);
/// The index of the last AP that came alive.
static ALIVE: AtomicU32 = AtomicU32::new(0);
/// Number of CPUs running (the boot CPU included).
static ONLINE: AtomicU32 = AtomicU32::new(1);
/// A panic is stopping every CPU (NMIs then halt instead of reporting).
static STOPPING: AtomicBool = AtomicBool::new(false);
/// Each CPU's TSC minus CPU 0's, in cycles (measured at boot).
static TSC_OFFSET: [AtomicI64; MAX_CPUS] = [const { AtomicI64::new(0) }; MAX_CPUS];

/// The TSC ping-pong: odd values are the boot CPU's requests, even ones the AP's answers.
#[repr(C, align(64))]
struct SyncLine {
    seq: AtomicU64,
    tsc: AtomicU64,
}

static SYNC: SyncLine = SyncLine {
    seq: AtomicU64::new(0),
    tsc: AtomicU64::new(0),
};

/// CPUs running.
pub fn online() -> u32 {
    ONLINE.load(Ordering::Acquire)
}

/// `cpu`'s TSC offset from CPU 0 in cycles (0 when within the measurement error).
pub fn tsc_offset(cpu: usize) -> i64 {
    TSC_OFFSET.get(cpu).map_or(0, |o| o.load(Ordering::Relaxed))
}

/// True once a panic started stopping the CPUs.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::Acquire)
}

/// Stops every other CPU (NMI; their handlers halt). Once.
pub fn stop_others() {
    if !STOPPING.swap(true, Ordering::AcqRel) && online() > 1 {
        apic::nmi_others();
    }
}

/// The local APIC ids of the CPUs the MADT lists as enabled or online-capable, in MADT order.
fn madt_cpus(info: &BootInfo, out: &mut [u32; MAX_CPUS]) -> Result<usize, &'static str> {
    let rsdp = info.rsdp_phys.ok_or("no RSDP")?;
    // SAFETY: `rsdp` is the physical RSDP address the loader reported; the crate validates it.
    let tables = unsafe { AcpiTables::from_rsdp(super::power::Mapper, rsdp as usize) }
        .map_err(|_| "bad RSDP/RSDT")?;
    let madt = tables.find_table::<Madt>().map_err(|_| "no MADT")?;
    let mut n = 0;
    for entry in madt.get().entries() {
        let (id, flags) = match entry {
            MadtEntry::LocalApic(a) => (u32::from(a.apic_id), a.flags),
            MadtEntry::LocalX2Apic(a) => (a.x2apic_id, a.flags),
            _ => continue,
        };
        // Bit 0: enabled; bit 1: online capable.
        if flags & 0b11 == 0 || out[..n].contains(&id) {
            continue;
        }
        let Some(slot) = out.get_mut(n) else {
            log::warn!(target: "smp", "more than {MAX_CPUS} CPUs; ignoring APIC id {id}");
            continue;
        };
        *slot = id;
        n += 1;
    }
    Ok(n)
}

/// Busy-waits `ns` nanoseconds of TSC time.
fn delay(ns: u64) {
    let Some(hz) = time::tsc_hz() else {
        for _ in 0..ns {
            core::hint::spin_loop();
        }
        return;
    };
    let t0 = time::rdtsc();
    let wait = (u128::from(hz) * u128::from(ns) / 1_000_000_000) as u64;
    while time::rdtsc().wrapping_sub(t0) < wait {
        core::hint::spin_loop();
    }
}

/// Writes the trampoline code and its page tables into the reserved low frames at `base`;
/// returns the SIPI vector (the code page number).
fn write_trampoline(base: u64) -> Option<u8> {
    let code = (&raw const hsync_ap_start) as usize;
    let len = (&raw const hsync_ap_end) as usize - code;
    if len > 4096 || base >= 0x10_0000 {
        return None;
    }
    let virt = |p: u64| crate::mm::phys_to_virt(p) as *mut u64;
    let (pml4, pdpt, pd) = (base + 0x1000, base + 0x2000, base + 0x3000);
    let root = crate::mm::vmm::root();
    // SAFETY: `base..base + 4 pages` are frames `mm` reserved for this at boot (nobody else
    // owns them) and the HHDM maps them; the kernel's PML4 is read only. The code bytes are
    // the assembled trampoline above, `len` long.
    unsafe {
        let dst = crate::mm::phys_to_virt(base) as *mut u8;
        core::ptr::copy_nonoverlapping(code as *const u8, dst, len);
        let patch32 = |label: *const u8, value: u64| {
            dst.add(off(label))
                .cast::<u32>()
                .write_unaligned(value as u32)
        };
        let gdtr_base = dst.add(off(&raw const hsync_ap_gdtr) + 2);
        gdtr_base
            .cast::<u32>()
            .write_unaligned((base + off(&raw const hsync_ap_gdt) as u64) as u32);
        patch32(
            &raw const hsync_ap_pm_ptr,
            base + off(&raw const hsync_ap_pm) as u64,
        );
        patch32(
            &raw const hsync_ap_lm_ptr,
            base + off(&raw const hsync_ap_lm) as u64,
        );
        // Identity map of the first 2 MiB (one large page) + the kernel's upper half.
        core::ptr::write_bytes(virt(pml4), 0, 512 * 3);
        virt(pd).write(0x83);
        virt(pdpt).write(pd | 3);
        virt(pml4).write(pdpt | 3);
        let kernel = virt(root);
        for i in 256..512 {
            virt(pml4).add(i).write(kernel.add(i).read());
        }
        let set = |label: *const u8, value: u64| dst.add(off(label)).cast::<u64>().write(value);
        set(&raw const hsync_ap_cr3, pml4);
        // LME and NXE (if the kernel uses NX); LMA is set by the CPU.
        let efer = x86_64::registers::model_specific::Efer::read_raw() & (0x100 | 0x800);
        set(&raw const hsync_ap_efer, efer);
        set(&raw const hsync_ap_entry, ap_entry as *const () as u64);
    }
    u8::try_from(base >> 12).ok()
}

/// Sets the per-AP words of the trampoline: its stack and CPU index.
fn set_ap_params(base: u64, stack_top: u64, cpu: usize) {
    let dst = crate::mm::phys_to_virt(base) as *mut u8;
    // SAFETY: the trampoline page written by `write_trampoline`; no AP runs it right now (they
    // are started one at a time and each has left it before the next is prepared).
    unsafe {
        dst.add(off(&raw const hsync_ap_stack))
            .cast::<u64>()
            .write(stack_top);
        dst.add(off(&raw const hsync_ap_arg))
            .cast::<u64>()
            .write(cpu as u64);
    }
}

/// Starts every AP the MADT lists, one at a time, and logs the `smp:` line.
pub fn start_aps(info: &BootInfo) {
    let bsp_apic = percpu::cpu_local().apic_id();
    let mut ids = [0u32; MAX_CPUS];
    let n = match madt_cpus(info, &mut ids) {
        Ok(n) => n,
        Err(e) => {
            log::warn!(target: "smp", "no CPU list ({e}); running on the boot CPU alone");
            0
        }
    };
    let aps = ids[..n].iter().copied().filter(|&id| id != bsp_apic);
    let mut started = [0u32; MAX_CPUS];
    let mut count = 0usize;
    let trampoline = if n > 1 {
        crate::mm::low_frames().and_then(|base| Some((base, write_trampoline(base)?)))
    } else {
        None
    };
    if n > 1 && trampoline.is_none() {
        log::warn!(target: "smp", "no usable page below 1 MiB for the AP trampoline; APs stay off");
    }
    if let Some((base, vector)) = trampoline {
        for id in aps {
            let cpu = count + 1;
            if cpu >= MAX_CPUS {
                break;
            }
            match start_one(base, vector, cpu, id) {
                Ok(()) => {
                    started[count] = id;
                    count += 1;
                }
                Err(e) => log::warn!(target: "smp", "CPU with APIC id {id} did not start: {e}"),
            }
        }
    }
    let skew = (1..=count)
        .map(|c| tsc_offset(c).unsigned_abs())
        .max()
        .unwrap_or(0);
    log::info!(
        target: "smp",
        "{} CPUs online (bsp apic {bsp_apic}, aps{}), max TSC offset {skew} cycles (measured to +-{} cycles)",
        count + 1,
        ApList(&started[..count]),
        MAX_ERROR.load(Ordering::Relaxed),
    );
}

/// ` 1 2 3` (or ` none`).
struct ApList<'a>(&'a [u32]);

impl core::fmt::Display for ApList<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0.is_empty() {
            return f.write_str(" none");
        }
        for id in self.0 {
            write!(f, " {id}")?;
        }
        Ok(())
    }
}

/// Prepares and starts CPU `cpu` (APIC id `apic_id`), waits for it and measures its TSC.
fn start_one(base: u64, vector: u8, cpu: usize, apic_id: u32) -> Result<(), &'static str> {
    let mut ist = [0u64; gdt::IST_COUNT];
    for top in &mut ist {
        *top = crate::mm::alloc_kernel_stack(super::IST_STACK_PAGES)
            .ok_or("out of memory for IST stacks")?
            .top;
    }
    let tables = gdt::new_ap_tables(ist).ok_or("out of memory for the GDT/TSS")?;
    let stack = crate::mm::alloc_kernel_stack(AP_STACK_PAGES).ok_or("out of memory for a stack")?;
    *AP_BOOT.lock() = Some(ApBoot { cpu, tables });
    set_ap_params(base, stack.top, cpu);
    ALIVE.store(0, Ordering::Release);
    apic::send_init(apic_id);
    delay(10_000_000);
    apic::send_startup(apic_id, vector);
    delay(200_000);
    if ALIVE.load(Ordering::Acquire) != cpu as u32 {
        apic::send_startup(apic_id, vector);
    }
    let t0 = time::uptime_ns();
    while ALIVE.load(Ordering::Acquire) != cpu as u32 {
        if time::uptime_ns().saturating_sub(t0) > ALIVE_TIMEOUT_NS {
            AP_BOOT.lock().take();
            return Err("no answer within 1 s");
        }
        core::hint::spin_loop();
    }
    let offset = measure_offset();
    if let Some(slot) = TSC_OFFSET.get(cpu) {
        slot.store(offset, Ordering::Relaxed);
    }
    ONLINE.fetch_add(1, Ordering::AcqRel);
    Ok(())
}

/// The boot CPU's side of the TSC ping-pong with the AP that just came alive: the AP's TSC
/// minus the midpoint of the boot CPU's before/after reads, from the round with the shortest
/// round trip.
fn measure_offset() -> i64 {
    let mut best = (u64::MAX, 0i64);
    for round in 1..=SYNC_ROUNDS {
        let t0 = time::rdtsc();
        SYNC.seq.store(2 * round - 1, Ordering::Release);
        while SYNC.seq.load(Ordering::Acquire) != 2 * round {
            core::hint::spin_loop();
        }
        let t1 = time::rdtsc();
        let theirs = SYNC.tsc.load(Ordering::Relaxed);
        let rtt = t1.wrapping_sub(t0);
        if rtt < best.0 {
            let mid = t0.wrapping_add(rtt / 2);
            best = (rtt, theirs.wrapping_sub(mid) as i64);
        }
    }
    SYNC.seq.store(0, Ordering::Release);
    // The AP read its TSC somewhere inside the round trip: an offset within half of it is
    // measurement noise, not skew (QEMU's TCG shares one TSC between vCPUs).
    let (rtt, offset) = best;
    MAX_ERROR.fetch_max(rtt / 2, Ordering::Relaxed);
    if offset.unsigned_abs() <= rtt / 2 {
        0
    } else {
        offset
    }
}

/// The largest measurement uncertainty of the TSC offsets (half the best round trip).
static MAX_ERROR: AtomicU64 = AtomicU64::new(0);

/// The AP's side of the ping-pong.
fn answer_offset() {
    for round in 1..=SYNC_ROUNDS {
        while SYNC.seq.load(Ordering::Acquire) != 2 * round - 1 {
            core::hint::spin_loop();
        }
        SYNC.tsc.store(time::rdtsc(), Ordering::Relaxed);
        SYNC.seq.store(2 * round, Ordering::Release);
    }
}

/// First Rust code of an AP: on its boot stack, the trampoline's page tables, interrupts off.
extern "C" fn ap_entry(cpu: u64) -> ! {
    let cpu = cpu as usize;
    // SAFETY: the kernel's own PML4 maps the kernel half, which is all this code, its stack
    // and its data use (the trampoline tables share those entries).
    unsafe { super::paging::activate(crate::mm::vmm::root()) };
    let Some(boot) = AP_BOOT.lock().take().filter(|b| b.cpu == cpu) else {
        panic!("AP {cpu} started without its boot data");
    };
    // SAFETY: once on this AP, interrupts off; the tables were built for it.
    unsafe { gdt::load_ap(cpu, &boot.tables) };
    // SAFETY: once on this AP, interrupts off, after the GDT load (which clears the GS base)
    // and before anything reads the CPU index; `cpu` is the unique index the boot CPU gave it.
    unsafe { percpu::init(cpu) };
    trap::init();
    cpu::enable_nx();
    super::paging::enable_global_pages();
    super::copy_pat_from_bsp();
    cpu::enable_protections();
    user::init_cpu();
    ALIVE.store(cpu as u32, Ordering::Release);
    answer_offset();
    ap_idle()
}

/// Where an AP waits until the scheduler is up ([`release_aps`]), then joins it.
fn ap_idle() -> ! {
    while !SCHED_READY.load(Ordering::Acquire) {
        poll_call();
        core::hint::spin_loop();
    }
    match AP_MAIN.get() {
        Some(main) => main(),
        None => super::power::halt_forever(),
    }
}

/// Set once the scheduler can take the APs.
static SCHED_READY: AtomicBool = AtomicBool::new(false);
/// What the APs run then (`sched::ap_main`).
static AP_MAIN: spin::Once<fn() -> !> = spin::Once::new();

/// Lets the APs join the scheduler: each runs `main` (with interrupts off, lock not held).
pub fn release_aps(main: fn() -> !) {
    AP_MAIN.call_once(|| main);
    SCHED_READY.store(true, Ordering::Release);
}

// ---------------------------------------------------------------------------------------------
// Remote calls: a request the big-lock holder makes to other CPUs and waits for (TLB
// shootdown, FPU save). A target answers in its IPI handler or while it spins for the lock.

/// The reschedule IPI: the target runs its scheduler (handled under the big lock).
pub const RESCHEDULE_VECTOR: u64 = 0xf0;
/// The remote-call IPI (handled without the big lock).
pub const CALL_VECTOR: u64 = 0xf1;

/// What a remote call asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// Invalidate `pages` pages at `va` of address space `cr3` (0 = the kernel half, global).
    Flush { cr3: u64, va: u64, pages: u64 },
    /// Stop using address space `cr3` (load the kernel's PML4 if it is loaded).
    Leave { cr3: u64 },
    /// Save the FPU registers of thread `thread` if this CPU holds them.
    FpuSave { thread: usize },
    /// Panic (the `panic-test=ap` check that a panic on an AP stops every CPU).
    Panic,
}

#[repr(C, align(64))]
struct CallSlot {
    op: AtomicU64,
    a: AtomicU64,
    b: AtomicU64,
    c: AtomicU64,
}

static CALLS: [CallSlot; MAX_CPUS] = [const {
    CallSlot {
        op: AtomicU64::new(0),
        a: AtomicU64::new(0),
        b: AtomicU64::new(0),
        c: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// Bit `i` set for every running CPU but this one.
pub fn others() -> u64 {
    let n = online().min(MAX_CPUS as u32);
    let all = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
    all & !(1u64 << cpu::cpu_id())
}

/// Runs `call` on every CPU in `cpus` (a mask; this CPU's bit is ignored) and waits until all
/// of them did. The caller holds the big kernel lock (so one call is in flight at a time).
pub fn call_many(cpus: u64, call: Call) {
    let cpus = cpus & others();
    if cpus == 0 {
        return;
    }
    let (op, a, b, c) = match call {
        Call::Flush { cr3, va, pages } => (1, cr3, va, pages),
        Call::Leave { cr3 } => (2, cr3, 0, 0),
        Call::FpuSave { thread } => (3, thread as u64, 0, 0),
        Call::Panic => (4, 0, 0, 0),
    };
    for i in (0..MAX_CPUS).filter(|i| cpus & (1 << i) != 0) {
        let slot = &CALLS[i];
        slot.a.store(a, Ordering::Relaxed);
        slot.b.store(b, Ordering::Relaxed);
        slot.c.store(c, Ordering::Relaxed);
        slot.op.store(op, Ordering::Release);
        if let Some(block) = percpu::cpu_block(i) {
            apic::send_ipi(block.apic_id(), CALL_VECTOR as u8);
        }
    }
    for i in (0..MAX_CPUS).filter(|i| cpus & (1 << i) != 0) {
        while CALLS[i].op.load(Ordering::Acquire) != 0 {
            core::hint::spin_loop();
        }
    }
}

/// Answers this CPU's pending remote call, if any (the IPI handler, and the big lock's spin).
pub fn poll_call() {
    let Some(slot) = CALLS.get(cpu::cpu_id() as usize) else {
        return;
    };
    let op = slot.op.load(Ordering::Acquire);
    if op == 0 {
        return;
    }
    let (a, b, c) = (
        slot.a.load(Ordering::Relaxed),
        slot.b.load(Ordering::Relaxed),
        slot.c.load(Ordering::Relaxed),
    );
    match op {
        1 => user::flush_local(a, b, c),
        2 => user::leave_local(a),
        3 => super::fpu::save_if_owner(a as usize),
        4 => panic!(
            "panic-test: deliberate panic on an AP (cpu {})",
            cpu::cpu_id()
        ),
        _ => {}
    }
    slot.op.store(0, Ordering::Release);
}

/// Reschedule IPIs sent to / handled by each CPU (debug counters, read with gdb).
pub static KICKS_SENT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// See [`KICKS_SENT`].
pub static KICKS_SEEN: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Asks CPU `cpu` to run its scheduler (a wake-up put work on its queue).
pub fn kick(cpu: usize) {
    if cpu != cpu::cpu_id() as usize
        && let Some(block) = percpu::cpu_block(cpu)
    {
        if let Some(c) = KICKS_SENT.get(cpu) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        apic::send_ipi(block.apic_id(), RESCHEDULE_VECTOR as u8);
    }
}
