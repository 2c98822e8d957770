//! The `fuzz` suite and `cargo xtask fuzz`: the fuzz image (root = servers/test/selftest with
//! an initfs `fuzz` file) runs rounds of random system calls in several processes and threads
//! and reports `[fuzz]` lines (see servers/test/selftest/src/fuzz.rs).

use super::{Case, check, no_panic};
use crate::qemu::{Captured, Outcome};

/// Calls the short round of `cargo xtask test` must make at least.
pub const SUITE_MIN_CALLS: u64 = 100_000;

/// A seed from the clock (printed, so a failing run can be replayed).
pub fn fresh_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        & 0xffff_ffff_ffff
}

/// The short round of `cargo xtask test`: one or more rounds until `SUITE_MIN_CALLS`.
pub fn suite_config(seed: u64) -> String {
    format!("seed={seed:#x} rounds=1 min_calls={SUITE_MIN_CALLS} workers=3 threads=2 calls=20000")
}

/// What the `[fuzz] done` line says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// The run's seed.
    pub seed: u64,
    /// Rounds run.
    pub rounds: u64,
    /// System calls issued.
    pub calls: u64,
    /// Calls libhsync refused to issue (they would have broken the caller's own memory).
    pub refused: u64,
    /// Guest milliseconds.
    pub ms: u64,
    /// Rounds whose counters did not return to the baseline.
    pub failures: u64,
}

fn number(v: &str) -> Option<u64> {
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// The totals of the last `[fuzz] done` line, if any.
pub fn totals(output: &str) -> Option<Totals> {
    let line = output.lines().rev().find(|l| l.contains("[fuzz] done "))?;
    let mut t = Totals::default();
    for word in line.split_whitespace() {
        let Some((k, v)) = word.split_once('=') else {
            continue;
        };
        let v = number(v)?;
        match k {
            "seed" => t.seed = v,
            "rounds" => t.rounds = v,
            "calls" => t.calls = v,
            "refused" => t.refused = v,
            "ms" => t.ms = v,
            "failures" => t.failures = v,
            _ => {}
        }
    }
    Some(t)
}

/// Judges a fuzz run that had to make at least `min_calls` calls.
pub fn judge(suite: &str, run: &Captured, min_calls: u64) -> Vec<Case> {
    let t = totals(&run.output);
    let fails: Vec<&str> = run
        .output
        .lines()
        .filter(|l| l.contains("[fuzz] fail"))
        .collect();
    vec![
        check(
            suite,
            "completed",
            t.is_some(),
            "no `[fuzz] done` line (a hang or a kernel panic)",
        ),
        check(
            suite,
            "counters_back_at_baseline",
            t.is_some_and(|t| t.failures == 0) && fails.is_empty(),
            format!("{} failed rounds: {fails:?}", fails.len()),
        ),
        check(
            suite,
            "enough_calls",
            t.is_some_and(|t| t.calls >= min_calls),
            format!("{:?} calls, want at least {min_calls}", t.map(|t| t.calls)),
        ),
        no_panic(suite, run),
        check(
            suite,
            "exit_success",
            run.outcome == Outcome::Success,
            format!("exit {:?}", run.outcome),
        ),
    ]
}

/// The `fuzz` suite's judge.
pub fn judge_fuzz(suite: &str, run: &Captured) -> Vec<Case> {
    judge(suite, run, SUITE_MIN_CALLS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test::captured;

    #[test]
    fn done_line_is_parsed_and_judged() {
        let out = "[fuzz] start seed=0x2a\n[fuzz] round=0 seed=0x2a calls=120000 baseline=ok\n\
                   [fuzz] done seed=0x2a rounds=1 calls=120000 refused=7 ms=9000 failures=0\n";
        let t = totals(out).unwrap();
        assert_eq!(
            (t.seed, t.calls, t.refused, t.failures),
            (0x2a, 120_000, 7, 0)
        );
        assert!(
            judge("f", &captured(out, Outcome::Success), 100_000)
                .iter()
                .all(|c| c.passed)
        );
        let leak = "[fuzz] fail seed=0x2a round=0: counters\n\
                    [fuzz] done seed=0x2a rounds=1 calls=120000 refused=0 ms=1 failures=1\n";
        let failed = judge("f", &captured(leak, Outcome::Failure), 1)
            .iter()
            .filter(|c| !c.passed)
            .count();
        assert_eq!(failed, 2);
        assert!(!judge("f", &captured("", Outcome::Timeout), 1)[0].passed);
    }
}
