//! A server loop that multiplexes its endpoint with interrupts and notifications
//! ([`serve`]): one thread owns the server's state and handles client requests, IRQs and
//! notification bits one at a time, so a driver needs no lock and no `static`.
//!
//! ```no_run
//! # use libhsync::protocol::Message;
//! # struct Uart;
//! # impl Uart {
//! #     fn on_irq(&mut self) {}
//! #     fn dispatch(&mut self, _badge: u64, _req: &mut Message) -> Message { unimplemented!() }
//! # }
//! # fn f(ep: libhsync::Endpoint, line: libhsync::hw::IrqLine, mut ipc: libhsync::IpcBuf) {
//! let mut uart = Uart;
//! let err = libhsync::serve(&ep)
//!     .on_irq(line, Uart::on_irq)
//!     .run(&mut ipc, &mut uart, Uart::dispatch);
//! # }
//! ```
//!
//! How: the kernel's endpoints do not wake on notifications, so [`Serve::run`] starts one small
//! helper thread per event source (with [`spawn_thread_with`], the source's handle moved in).
//! An IRQ helper waits for the line, *calls* the server's endpoint through a handle minted with
//! badge [`EVENT_BADGE`], acks (unmasks) the line when the server has replied, and calls once
//! more, since work that arrived while the line was masked raises no new edge
//! ([`hw::irq_pump`]). A notification helper waits for bits and calls with them. The server
//! thread sees these calls between two client requests, never in the middle of one. A client
//! cannot fake an event: the badge is minted here, and root's client badges are small indices.
//!
//! [`spawn_thread_with`]: crate::process::spawn_thread_with

use alloc::boxed::Box;
use alloc::vec::Vec;

use hsync_abi::{Error, Rights};

use crate::handle::{Endpoint, Notification};
use crate::hw::{self, Irq, IrqLine};
use crate::ipc::{IpcBuf, Msg};
use crate::process::spawn_thread_with;
use crate::protocol::{Message, serve_with, status};

/// The badge of the event helpers' handle to the server's endpoint.
pub const EVENT_BADGE: u64 = u64::MAX;
/// The label of event `i` is `EVENT_LABEL + i` (outside every protocol's labels).
pub const EVENT_LABEL: u64 = 0xFFFF_0000;
/// The helpers' priority unless [`Serve::helper_priority`] says otherwise.
pub const DEFAULT_HELPER_PRIORITY: u64 = 16;

/// An interrupt handler, given the server's state.
type IrqHandler<S> = Box<dyn FnMut(&mut S)>;
/// A notification handler, given the server's state and the bits.
type NotifyHandler<S> = Box<dyn FnMut(&mut S, u64)>;

/// An event's handler, by the index in its label.
enum Handler<S> {
    Irq(IrqHandler<S>),
    Notify(NotifyHandler<S>),
}

/// Where an event comes from.
enum Source {
    Irq(IrqLine),
    Notify(Notification),
}

/// A server loop being built: its endpoint and event sources ([`serve`]).
pub struct Serve<'a, S> {
    endpoint: &'a Endpoint,
    sources: Vec<(Source, Handler<S>)>,
    helper_priority: u64,
}

/// Starts building the loop that serves `endpoint`.
pub fn serve<S>(endpoint: &Endpoint) -> Serve<'_, S> {
    Serve {
        endpoint,
        sources: Vec::new(),
        helper_priority: DEFAULT_HELPER_PRIORITY,
    }
}

impl<S> Serve<'_, S> {
    /// Runs `handler` on the server's state each time `line` fires; the line is unmasked after
    /// it returns. The handler also runs once when [`run`](Serve::run) starts, for what arrived
    /// before anyone listened. It must drain the device (read until its interrupt condition is
    /// clear): an edge-triggered device signals once per edge.
    pub fn on_irq(mut self, line: IrqLine, handler: impl FnMut(&mut S) + 'static) -> Self {
        self.sources
            .push((Source::Irq(line), Handler::Irq(Box::new(handler))));
        self
    }

    /// Runs `handler` on the server's state with the bits each time `notification` is
    /// signalled (bits signalled meanwhile are merged into one call, as the kernel merges them).
    pub fn on_notify(
        mut self,
        notification: Notification,
        handler: impl FnMut(&mut S, u64) + 'static,
    ) -> Self {
        self.sources.push((
            Source::Notify(notification),
            Handler::Notify(Box::new(handler)),
        ));
        self
    }

    /// The priority of the helper threads: at most the server's own (the kernel refuses more),
    /// and high enough that an interrupt is not starved by busy work below the server.
    pub fn helper_priority(mut self, priority: u64) -> Self {
        self.helper_priority = priority;
        self
    }

    /// Starts the helpers, runs each IRQ handler once, then serves forever: client requests go
    /// to `dispatch(state, badge, request)`, whose message is the reply; events go to their
    /// handlers. Returns only the error that stopped it: a helper could not start (the
    /// endpoint needs `DUPLICATE` to mint the helpers' handle; the priority may be too high),
    /// or receiving failed.
    pub fn run(
        self,
        ipc: &mut IpcBuf,
        state: &mut S,
        mut dispatch: impl FnMut(&mut S, u64, &mut Message) -> Message,
    ) -> Error {
        let mut handlers = Vec::with_capacity(self.sources.len());
        for (i, (source, handler)) in self.sources.into_iter().enumerate() {
            let label = EVENT_LABEL + i as u64;
            handlers.push(handler);
            let started =
                self.endpoint
                    .badged(Rights::SEND, EVENT_BADGE)
                    .and_then(|ep| match source {
                        Source::Irq(line) => {
                            let irq = Irq::new(line)?;
                            spawn_thread_with(irq_helper, (irq, ep, label), self.helper_priority)
                        }
                        Source::Notify(n) => {
                            spawn_thread_with(notify_helper, (n, ep, label), self.helper_priority)
                        }
                    });
            if let Err(e) = started {
                log::error!(
                    "serve: cannot start the helper of event {i} at priority {}: {e} (the \
                     endpoint needs DUPLICATE; the priority may not exceed the server's)",
                    self.helper_priority
                );
                return e;
            }
        }
        for h in &mut handlers {
            if let Handler::Irq(h) = h {
                h(state);
            }
        }
        serve_with(self.endpoint, ipc, |badge, req| {
            let event = req.label().checked_sub(EVENT_LABEL);
            match event.and_then(|i| handlers.get_mut(usize::try_from(i).ok()?)) {
                Some(h) if badge == EVENT_BADGE => {
                    match h {
                        Handler::Irq(h) => h(state),
                        Handler::Notify(h) => h(state, req.word(0)),
                    }
                    Message::new(status::OK)
                }
                _ => dispatch(state, badge, req),
            }
        })
    }
}

/// The IRQ helper thread: wait, have the server handle it, unmask, ask once more.
fn irq_helper((irq, ep, label): (Irq, Endpoint, u64), _ipc: IpcBuf) {
    let e = hw::irq_pump(&irq, &ep, label);
    log::error!("serve: IRQ helper stops: {e}");
}

/// The notification helper thread: wait for bits, hand them to the server.
fn notify_helper((n, ep, label): (Notification, Endpoint, u64), _ipc: IpcBuf) {
    let e = loop {
        let sent = n
            .wait()
            .and_then(|bits| Msg::new(label, &[bits]))
            .and_then(|m| ep.call(m));
        if let Err(e) = sent {
            break e;
        }
    };
    log::error!("serve: notification helper stops: {e}");
}
