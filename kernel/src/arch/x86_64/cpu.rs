//! CPU identification (CPUID) and the control-register features the kernel turns on.
//!
//! Features are detected once on the boot CPU and cached; nothing in the kernel assumes a feature
//! that CPUID did not report (QEMU's `-cpu qemu64` has almost none of them).

use core::arch::x86_64::{__cpuid_count, CpuidResult};

use spin::Once;
use x86_64::registers::control::{Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};

/// The CPU features the kernel cares about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// x2APIC mode of the local APIC.
    pub x2apic: bool,
    /// Process-context identifiers in CR3.
    pub pcid: bool,
    /// Supervisor-mode execution prevention.
    pub smep: bool,
    /// Supervisor-mode access prevention.
    pub smap: bool,
    /// User-mode instruction prevention (`sgdt`, `sidt`, ... fault in ring 3).
    pub umip: bool,
    /// `rdfsbase`/`wrgsbase` and friends.
    pub fsgsbase: bool,
    /// The TSC runs at a constant rate in every P-, C- and T-state.
    pub invariant_tsc: bool,
    /// 1 GiB pages.
    pub huge_1g: bool,
    /// The no-execute page bit (EFER.NXE).
    pub nx: bool,
    /// `fxsave`/`fxrstor` (CPUID.1:EDX.24).
    pub fxsr: bool,
    /// SSE (CPUID.1:EDX.25).
    pub sse: bool,
}

fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    // CPUID exists on every x86_64 CPU and has no side effects.
    #[allow(
        unused_unsafe,
        reason = "`__cpuid_count` is safe on newer toolchains only"
    )]
    // SAFETY: CPUID is always available in long mode and only reads identification data.
    unsafe {
        __cpuid_count(leaf, subleaf)
    }
}

fn bit(reg: u32, n: u32) -> bool {
    reg & (1 << n) != 0
}

impl Features {
    fn detect() -> Self {
        let max_basic = cpuid(0, 0).eax;
        let max_ext = cpuid(0x8000_0000, 0).eax;
        let leaf1 = cpuid(1, 0);
        let leaf7 = if max_basic >= 7 {
            cpuid(7, 0)
        } else {
            CpuidResult {
                eax: 0,
                ebx: 0,
                ecx: 0,
                edx: 0,
            }
        };
        let ext1 = if max_ext >= 0x8000_0001 {
            cpuid(0x8000_0001, 0).edx
        } else {
            0
        };
        let ext7 = if max_ext >= 0x8000_0007 {
            cpuid(0x8000_0007, 0).edx
        } else {
            0
        };
        Self {
            x2apic: bit(leaf1.ecx, 21),
            pcid: bit(leaf1.ecx, 17),
            fsgsbase: bit(leaf7.ebx, 0),
            smep: bit(leaf7.ebx, 7),
            smap: bit(leaf7.ebx, 20),
            umip: bit(leaf7.ecx, 2),
            nx: bit(ext1, 20),
            huge_1g: bit(ext1, 26),
            invariant_tsc: bit(ext7, 8),
            fxsr: bit(leaf1.edx, 24),
            sse: bit(leaf1.edx, 25),
        }
    }

    /// `(name, present)` pairs, in log order.
    pub fn list(&self) -> [(&'static str, bool); 9] {
        [
            ("x2apic", self.x2apic),
            ("pcid", self.pcid),
            ("smep", self.smep),
            ("smap", self.smap),
            ("umip", self.umip),
            ("fsgsbase", self.fsgsbase),
            ("invariant-tsc", self.invariant_tsc),
            ("1g-pages", self.huge_1g),
            ("nx", self.nx),
        ]
    }
}

static FEATURES: Once<Features> = Once::new();

/// The boot CPU's features (detected on first use).
pub fn features() -> &'static Features {
    FEATURES.call_once(Features::detect)
}

/// The CPU's brand string (CPUID 0x80000002..4), trimmed; empty when not reported.
pub fn brand(buf: &mut [u8; 48]) -> &str {
    if cpuid(0x8000_0000, 0).eax < 0x8000_0004 {
        return "";
    }
    for (i, leaf) in (0x8000_0002u32..=0x8000_0004).enumerate() {
        let r = cpuid(leaf, 0);
        for (j, reg) in [r.eax, r.ebx, r.ecx, r.edx].into_iter().enumerate() {
            buf[i * 16 + j * 4..i * 16 + j * 4 + 4].copy_from_slice(&reg.to_le_bytes());
        }
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    core::str::from_utf8(&buf[..len]).unwrap_or("").trim()
}

/// Sets EFER.NXE when the CPU has NX, so the memory manager may use the NX bit. (Limine already
/// does this; the shim and other loaders might not.)
pub fn enable_nx() {
    if features().nx {
        // SAFETY: setting NXE only gives meaning to page-table bit 63, which no live mapping
        // sets unless NX is enabled; it changes no existing translation.
        unsafe { Efer::update(|f| f.insert(EferFlags::NO_EXECUTE_ENABLE)) };
    }
}

/// Turns on the CR4 protections the CPU has (SMEP, SMAP, UMIP) and returns what is now on.
///
/// Called once the kernel runs on its own page tables, whose kernel mappings are supervisor-only:
/// with SMEP on, executing a user page in ring 0 faults; with SMAP on, touching one does (user
/// copies will bracket their accesses with `stac`/`clac`).
pub fn enable_protections() -> Cr4Flags {
    let f = features();
    let mut want = Cr4Flags::empty();
    want.set(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION, f.smep);
    want.set(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION, f.smap);
    want.set(Cr4Flags::USER_MODE_INSTRUCTION_PREVENTION, f.umip);
    // SAFETY: only bits CPUID reported are set (else #GP); none of them changes how the kernel's
    // own supervisor-only mappings behave, and no user mappings exist yet.
    unsafe { Cr4::update(|cr4| cr4.insert(want)) };
    Cr4::read() & want
}

/// This CPU's index (0 = the boot CPU), from the per-CPU block.
pub fn cpu_id() -> u32 {
    super::percpu::cpu_index()
}
