//! The command parser: one line of words into a [`Command`], or a [`ParseError`] that says what
//! was wrong in words a person can act on.

use core::fmt;

/// What `wave` should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaveMode {
    /// `wave`: flip it.
    Toggle,
    /// `wave on`.
    On,
    /// `wave off`.
    Off,
}

/// A parsed command. Names borrow from the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `help`
    Help,
    /// `ps`
    Ps,
    /// `caps <pid>`
    Caps(u64),
    /// `mem`
    Mem,
    /// `phase`
    Phase,
    /// `wave [on|off]`
    Wave(WaveMode),
    /// `telemetry on|off`: the phase server's telemetry lines on serial.
    Telemetry(bool),
    /// `bench [n]`: n round trips (1..=[`BENCH_MAX`]).
    Bench(u32),
    /// `kill <name>`
    Kill(&'a str),
    /// `restart <name>`
    Restart(&'a str),
    /// `crash <name>`
    Crash(&'a str),
    /// `clear`: blank the console (the display's console region, and a terminal on serial).
    Clear,
    /// `display`: the display's mode and the visualizer's frame timing.
    Display,
    /// `poweroff`
    Poweroff,
    /// `reboot`
    Reboot,
}

/// Round trips `bench` runs when not told.
pub const BENCH_DEFAULT: u32 = 1000;
/// The most round trips one `bench` may ask for.
pub const BENCH_MAX: u32 = 1_000_000;
/// The longest server name accepted (manifest names are short).
pub const NAME_MAX: usize = 32;

/// Why a line is not a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError<'a> {
    /// The first word is no command.
    Unknown(&'a str),
    /// The command needs an argument.
    Missing {
        /// The command.
        command: &'static str,
        /// What it needs, e.g. `<pid>`.
        what: &'static str,
    },
    /// More words than the command takes.
    TooMany {
        /// The command.
        command: &'static str,
    },
    /// An argument is not what the command takes.
    Bad {
        /// The command.
        command: &'static str,
        /// The offending word.
        arg: &'a str,
        /// What was expected.
        expected: &'static str,
    },
}

impl fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Unknown(w) => {
                write!(f, "unknown command `{}` (try `help`)", Clipped(w))
            }
            ParseError::Missing { command, what } => write!(f, "{command}: missing {what}"),
            ParseError::TooMany { command } => write!(f, "{command}: too many arguments"),
            ParseError::Bad {
                command,
                arg,
                expected,
            } => write!(f, "{command}: `{}` is not {expected}", Clipped(arg)),
        }
    }
}

/// A word shown in a message, cut at 24 bytes so a pasted wall of text stays one line.
struct Clipped<'a>(&'a str);

impl fmt::Display for Clipped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 24;
        match self.0.get(..MAX) {
            Some(head) if self.0.len() > MAX => write!(f, "{head}..."),
            _ => f.write_str(self.0),
        }
    }
}

/// Parses one line. `Ok(None)` for a blank line.
pub fn parse(line: &str) -> Result<Option<Command<'_>>, ParseError<'_>> {
    let mut words = line.split_ascii_whitespace();
    let Some(first) = words.next() else {
        return Ok(None);
    };
    let arg = words.next();
    let extra = words.next().is_some();
    let cmd = match first {
        "help" | "?" => none("help", arg, Command::Help)?,
        "ps" => none("ps", arg, Command::Ps)?,
        "mem" => none("mem", arg, Command::Mem)?,
        "phase" => none("phase", arg, Command::Phase)?,
        "clear" => none("clear", arg, Command::Clear)?,
        "display" => none("display", arg, Command::Display)?,
        "poweroff" => none("poweroff", arg, Command::Poweroff)?,
        "reboot" => none("reboot", arg, Command::Reboot)?,
        "caps" => Command::Caps(number("caps", "<pid>", arg, u64::MAX)?),
        "wave" => Command::Wave(match arg {
            None => WaveMode::Toggle,
            Some("on") => WaveMode::On,
            Some("off") => WaveMode::Off,
            Some(a) => {
                return Err(ParseError::Bad {
                    command: "wave",
                    arg: a,
                    expected: "`on` or `off`",
                });
            }
        }),
        "telemetry" => Command::Telemetry(match arg {
            Some("on") => true,
            Some("off") => false,
            None => {
                return Err(ParseError::Missing {
                    command: "telemetry",
                    what: "`on` or `off`",
                });
            }
            Some(a) => {
                return Err(ParseError::Bad {
                    command: "telemetry",
                    arg: a,
                    expected: "`on` or `off`",
                });
            }
        }),
        "bench" => Command::Bench(match arg {
            None => BENCH_DEFAULT,
            Some(_) => {
                let n = number("bench", "a count", arg, u64::from(BENCH_MAX))?;
                // `number` bounded it by BENCH_MAX; 0 is refused below.
                match u32::try_from(n) {
                    Ok(n) if n > 0 => n,
                    _ => {
                        return Err(ParseError::Bad {
                            command: "bench",
                            arg: arg.unwrap_or(""),
                            expected: "a count from 1 to 1000000",
                        });
                    }
                }
            }
        }),
        "kill" => Command::Kill(name("kill", arg)?),
        "restart" => Command::Restart(name("restart", arg)?),
        "crash" => Command::Crash(name("crash", arg)?),
        other => return Err(ParseError::Unknown(other)),
    };
    if extra {
        return Err(ParseError::TooMany {
            command: command_name(&cmd),
        });
    }
    Ok(Some(cmd))
}

/// The command's word, for messages.
fn command_name(c: &Command<'_>) -> &'static str {
    match c {
        Command::Help => "help",
        Command::Ps => "ps",
        Command::Caps(_) => "caps",
        Command::Mem => "mem",
        Command::Phase => "phase",
        Command::Wave(_) => "wave",
        Command::Telemetry(_) => "telemetry",
        Command::Bench(_) => "bench",
        Command::Kill(_) => "kill",
        Command::Restart(_) => "restart",
        Command::Crash(_) => "crash",
        Command::Clear => "clear",
        Command::Display => "display",
        Command::Poweroff => "poweroff",
        Command::Reboot => "reboot",
    }
}

fn none<'a>(
    command: &'static str,
    arg: Option<&'a str>,
    c: Command<'a>,
) -> Result<Command<'a>, ParseError<'a>> {
    match arg {
        None => Ok(c),
        Some(_) => Err(ParseError::TooMany { command }),
    }
}

/// A decimal (or `0x` hexadecimal) number no larger than `max`.
fn number<'a>(
    command: &'static str,
    what: &'static str,
    arg: Option<&'a str>,
    max: u64,
) -> Result<u64, ParseError<'a>> {
    let arg = arg.ok_or(ParseError::Missing { command, what })?;
    let parsed = match arg.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => arg.parse::<u64>(),
    };
    match parsed {
        // `from_str_radix` accepts a leading '+'; a number is digits only.
        Ok(n) if n <= max && !arg.contains('+') => Ok(n),
        _ => Err(ParseError::Bad {
            command,
            arg,
            expected: "a number in range",
        }),
    }
}

/// A server name as the manifest spells them: `[a-z][a-z0-9-]*`, at most [`NAME_MAX`].
fn name<'a>(command: &'static str, arg: Option<&'a str>) -> Result<&'a str, ParseError<'a>> {
    let arg = arg.ok_or(ParseError::Missing {
        command,
        what: "<name>",
    })?;
    let b = arg.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= NAME_MAX
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if ok {
        Ok(arg)
    } else {
        Err(ParseError::Bad {
            command,
            arg,
            expected: "a server name",
        })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;

    #[test]
    fn every_command_parses() {
        let cases: &[(&str, Command<'_>)] = &[
            ("help", Command::Help),
            ("?", Command::Help),
            ("ps", Command::Ps),
            ("caps 3", Command::Caps(3)),
            ("caps 0x1f", Command::Caps(31)),
            ("mem", Command::Mem),
            ("phase", Command::Phase),
            ("wave", Command::Wave(WaveMode::Toggle)),
            ("wave on", Command::Wave(WaveMode::On)),
            ("wave off", Command::Wave(WaveMode::Off)),
            ("telemetry on", Command::Telemetry(true)),
            ("telemetry off", Command::Telemetry(false)),
            ("bench", Command::Bench(BENCH_DEFAULT)),
            ("bench 10", Command::Bench(10)),
            ("kill vga", Command::Kill("vga")),
            ("restart ps2", Command::Restart("ps2")),
            ("crash vga", Command::Crash("vga")),
            ("clear", Command::Clear),
            ("display", Command::Display),
            ("poweroff", Command::Poweroff),
            ("reboot", Command::Reboot),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line), Ok(Some(*want)), "{line}");
        }
    }

    #[test]
    fn every_command_in_help_is_known() {
        let words: std::vec::Vec<&str> = crate::HELP
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert!(words.contains(&"telemetry"), "{words:?}");
        for w in words {
            assert!(
                !matches!(parse(w), Err(ParseError::Unknown(_))),
                "`{w}` is in HELP but does not parse"
            );
        }
    }

    #[test]
    fn whitespace_is_flexible_and_blank_is_nothing() {
        assert_eq!(parse("   caps\t 7  "), Ok(Some(Command::Caps(7))));
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse(" \t "), Ok(None));
    }

    #[test]
    fn unknown_commands_are_named() {
        let e = parse("fsck /").unwrap_err();
        assert_eq!(e, ParseError::Unknown("fsck"));
        assert_eq!(e.to_string(), "unknown command `fsck` (try `help`)");
        assert_eq!(parse("HELP"), Err(ParseError::Unknown("HELP")));
    }

    #[test]
    fn missing_and_extra_arguments() {
        assert_eq!(
            parse("caps").unwrap_err().to_string(),
            "caps: missing <pid>"
        );
        assert_eq!(
            parse("kill").unwrap_err().to_string(),
            "kill: missing <name>"
        );
        assert_eq!(
            parse("telemetry").unwrap_err().to_string(),
            "telemetry: missing `on` or `off`"
        );
        assert_eq!(
            parse("telemetry on off").unwrap_err(),
            ParseError::TooMany {
                command: "telemetry"
            }
        );
        assert_eq!(
            parse("ps -a").unwrap_err(),
            ParseError::TooMany { command: "ps" }
        );
        assert_eq!(
            parse("kill vga ps2").unwrap_err(),
            ParseError::TooMany { command: "kill" }
        );
    }

    #[test]
    fn bad_arguments() {
        for line in [
            "caps x",
            "caps -1",
            "caps +1",
            "caps 18446744073709551616",
            "caps 0x",
            "bench 0",
            "bench 1000001",
            "wave maybe",
            "telemetry 1",
            "telemetry ON",
            "kill VGA",
            "kill 9",
            "kill ../root",
            "crash aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(
                matches!(parse(line), Err(ParseError::Bad { .. })),
                "{line}: {:?}",
                parse(line)
            );
        }
        assert_eq!(
            parse("telemetry yes").unwrap_err().to_string(),
            "telemetry: `yes` is not `on` or `off`"
        );
        assert_eq!(
            parse("bench 0").unwrap_err().to_string(),
            "bench: `0` is not a count from 1 to 1000000"
        );
    }

    #[test]
    fn random_lines_never_panic() {
        let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789x -+\t";
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut line = std::vec::Vec::new();
        for _ in 0..20_000 {
            line.clear();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for i in 0..(x % 40) {
                line.push(alphabet[((x >> (i % 50)) as usize + i as usize) % alphabet.len()]);
            }
            let s = std::str::from_utf8(&line).unwrap();
            if let Err(e) = parse(s) {
                assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn long_words_are_clipped_in_messages() {
        let long = "z".repeat(100);
        let msg = parse(&long).unwrap_err().to_string();
        assert!(msg.len() < 60, "{msg}");
        assert!(msg.contains("zzz..."));
    }
}
