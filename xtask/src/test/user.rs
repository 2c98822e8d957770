//! The `user` suite: the test image, whose root is servers/test/selftest, reports a `[utest]`
//! stream after the kernel's `[ktest]` stream.

use super::kernel::{parse_tagged, stream_complete};
use super::{Case, check, no_panic};
use crate::qemu::{Captured, Outcome};

/// The test image: the `[ktest]` stream, then the `[utest]` stream of root = selftest, each
/// with its own `done` check; the exit status must be success iff everything passed; no panic.
pub fn judge_user(suite: &str, run: &Captured) -> Vec<Case> {
    let (mut cases, kdone) = parse_tagged(&format!("{suite}::k"), &run.output, "[ktest] ");
    let kcomplete = stream_complete("[ktest] ", &cases, kdone, run);
    let (ucases, udone) = parse_tagged(&format!("{suite}::u"), &run.output, "[utest] ");
    let ucomplete = stream_complete("[utest] ", &ucases, udone, run);
    cases.extend(ucases);
    let all_passed = cases.iter().all(|c| c.passed);
    for (name, r) in [
        ("ktest_completed", kcomplete),
        ("utest_completed", ucomplete),
    ] {
        let detail = r.as_ref().err().cloned().unwrap_or_default();
        cases.push(Case::new(format!("{suite}::<{name}>"), r.is_ok(), detail));
    }
    let expected = if all_passed {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    cases.push(check(
        suite,
        "<exit_status>",
        run.outcome == expected,
        format!("exit {:?}, expected {expected:?}", run.outcome),
    ));
    cases.push(no_panic(suite, run));
    cases
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test::captured;

    #[test]
    fn user_judge_needs_both_streams_and_the_exit() {
        let good = "[ktest] start a\n[ktest] pass a\n[ktest] done passed=1 failed=0\n\
                    [selftest] [utest] start b\n[utest] pass b\n[utest] done passed=1 failed=0\n";
        let cases = judge_user("u", &captured(good, Outcome::Success));
        assert!(cases.iter().all(|c| c.passed), "{cases:?}");
        assert_eq!(cases.len(), 6);
        let no_udone = "[ktest] start a\n[ktest] pass a\n[ktest] done passed=1 failed=0\n\
                        [utest] start b\n";
        let cases = judge_user("u", &captured(no_udone, Outcome::Timeout));
        let failed: Vec<_> = cases
            .iter()
            .filter(|c| !c.passed)
            .map(|c| &c.name)
            .collect();
        assert!(failed.contains(&&"u::u::b".to_string()), "{failed:?}");
        assert!(failed.contains(&&"u::<utest_completed>".to_string()));
        let failing = "[ktest] start a\n[ktest] pass a\n[ktest] done passed=1 failed=0\n\
                       [utest] start b\n[utest] fail b: no\n[utest] done passed=0 failed=1\n";
        let cases = judge_user("u", &captured(failing, Outcome::Failure));
        assert_eq!(cases.iter().filter(|c| !c.passed).count(), 1, "{cases:?}");
        let cases = judge_user("u", &captured(failing, Outcome::Success));
        assert_eq!(cases.iter().filter(|c| !c.passed).count(), 2, "{cases:?}");
    }
}
