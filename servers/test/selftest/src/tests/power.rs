//! utests for `handle_list` (normal use and misuse: wrong kind, missing right, bad pointers)
//! and for the misuse of `system_power` (wrong kind, missing right, unknown op; a process
//! without the authority is refused with `InvalidHandle` in `hw_not_root_refused`). A
//! successful `system_power` ends the machine, so the shell suite's `poweroff` covers that.

use alloc::format;

use hsync_abi::Sysnum;
use libhsync::hw::HwAuthority;
use libhsync::{Error, HandleRecord, Notification, ObjectKind, Process, Rights};

use super::{BadPtr, Ctx, TestFn, TestResult, raw};

/// The suite's tests.
pub const TESTS: &[(&str, TestFn)] = &[
    ("handle_list_normal", handle_list_normal),
    ("handle_list_misuse", handle_list_misuse),
    ("system_power_misuse", system_power_misuse),
];

const EMPTY: HandleRecord = HandleRecord {
    handle: hsync_abi::Handle::NULL,
    kind: ObjectKind::Process,
    rights: Rights::empty(),
    badge: 0,
};

fn handle_list_normal(ctx: &mut Ctx) -> TestResult {
    let p = ok!(Process::create_empty("caps-probe", ctx.prio));
    let mut recs = [EMPTY; 8];
    let before = ok!(p.handles(&mut recs));
    let n = ok!(Notification::create());
    let granted = ok!(p.grant(&n, Rights::SIGNAL | Rights::TRANSFER));
    let after = ok!(p.handles(&mut recs));
    ensure!(
        after == before + 1,
        "{before} handles before the grant, {after} after"
    );
    let found = recs[..after.min(recs.len())]
        .iter()
        .find(|r| r.handle == granted)
        .copied();
    ensure!(
        found
            == Some(HandleRecord {
                handle: granted,
                kind: ObjectKind::Notification,
                rights: Rights::SIGNAL | Rights::TRANSFER,
                badge: 0,
            }),
        "granted {granted:?}, listed {:?}",
        &recs[..after.min(recs.len())]
    );
    // A buffer too small for one record only counts (the pointer is not even looked at).
    let counted = ok!(raw(
        Sysnum::HandleList,
        [p.raw().raw(), BadPtr::Kernel.addr(), 31, 0, 0, 0]
    ));
    ensure!(counted[0] == after as u64, "count only: {}", counted[0]);
    let mut none: [HandleRecord; 0] = [];
    ensure!(ok!(p.handles(&mut none)) == after, "empty slice count");
    ok!(p.kill());
    Ok(())
}

fn handle_list_misuse(ctx: &mut Ctx) -> TestResult {
    let p = ok!(Process::create_empty("caps-misuse", ctx.prio));
    let n = ok!(Notification::create());
    let mut recs = [EMPTY; 4];
    expect_err!(
        raw(
            Sysnum::HandleList,
            [n.raw().raw(), BadPtr::Kernel.addr(), 0, 0, 0, 0]
        ),
        Error::WrongKind
    );
    // Something to write, so that the copy (not just the range check) is reached.
    ok!(p.grant(&n, Rights::SIGNAL));
    let waiter = ok!(p.duplicate(Rights::WAIT));
    expect_err!(waiter.handles(&mut recs), Error::MissingRights);
    for b in BadPtr::ALL {
        let r = raw(Sysnum::HandleList, [p.raw().raw(), b.addr(), 64, 0, 0, 0]);
        if r != Err(Error::BadAddress) {
            return Err(format!("handle_list into {b:?}: {:?}", r.map(|_| ())));
        }
    }
    expect_err!(
        raw(Sysnum::HandleList, [0, BadPtr::Kernel.addr(), 0, 0, 0, 0]),
        Error::InvalidHandle
    );
    ok!(p.kill());
    Ok(())
}

fn system_power_misuse(_ctx: &mut Ctx) -> TestResult {
    let Some(auth) = HwAuthority::root() else {
        return Err("the test root holds no hardware authority".into());
    };
    expect_err!(auth.system_power(2), Error::InvalidArgument);
    expect_err!(auth.system_power(u64::MAX), Error::InvalidArgument);
    let n = ok!(Notification::create());
    expect_err!(
        raw(Sysnum::SystemPower, [n.raw().raw(), 0, 0, 0, 0, 0]),
        Error::WrongKind
    );
    let weak = ok!(auth.duplicate(Rights::TRANSFER));
    expect_err!(
        weak.system_power(hsync_abi::POWER_OFF),
        Error::MissingRights
    );
    expect_err!(
        raw(Sysnum::SystemPower, [0, hsync_abi::POWER_OFF, 0, 0, 0, 0]),
        Error::InvalidHandle
    );
    Ok(())
}
