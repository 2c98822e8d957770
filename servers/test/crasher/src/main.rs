//! `crasher`: root's test server, booted only by the `system-restart` suite (with a test
//! manifest: `echo` = the template server, exporting `template`; `crasher` importing it).
//!
//! First life: reads its start layout, calls `echo` through the imported (badged) endpoint,
//! reports ready, then overflows its stack on purpose. Root must log the fault and restart it.
//! Second life: checks root's `status` (one restart, one fault), `connect` (a fresh endpoint;
//! an unknown protocol is refused), `kill echo` (the old endpoint then fails with
//! `ServerDied`, `connect` says `NotRunning`), `restart echo` (connect + call work again), and
//! prints `crasher: all checks passed`. Every check logs `crasher: FAIL ...` when it fails.
//!
//! Started under the name `mute` it never reports ready: boot must go on without it after
//! root's ready timeout.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use hsync_root_api::{ProtocolError, RootClient, RootError, ServerStatus, Start, State};
use hsync_template_api::TemplateClient;
use libhsync::{IpcBuf, Notification, StartArgs};

libhsync::entry!(main);

fn main(mut args: StartArgs) -> i32 {
    let Some(mut start) = Start::take(&mut args) else {
        log::error!("crasher: FAIL not started by root with the start layout");
        return 1;
    };
    let ipc = &mut args.ipc;
    // Started as `mute` (same image): never report ready; root must go on without it.
    if let Some(root) = start.root() {
        let me = root.status(ipc, start.index).ok();
        if me
            .and_then(|b| ServerStatus::decode(&b))
            .is_some_and(|s| s.name() == "mute")
        {
            log::info!("mute: never reporting ready");
            return park();
        }
        return life(start, root, ipc);
    }
    log::error!("crasher: FAIL no root endpoint");
    1
}

fn park() -> i32 {
    match Notification::create().and_then(|n| n.wait()) {
        Ok(_) | Err(_) => 0,
    }
}

fn life(mut start: Start, root: RootClient, ipc: &mut IpcBuf) -> i32 {
    let (Some(root), Some(echo)) = (Some(root), start.import("template")) else {
        log::error!("crasher: FAIL root or template endpoint missing");
        return 1;
    };
    if start.import("template").is_some() || start.export(0).is_some() {
        log::error!("crasher: FAIL a handle was given twice or an export appeared");
    }
    let echo = TemplateClient::new(echo);
    let badge = start.badge();
    match echo.whoami(ipc) {
        Ok(b) if b == badge => log::info!("crasher: echo sees badge {b}"),
        other => log::error!("crasher: FAIL whoami: {other:?}, expected {badge}"),
    }
    if !hsync_root_api::report_ready(&root, ipc) {
        return 1;
    }
    let me = match root.status(ipc, start.index) {
        Ok(b) => ServerStatus::decode(&b),
        Err(e) => {
            log::error!("crasher: FAIL status: {e}");
            return 1;
        }
    };
    let Some(me) = me else {
        log::error!("crasher: FAIL status did not decode");
        return 1;
    };
    if me.restarts == 0 {
        log::info!("crasher: overflowing the stack on purpose");
        let depth = recurse(core::hint::black_box(1));
        log::error!("crasher: FAIL still alive after recursing {depth} deep");
        return 1;
    }
    log::info!(
        "crasher: restarted: {} {} restarts={} faults={}",
        me.name(),
        me.state.name(),
        me.restarts,
        me.faults
    );
    if checks(&root, echo, ipc) {
        log::info!("crasher: all checks passed");
    }
    park()
}

fn recurse(n: u64) -> u64 {
    if n == 0 {
        return 0; // never: `n` only grows
    }
    let pad = core::hint::black_box([n; 64]);
    recurse(pad[63] + 1) + pad[0]
}

fn fail(what: &str) -> bool {
    log::error!("crasher: FAIL {what}");
    false
}

fn checks(root: &RootClient, old: TemplateClient, ipc: &mut IpcBuf) -> bool {
    let mut ok = true;
    // `echo` still runs: a fresh endpoint works.
    match root.connect(ipc, "template") {
        Ok(ep) => match TemplateClient::new(ep).ping(ipc, 1) {
            Ok(2) => {}
            _ => ok &= fail("ping over a connected endpoint"),
        },
        Err(e) => {
            ok &= fail(if matches!(e, ProtocolError::App(_)) {
                "connect refused"
            } else {
                "connect failed"
            })
        }
    }
    if !matches!(
        root.connect(ipc, "nothing"),
        Err(ProtocolError::App(RootError::NotImported))
    ) {
        ok &= fail("connect to an unimported protocol was not refused");
    }
    // Kill echo: the old endpoint dies with it, and root says it is not running.
    if root.kill(ipc, "echo").is_err() {
        return fail("kill echo");
    }
    let mut died = false;
    for _ in 0..1000 {
        match old.ping(ipc, 1) {
            Err(ProtocolError::ServerDied) => {
                died = true;
                break;
            }
            _ => libhsync::yield_now(),
        }
    }
    ok &= died || fail("calls to a killed server did not fail with ServerDied");
    let mut stopped = false;
    for _ in 0..1000 {
        if let Ok(b) = root.status(ipc, 0)
            && ServerStatus::decode(&b).is_some_and(|s| s.state == State::Stopped)
        {
            stopped = true;
            break;
        }
        libhsync::yield_now();
    }
    ok &= stopped || fail("echo not reported stopped after kill");
    if !matches!(
        root.connect(ipc, "template"),
        Err(ProtocolError::App(RootError::NotRunning))
    ) {
        ok &= fail("connect to a stopped server did not say NotRunning");
    }
    if root.kill(ipc, "nobody") != Err(ProtocolError::App(RootError::NoSuchServer)) {
        ok &= fail("kill of an unknown server was not refused");
    }
    // Restart it: connect and call work again.
    if root.restart(ipc, "echo").is_err() {
        return fail("restart echo");
    }
    match root.connect(ipc, "template") {
        Ok(ep) => {
            if TemplateClient::new(ep).ping(ipc, 41) != Ok(42) {
                ok &= fail("ping after restart");
            }
        }
        Err(_) => ok &= fail("connect after restart"),
    }
    ok
}
