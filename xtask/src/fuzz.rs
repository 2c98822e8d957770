//! `cargo xtask fuzz`: long runs of the in-guest system-call fuzzer (servers/test/selftest's
//! `fuzz` module as root of the fuzz image), with a summary of calls per second, failures and
//! the seed that reproduces them.

use std::process::ExitCode;
use std::time::Duration;

use crate::Result;
use crate::artifacts;
use crate::qemu::{self, Machine};
use crate::symbolize::Symbolizer;
use crate::test::fuzz as judge;
use crate::tools::step;

/// What to run (the `cargo xtask fuzz` options).
#[derive(clap::Args)]
pub struct FuzzArgs {
    /// The seed (decimal or 0x hex); default: from the clock. Replays a run's calls.
    #[arg(long, value_parser = parse_seed)]
    pub seed: Option<u64>,
    /// Start rounds for this many guest seconds.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Number of CPUs.
    #[arg(long, default_value_t = 2)]
    pub smp: u32,
    /// Worker processes per round.
    #[arg(long, default_value_t = 3)]
    pub workers: u64,
    /// Threads per worker.
    #[arg(long, default_value_t = 2)]
    pub threads: u64,
    /// System calls per thread per round.
    #[arg(long, default_value_t = 20_000)]
    pub calls: u64,
    /// Build with the release profile.
    #[arg(long)]
    pub release: bool,
}

/// Parses a seed: decimal or `0x` hex.
pub fn parse_seed(s: &str) -> std::result::Result<u64, String> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    }
    .map_err(|e| format!("bad seed `{s}`: {e}"))
}

/// Builds, boots the fuzz image, echoes its log and prints the totals.
pub fn run(a: &FuzzArgs) -> Result<ExitCode> {
    let system = artifacts::build(a.release)?;
    let seed = a.seed.unwrap_or_else(judge::fresh_seed);
    let config = format!(
        "seed={seed:#x} seconds={} workers={} threads={} calls={}",
        a.seconds.max(1),
        a.workers,
        a.threads,
        a.calls
    );
    let initfs = system.fuzz_initfs("initfs-fuzz.img", &config)?;
    let boot = qemu::boot_with_initfs(&system, &initfs, "test no-ktest");
    let machine = Machine {
        smp: a.smp,
        memory_mib: 512,
        ..Machine::default()
    };
    step(&format!("fuzzing: {config}, -smp {}", a.smp));
    let cmd = qemu::command(&machine, &boot)?;
    // A round may take its 20 s limit past the end, plus boot and teardown.
    let timeout = Duration::from_secs(a.seconds + 240);
    let symbolizer = Symbolizer::new(&system.kernel);
    let run = qemu::run_captured(cmd, &symbolizer, Some(timeout), true, false)?;
    let cases = judge::judge("fuzz", &run, 1);
    let t = judge::totals(&run.output).unwrap_or_default();
    let secs = (t.ms as f64 / 1000.0).max(0.001);
    println!(
        "fuzz: seed {seed:#x}: {} calls ({} refused by libhsync) in {} rounds, {:.1} guest s, {:.0} calls/s, {} failed rounds",
        t.calls,
        t.refused,
        t.rounds,
        secs,
        t.calls as f64 / secs,
        t.failures
    );
    let failed: Vec<_> = cases.iter().filter(|c| !c.passed).collect();
    for c in &failed {
        eprintln!("FAILED {}: {}", c.name, c.detail);
    }
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "reproduce: cargo xtask fuzz --seed {seed:#x} --seconds {} --smp {} --workers {} --threads {} --calls {}",
            a.seconds, a.smp, a.workers, a.threads, a.calls
        );
        Ok(ExitCode::FAILURE)
    }
}
