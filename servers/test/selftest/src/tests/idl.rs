//! utests for `libhsync::protocol!` against a real server process: every kind of argument and
//! result through the kernel (registers, IPC buffer, handles in both directions), badges, the
//! error replies for unknown labels and malformed requests, and server death.
//!
//! The server is this image spawned with role [`ROLE`], serving the [`Probe`] protocol below.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use libhsync::protocol::{Bytes, ProtocolError, status};
use libhsync::{
    DEADLINE_NEVER, Endpoint, ExitStatus, Msg, Notification, Rights, StartArgs, kind, process,
};

use super::{Ctx, TestFn, TestResult};
use crate::roles;

/// The role number of the probe server (start word 0).
pub const ROLE: u64 = 16;

/// The suite's tests, run after the kernel-object tests.
pub const TESTS: &[(&str, TestFn)] = &[
    ("idl_operations", operations),
    ("idl_badges", badges),
    ("idl_bad_requests", bad_requests),
    ("idl_server_death", server_death),
];

/// The probe server's exit code after `die`.
const DIE_CODE: u64 = 9;

libhsync::wire_enum! {
    /// Probe errors.
    pub enum ProbeError {
        /// `add` overflowed.
        Overflow = 1,
    }
}

libhsync::wire_enum! {
    /// A small enum argument.
    pub enum Colour {
        /// Red.
        Red = 3,
        /// Blue.
        Blue = 4,
    }
}

libhsync::protocol! {
    /// The test protocol: one operation per kind of argument or result.
    pub protocol Probe {
        server ProbeServer;
        client ProbeClient;
        error ProbeError;
        /// `x + 1`.
        fn ping(x: u64) -> u64 = 1;
        /// `a + b` or `Overflow`.
        fn add(a: u64, b: u64) -> u64 = 2;
        /// The caller's badge.
        fn whoami() -> u64 = 3;
        /// Small word types both ways.
        fn mixed(flag: bool, small: u32, c: Colour) -> (bool, u32, Colour) = 4;
        /// Bytes in (IPC buffer), reversed bytes out.
        fn reverse(data: &[u8]) -> Bytes = 5;
        /// A handle in: signals `n` with `bits`.
        fn signal(n: Notification, bits: u64) = 6;
        /// A handle out: a new notification, already signalled with `bits`.
        fn make(bits: u64) -> Notification = 7;
        /// Exits without replying.
        fn die() = 8;
    }
}

struct Server;

impl ProbeServer for Server {
    fn ping(&mut self, _: u64, x: u64) -> Result<u64, ProbeError> {
        Ok(x.wrapping_add(1))
    }
    fn add(&mut self, _: u64, a: u64, b: u64) -> Result<u64, ProbeError> {
        a.checked_add(b).ok_or(ProbeError::Overflow)
    }
    fn whoami(&mut self, badge: u64) -> Result<u64, ProbeError> {
        Ok(badge)
    }
    fn mixed(
        &mut self,
        _: u64,
        flag: bool,
        small: u32,
        c: Colour,
    ) -> Result<(bool, u32, Colour), ProbeError> {
        let c = match c {
            Colour::Red => Colour::Blue,
            Colour::Blue => Colour::Red,
        };
        Ok((!flag, small.wrapping_mul(2), c))
    }
    fn reverse(&mut self, _: u64, data: &[u8]) -> Result<Bytes, ProbeError> {
        let mut out = Bytes::new();
        for &b in data.iter().rev() {
            out.extend(&[b]);
        }
        Ok(out)
    }
    fn signal(&mut self, _: u64, n: Notification, bits: u64) -> Result<(), ProbeError> {
        // A failed signal is visible to the test as missing bits.
        let _ = n.signal(bits);
        Ok(())
    }
    fn make(&mut self, _: u64, bits: u64) -> Result<Notification, ProbeError> {
        let n = Notification::create().map_err(|_| ProbeError::Overflow)?;
        n.signal(bits).map_err(|_| ProbeError::Overflow)?;
        Ok(n)
    }
    fn die(&mut self, _: u64) -> Result<(), ProbeError> {
        process::exit(DIE_CODE)
    }
}

/// The probe server role: serves handle 0 until receiving fails.
pub fn serve_role(mut args: StartArgs) -> i32 {
    let Some(ep) = args.take_handle::<kind::Endpoint>(0) else {
        return 3;
    };
    let e = Server.serve(&ep, &mut args.ipc);
    libhsync::println!("probe server: {e:?}");
    2
}

/// A probe server child; the test keeps only `SEND` copies (badged `badges`), so the
/// endpoint dies with the server.
fn probe(ctx: &Ctx, badges: &[u64]) -> Result<(process::Child, Vec<ProbeClient>), String> {
    let ep = ok!(Endpoint::create());
    let child = ok!(roles::spawn(
        &ctx.image,
        "probe",
        ROLE,
        &[],
        Some(&ep),
        ctx.prio
    ));
    let mut clients = Vec::new();
    for &b in badges {
        let h = if b == 0 {
            ok!(ep.duplicate(Rights::SEND))
        } else {
            ok!(ep.badged(Rights::SEND, b))
        };
        clients.push(ProbeClient::new(h));
    }
    Ok((child, clients))
}

fn kill(child: process::Child) -> TestResult {
    ok!(child.process.kill());
    ok!(child.process.wait(DEADLINE_NEVER));
    Ok(())
}

fn operations(ctx: &mut Ctx) -> TestResult {
    let (child, clients) = probe(ctx, &[0])?;
    let c = &clients[0];
    let ipc = &mut ctx.ipc;
    ensure!(ok!(c.ping(ipc, 41)) == 42, "ping");
    ensure!(ok!(c.add(ipc, 2, 3)) == 5, "add");
    let e = c.add(ipc, u64::MAX, 1);
    ensure!(
        e == Err(ProtocolError::App(ProbeError::Overflow)),
        "add overflow: {e:?}"
    );
    let m = ok!(c.mixed(ipc, true, 21, Colour::Red));
    ensure!(m == (false, 42, Colour::Blue), "mixed: {m:?}");
    for len in [0usize, 5, 32, 200, Bytes::CAPACITY] {
        let data: Vec<u8> = (0..len).map(|i| (i * 13 + 1) as u8).collect();
        let r = ok!(c.reverse(ipc, &data));
        ensure!(r.len() == len, "reverse len {len}: {}", r.len());
        ensure!(
            r.iter().rev().eq(data.iter()),
            "reverse {len}: bytes differ"
        );
    }
    // A handle in: the server signals our notification through its copy.
    let n = ok!(Notification::create());
    let copy = ok!(n.duplicate(Rights::SIGNAL | Rights::TRANSFER));
    ok!(c.signal(ipc, copy, 0x0a0b));
    ensure!(ok!(n.poll()) == 0x0a0b, "signal through a passed handle");
    // A handle out: the server's notification, signalled before it was sent.
    let got = ok!(c.make(ipc, 0x77));
    let info = ok!(got.inspect());
    ensure!(
        info.kind == libhsync::ObjectKind::Notification,
        "returned kind {:?}",
        info.kind
    );
    ensure!(ok!(got.poll()) == 0x77, "returned notification bits");
    kill(child)
}

fn badges(ctx: &mut Ctx) -> TestResult {
    let (child, clients) = probe(ctx, &[11, 22, 0])?;
    for (c, want) in clients.iter().zip([11, 22, 0]) {
        let got = ok!(c.whoami(&mut ctx.ipc));
        ensure!(got == want, "badge {want}: server saw {got}");
    }
    kill(child)
}

fn bad_requests(ctx: &mut Ctx) -> TestResult {
    let (child, clients) = probe(ctx, &[0])?;
    let ep = clients[0].endpoint();
    let cases: [(u64, &[u64], u64); 6] = [
        (999, &[], status::UNKNOWN_OP),
        (0, &[1], status::UNKNOWN_OP),
        (1, &[], status::BAD_REQUEST),     // ping without its argument
        (1, &[1, 2], status::BAD_REQUEST), // one word too many
        (4, &[2, 1, 3], status::BAD_REQUEST), // bool 2
        (6, &[1, 1], status::BAD_REQUEST), // a word where a handle belongs
    ];
    for (label, words, want) in cases {
        let r = ok!(ep.call(ok!(Msg::new(label, words))));
        ensure!(
            r.label() == want && r.info.words() == 0,
            "label {label} {words:?}: reply label {} words {}",
            r.label(),
            r.info.words()
        );
    }
    // The server is still serving, and the typed stub reports what the server said.
    ensure!(
        ok!(clients[0].ping(&mut ctx.ipc, 1)) == 2,
        "ping after bad requests"
    );
    let raw = ok!(ep.call(ok!(Msg::new(5, &[100]))));
    ensure!(
        raw.label() == status::BAD_REQUEST,
        "bytes overrunning the message"
    );
    kill(child)
}

fn server_death(ctx: &mut Ctx) -> TestResult {
    let (child, clients) = probe(ctx, &[0])?;
    ensure!(ok!(clients[0].ping(&mut ctx.ipc, 1)) == 2, "ping");
    let r = clients[0].die(&mut ctx.ipc);
    ensure!(r == Err(ProtocolError::ServerDied), "die: {r:?}");
    let st = ok!(child.process.wait(DEADLINE_NEVER)).status;
    ensure!(st == ExitStatus::Exited(DIE_CODE), "server exit: {st:?}");
    Ok(())
}
