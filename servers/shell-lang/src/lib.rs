//! The `shell`'s command language, kept apart from its I/O so that it is tested on the host:
//! the line editor ([`LineEditor`]: bytes in, edit events out), the parser ([`parse`]: a line
//! into a [`Command`]) and the text it prints ([`HELP`], [`fmt`]).
//!
//! The shell serves no protocol (nothing calls it), so this crate defines none; xtask host-tests
//! it with the other logic crates.
//!
//! Nothing here panics on input: every byte sequence and every line gives an event or an error
//! value the shell prints. The crate refuses I/O, allocation and `unsafe`.
#![no_std]
#![forbid(unsafe_code)]

pub mod fmt;
mod line;
mod parse;

pub use line::{Event, LINE_MAX, LineEditor};
pub use parse::{Command, ParseError, WaveMode, parse};

/// The prompt printed before each line.
pub const PROMPT: &str = "hsync> ";

/// What `help` prints: one line per command.
pub const HELP: &str = "\
commands:
  help             this list
  ps               processes: pid, name, state, priority
  caps <pid>       a process's handles: slot, kind, rights
  mem              physical memory and kernel object counters
  phase            phase engine status
  wave [on|off]    start/stop the HSYNC-Wave visualizer (no argument: toggle)
  telemetry on|off phase engine telemetry lines on serial, twice a second
  bench [n]        IPC round trip to the phase server, n calls (default 1000)
  kill <name>      stop a server
  restart <name>   stop a server and start it again
  crash <name>     ask a server to fault (to watch root restart it)
  clear            blank the console
  display          display mode and the visualizer's frame times
  poweroff         turn the machine off
  reboot           restart the machine
";
