//! `template`: the copy-me server. It implements the protocol defined in `servers/template-api`
//! and shows the whole shape of an HSYNC-OS server: entry, the endpoint it serves, state, the
//! trait implementation, the dispatch loop. It holds no hardware and no policy.
//!
//! Start convention: root starts it with the layout `hsync_root_api::Start` reads (exports
//! first, so the endpoint to serve, with `RECV`, is also start handle 0 for any other starter;
//! then imports, hardware, and an endpoint to root). Once it serves it reports ready to root,
//! which starts the next server only then. Each client holds its own badged `SEND` copy, so
//! `badge` names the caller. Copy it with `cargo xtask new-server NAME` (see `README.md` and
//! docs/servers.md).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use hsync_template_api::{Bytes, TemplateError, TemplateServer};
use libhsync::{StartArgs, kind};

libhsync::entry!(main);

/// The server's state: whatever it needs between requests.
#[derive(Default)]
struct Template {
    /// Requests answered so far.
    answered: u64,
}

impl TemplateServer for Template {
    fn ping(&mut self, _badge: u64, x: u64) -> Result<u64, TemplateError> {
        self.answered += 1;
        Ok(x.wrapping_add(1))
    }

    fn add(&mut self, _badge: u64, a: u64, b: u64) -> Result<u64, TemplateError> {
        self.answered += 1;
        a.checked_add(b).ok_or(TemplateError::Overflow)
    }

    fn whoami(&mut self, badge: u64) -> Result<u64, TemplateError> {
        self.answered += 1;
        Ok(badge)
    }

    fn reverse(&mut self, _badge: u64, data: &[u8]) -> Result<Bytes, TemplateError> {
        self.answered += 1;
        let mut out = Bytes::new();
        for &b in data.iter().rev() {
            out.extend(&[b]);
        }
        Ok(out)
    }

    fn stats(&mut self, _badge: u64) -> Result<u64, TemplateError> {
        let answered = self.answered;
        self.answered += 1;
        Ok(answered)
    }
}

fn main(mut args: StartArgs) -> i32 {
    // Started by root: its start layout. Started by anything else: the endpoint is handle 0.
    let (ep, root) = match hsync_root_api::Start::take(&mut args) {
        Some(mut start) => (start.export(0), start.root()),
        None => (args.take_handle::<kind::Endpoint>(0), None),
    };
    let Some(ep) = ep else {
        log::error!("template: no endpoint (start handle 0)");
        return 1;
    };
    log::info!("template: serving");
    // Requests queue on the endpoint until `serve` receives them, so ready can go first.
    if let Some(root) = &root {
        hsync_root_api::report_ready(root, &mut args.ipc);
    }
    let mut server = Template::default();
    let err = server.serve(&ep, &mut args.ipc);
    // `serve` returns only when receiving fails: the endpoint is gone or lacks RECV.
    log::error!("template: stopped serving: {err:?}");
    2
}
