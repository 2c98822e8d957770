//! Helper roles: this image spawned again by the test or bench root with a role in word 0.

use libhsync::process::{self, Spawn};
use libhsync::{Endpoint, Error, Msg, Notification, ObjectKind, StartArgs, fault};

/// Echo server on the endpoint in handle 0 (see the `LABEL_*` protocol).
pub const ECHO: u64 = 1;
/// Raise the fault in word 1 (a [`libhsync::FaultKind`] number).
pub const FAULT: u64 = 2;
/// Exit with the code in word 1.
pub const EXIT: u64 = 3;
/// Wait forever (to be killed).
pub const SLEEP: u64 = 4;
/// Bench server: `reply_recv` loop answering `w0 + 1`, on the endpoint in handle 0.
pub const BENCH_SERVER: u64 = 5;

/// Echo: reply with every register word plus one.
pub const LABEL_ECHO: u64 = 1;
/// Long: reply with every word (up to 64, through the IPC buffer) plus one.
pub const LABEL_LONG: u64 = 2;
/// Handle: the message carries one handle; reply `(kind, rights)` and, if it is a
/// notification, signal it with `w0`.
pub const LABEL_HANDLE: u64 = 3;
/// Badge: reply with the badge the message arrived with.
pub const LABEL_BADGE: u64 = 4;
/// Die: exit with code 7 without replying (the caller must see `PeerDied`).
pub const LABEL_DIE: u64 = 5;
/// Save: answer through a saved Reply handle with `w0 * 2`.
pub const LABEL_SAVE: u64 = 6;
/// Quit: reply and exit 0.
pub const LABEL_QUIT: u64 = 7;

/// Runs `role`; returns the exit code.
pub fn run(role: u64, mut args: StartArgs) -> i32 {
    match role {
        ECHO => match args.take_handle::<libhsync::kind::Endpoint>(0) {
            Some(ep) => match echo(&ep, &mut args) {
                Ok(()) => 0,
                Err(e) => {
                    libhsync::println!("echo server: {e}");
                    2
                }
            },
            None => 3,
        },
        FAULT => {
            match args.word(1).unwrap_or(0) {
                1 => fault::page_fault(0x10),
                2 => fault::general_protection(),
                3 => fault::invalid_opcode(),
                4 => fault::divide_error(),
                5 => fault::stack_overflow(),
                6 => fault::breakpoint(),
                _ => {}
            }
            4
        }
        EXIT => process::exit(args.word(1).unwrap_or(0)),
        SLEEP => {
            if let Ok(n) = Notification::create() {
                let _ = n.wait();
            }
            5
        }
        BENCH_SERVER => match args.take_handle::<libhsync::kind::Endpoint>(0) {
            Some(ep) => {
                bench_server(&ep);
                0
            }
            None => 3,
        },
        crate::tests::idl::ROLE => crate::tests::idl::serve_role(args),
        crate::tests::hw::ROLE => crate::tests::hw::role(args),
        crate::tests::teardown::ROLE => crate::tests::teardown::role(args),
        crate::fuzz::ROLE => crate::fuzz::worker(args),
        _ => 6,
    }
}

/// The benchmark server loop: one `reply_recv` per round trip; label 0 quits.
pub fn bench_server(ep: &Endpoint) {
    let Ok(mut req) = ep.recv() else { return };
    loop {
        if req.msg.label() == 0 {
            let _ = libhsync::ipc::reply(Msg::new(0, &[]).unwrap_or(req.msg));
            return;
        }
        let mut answer = req.msg;
        answer.regs[0] = answer.regs[0].wrapping_add(1);
        match ep.reply_recv(answer) {
            Ok(r) => req = r,
            Err(_) => return,
        }
    }
}

fn echo(ep: &Endpoint, args: &mut StartArgs) -> Result<(), Error> {
    let mut req = ep.recv()?;
    loop {
        let msg = req.msg;
        let n = msg.info.words();
        let answer = match msg.label() {
            LABEL_ECHO => {
                let mut a = msg;
                for w in a.regs.iter_mut().take(n) {
                    *w = w.wrapping_add(1);
                }
                a
            }
            LABEL_LONG => {
                let mut words = [0u64; 64];
                for (i, w) in words.iter_mut().enumerate().take(n) {
                    *w = args.ipc.received_word(&msg, i).wrapping_add(1);
                }
                args.ipc
                    .compose::<libhsync::kind::Any>(LABEL_LONG, &words[..n], &[])?
            }
            LABEL_HANDLE => {
                let mut reply = [0u64; 2];
                if msg.info.handles() == 1 {
                    let h = args.ipc.take_handle(0);
                    if let Ok(info) = h.inspect() {
                        reply = [info.kind.raw(), info.rights.raw()];
                        if info.kind == ObjectKind::Notification {
                            let n = h.retype_unchecked::<libhsync::kind::Notification>();
                            n.signal(msg.word(0))?;
                        }
                    }
                }
                Msg::new(LABEL_HANDLE, &reply)?
            }
            LABEL_BADGE => Msg::new(LABEL_BADGE, &[req.badge])?,
            LABEL_DIE => process::exit(7),
            LABEL_SAVE => {
                let saved = libhsync::ipc::save_reply()?;
                saved.send(Msg::new(LABEL_SAVE, &[msg.word(0).wrapping_mul(2)])?)?;
                req = ep.recv()?;
                continue;
            }
            LABEL_QUIT => {
                libhsync::ipc::reply(Msg::new(LABEL_QUIT, &[])?)?;
                return Ok(());
            }
            _ => Msg::new(0, &[])?,
        };
        req = ep.reply_recv(answer)?;
    }
}

/// Spawns `role` from `image` with `words` after the role and `handles` (each with all of its
/// rights), at `priority`.
pub fn spawn(
    image: &process::Image,
    name: &str,
    role: u64,
    words: &[u64],
    ep: Option<&Endpoint>,
    priority: u64,
) -> Result<process::Child, Error> {
    let mut s = Spawn::new(image, name).priority(priority).word(role);
    for &w in words {
        s = s.word(w);
    }
    if let Some(ep) = ep {
        s = s.handle(ep, ep.inspect()?.rights)?;
    }
    s.start()
}
