//! SSE register helpers for tests of the kernel's lazy FPU/SSE switching.
//!
//! Programs are built soft-float (`x86_64-unknown-none`): the compiler never uses x87/SSE
//! registers, so whatever [`load`] puts in `xmm0`..`xmm15` and MXCSR stays there until the
//! thread's next [`load`] — unless the kernel fails to save and restore them across switches,
//! which [`check`] detects. The first SSE instruction of a thread makes the kernel give it an
//! FPU area (#NM, see docs/architecture.md); threads that never call these never pay for one.

/// The value `load(seed)` puts in quadword `i` (two per `xmm` register).
fn pattern(seed: u64, i: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(i as u32)
        .wrapping_add(i as u64)
}

/// MXCSR for `seed`: the default (all exceptions masked) with the rounding mode `seed & 3`.
fn mxcsr(seed: u64) -> u32 {
    0x1F80 | ((seed as u32 & 3) << 13)
}

/// Loads `xmm0`..`xmm15` and MXCSR with values derived from `seed`.
pub fn load(seed: u64) {
    let vals: [u64; 32] = core::array::from_fn(|i| pattern(seed, i));
    let csr = mxcsr(seed);
    // SAFETY: only reads 256 bytes of `vals` and 4 of `csr`. It writes `xmm0`..`xmm15` and
    // MXCSR, which compiled code of this soft-float target never uses (so no clobber is lost;
    // naming them as clobbers would need the SSE target feature); MXCSR keeps every exception
    // masked.
    unsafe {
        core::arch::asm!(
            "ldmxcsr [{c}]",
            "movdqu xmm0, [{p}]",
            "movdqu xmm1, [{p} + 16]",
            "movdqu xmm2, [{p} + 32]",
            "movdqu xmm3, [{p} + 48]",
            "movdqu xmm4, [{p} + 64]",
            "movdqu xmm5, [{p} + 80]",
            "movdqu xmm6, [{p} + 96]",
            "movdqu xmm7, [{p} + 112]",
            "movdqu xmm8, [{p} + 128]",
            "movdqu xmm9, [{p} + 144]",
            "movdqu xmm10, [{p} + 160]",
            "movdqu xmm11, [{p} + 176]",
            "movdqu xmm12, [{p} + 192]",
            "movdqu xmm13, [{p} + 208]",
            "movdqu xmm14, [{p} + 224]",
            "movdqu xmm15, [{p} + 240]",
            p = in(reg) vals.as_ptr(),
            c = in(reg) &raw const csr,
            options(nostack, readonly, preserves_flags),
        );
    }
}

/// True when `xmm0`..`xmm15` and MXCSR's control bits still hold what `load(seed)` put there.
pub fn check(seed: u64) -> bool {
    let mut got = [0u64; 32];
    let mut csr = 0u32;
    // SAFETY: only writes the 256 bytes of `got` and the 4 of `csr`; reads SSE registers and
    // MXCSR, which compiled code never uses (see `load`).
    unsafe {
        core::arch::asm!(
            "stmxcsr [{c}]",
            "movdqu [{p}], xmm0",
            "movdqu [{p} + 16], xmm1",
            "movdqu [{p} + 32], xmm2",
            "movdqu [{p} + 48], xmm3",
            "movdqu [{p} + 64], xmm4",
            "movdqu [{p} + 80], xmm5",
            "movdqu [{p} + 96], xmm6",
            "movdqu [{p} + 112], xmm7",
            "movdqu [{p} + 128], xmm8",
            "movdqu [{p} + 144], xmm9",
            "movdqu [{p} + 160], xmm10",
            "movdqu [{p} + 176], xmm11",
            "movdqu [{p} + 192], xmm12",
            "movdqu [{p} + 208], xmm13",
            "movdqu [{p} + 224], xmm14",
            "movdqu [{p} + 240], xmm15",
            p = in(reg) got.as_mut_ptr(),
            c = in(reg) &raw mut csr,
            options(nostack, preserves_flags),
        );
    }
    // Bits 0..5 are sticky exception flags; the rest is control.
    csr & !0x3F == mxcsr(seed) && got.iter().enumerate().all(|(i, &v)| v == pattern(seed, i))
}
