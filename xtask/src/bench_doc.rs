//! `cargo xtask bench --markdown`: docs/performance.md from `target/bench/latest.json` — the
//! HSYNC seed's claims beside what the bench measured, then every row. Generated, never edited
//! by hand, so the doc cannot drift from the figures.

use crate::Result;

/// A value in `latest.json` (flat objects of numbers and strings, as `bench::to_json_with`
/// writes them).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
}

/// One object of `latest.json`: its keys in file order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row(pub Vec<(String, Value)>);

impl Row {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn num(&self, key: &str) -> Option<f64> {
        match self.get(key)? {
            Value::Num(n) => Some(*n),
            Value::Str(_) => None,
        }
    }

    fn text(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Value::Str(s) => Some(s),
            Value::Num(_) => None,
        }
    }

    fn name(&self) -> &str {
        self.text("name").unwrap_or("")
    }
}

/// Parses `latest.json`: an array of flat objects whose values are numbers or strings (without
/// escapes other than `\"` and `\\`).
pub fn parse_json(text: &str) -> Result<Vec<Row>> {
    let mut p = Parser {
        s: text.as_bytes(),
        at: 0,
    };
    p.expect(b'[')?;
    let mut rows = Vec::new();
    loop {
        p.space();
        match p.peek() {
            Some(b']') => break,
            Some(b'{') => rows.push(p.object()?),
            _ => return Err(p.error("an object or `]`")),
        }
        p.space();
        if p.peek() == Some(b',') {
            p.at += 1;
        }
    }
    Ok(rows)
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn space(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn error(&self, want: &str) -> String {
        format!("latest.json: expected {want} at byte {}", self.at)
    }

    fn expect(&mut self, c: u8) -> Result<()> {
        self.space();
        if self.peek() == Some(c) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(&format!("`{}`", c as char)))
        }
    }

    fn string(&mut self) -> Result<String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.error("the end of a string")),
                Some(b'"') => break,
                Some(b'\\') => {
                    self.at += 1;
                    out.push(self.peek().ok_or_else(|| self.error("an escape"))?);
                }
                Some(c) => out.push(c),
            }
            self.at += 1;
        }
        self.at += 1;
        String::from_utf8(out).map_err(|_| self.error("UTF-8"))
    }

    fn value(&mut self) -> Result<Value> {
        self.space();
        if self.peek() == Some(b'"') {
            return self.string().map(Value::Str);
        }
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(&c))
        {
            self.at += 1;
        }
        std::str::from_utf8(&self.s[start..self.at])
            .ok()
            .and_then(|n| n.parse::<f64>().ok())
            .map(Value::Num)
            .ok_or_else(|| self.error("a number or a string"))
    }

    fn object(&mut self) -> Result<Row> {
        self.expect(b'{')?;
        let mut row = Row::default();
        loop {
            self.space();
            if self.peek() == Some(b'}') {
                self.at += 1;
                return Ok(row);
            }
            let key = self.string()?;
            self.expect(b':')?;
            row.0.push((key, self.value()?));
            self.space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {}
                _ => return Err(self.error("`,` or `}`")),
            }
        }
    }
}

fn ms(ns: f64) -> String {
    format!("{:.0} ms", ns / 1e6)
}

fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

/// HSYNC's "boot in less than 0.5 seconds".
const BOOT_CLAIM_NS: f64 = 500e6;
/// The largest kernel we still call "kilobytes" (under a megabyte).
const KILOBYTES_CLAIM: f64 = 1e6;

/// The claims table's rows: claim, measured, rows it comes from, verdict.
fn claims(rows: &[Row]) -> Vec<[String; 4]> {
    let find = |name: &str| rows.iter().find(|r| r.name() == name);
    let mut out = Vec::new();
    out.push(match find("boot.qemu_to_ready") {
        Some(r) => {
            let (med, min, max) = (
                r.num("median").unwrap_or(0.0),
                r.num("min").unwrap_or(0.0),
                r.num("p99").unwrap_or(0.0),
            );
            let n = r.num("iterations").unwrap_or(0.0);
            [
                "boot in less than 0.5 s".into(),
                format!(
                    "{} median ({:.0}–{} over {n} boots), QEMU process start to root's `system \
                     ready:` on serial",
                    ms(med),
                    min / 1e6,
                    ms(max)
                ),
                "`boot.qemu_to_ready`".into(),
                if med < BOOT_CLAIM_NS {
                    "meets it (under TCG)".into()
                } else {
                    "misses it (under TCG on a shared host; the figure includes QEMU's and \
                     SeaBIOS's own start)"
                        .into()
                },
            ]
        }
        None => not_measured("boot in less than 0.5 s", "`boot.qemu_to_ready`"),
    });
    out.push(match find("irq.latency") {
        Some(r) => [
            "interrupt latency below 1 µs".into(),
            format!(
                "{} ns median, {} ns p99",
                r.num("median").unwrap_or(0.0),
                r.num("p99").unwrap_or(0.0)
            ),
            "`irq.latency`".into(),
            if r.num("median").unwrap_or(f64::MAX) < 1000.0 {
                "meets it (under TCG)".into()
            } else {
                "misses it: TCG emulates every instruction of the path".into()
            },
        ],
        None => not_measured("interrupt latency below 1 µs", "`irq.latency`"),
    });
    out.push(match find("phase.dudect_t") {
        Some(r) => {
            let t = r.num("value").unwrap_or(f64::NAN);
            let limit = r.num("threshold").unwrap_or(4.5);
            let control = find("phase.dudect_t.leaky_control").and_then(|c| c.num("value"));
            [
                "fixed, O(1) execution timing".into(),
                format!(
                    "phase engine transform: dudect \\|t\\| = {:.2} over {} samples (\\|t\\| < \
                     {limit}: no timing difference detected){}",
                    t.abs(),
                    r.num("samples").unwrap_or(0.0),
                    control.map_or(String::new(), |c| format!(
                        "; a deliberately leaky control gives \\|t\\| = {:.2}",
                        c.abs()
                    ))
                ),
                "`phase.dudect_t`".into(),
                if t.abs() < limit {
                    "meets it for the phase engine (host-measured, not in the kernel)".into()
                } else {
                    "misses it".into()
                },
            ]
        }
        None => not_measured("fixed, O(1) execution timing", "`phase.dudect_t`"),
    });
    out.push(match find("size.kernel") {
        Some(r) => {
            let k = r.num("value").unwrap_or(0.0);
            let initfs = find("size.initfs").and_then(|i| i.num("value"));
            [
                "binary size \"kilobytes\"".into(),
                format!(
                    "kernel {} stripped{}",
                    kib(k),
                    initfs.map_or(String::new(), |i| format!(
                        "; the whole initfs (root + every server, stripped) {}",
                        kib(i)
                    ))
                ),
                "`size.kernel`, `size.initfs`".into(),
                if k < KILOBYTES_CLAIM {
                    "meets it".into()
                } else {
                    "misses it".into()
                },
            ]
        }
        None => not_measured("binary size \"kilobytes\"", "`size.kernel`"),
    });
    out
}

fn not_measured(claim: &str, row: &str) -> [String; 4] {
    [
        claim.into(),
        "not measured yet".into(),
        row.into(),
        "unknown: no row in latest.json".into(),
    ]
}

/// The whole of docs/performance.md.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "# Performance: HSYNC's claims beside measured figures\n\n\
         Generated by `cargo xtask bench --markdown` from `target/bench/latest.json`, which \
         `cargo xtask bench` writes; regenerate both rather than editing this file.\n\n",
    );
    if let Some(env) = rows.iter().find(|r| r.name() == "environment") {
        s.push_str(&format!(
            "Measured on: {} ({} host CPUs, shared with other work while this ran), {} with \
             {} emulation (`{}`), the guest given {} CPU(s). TCG emulates the CPU in software, so \
             nanosecond figures here are emulated time on a busy host, not what hardware does; \
             hardware figures need hardware.\n\n",
            env.text("host_cpu").unwrap_or("?"),
            env.text("host_cpus")
                .map(str::to_owned)
                .or_else(|| env.num("host_cpus").map(|n| n.to_string()))
                .unwrap_or_else(|| "?".into()),
            env.text("qemu").unwrap_or("QEMU"),
            env.text("accel").unwrap_or("tcg").to_uppercase(),
            "-accel tcg",
            env.num("value").unwrap_or(1.0),
        ));
    }
    s.push_str(
        "## The claims\n\n| HSYNC claim | measured here | row | verdict |\n|---|---|---|---|\n",
    );
    for [claim, measured, row, verdict] in claims(rows) {
        s.push_str(&format!("| {claim} | {measured} | {row} | {verdict} |\n"));
    }
    let dists: Vec<&Row> = rows.iter().filter(|r| r.num("median").is_some()).collect();
    if !dists.is_empty() {
        s.push_str(
            "\n## Distributions\n\nIn the guest (`ipc.*`, `syscall.*`, `sched.*`: ns from the \
             TSC, and TSC cycles; `*.instructions`: guest instructions under `-icount shift=0`) \
             and host-timed (`boot.*`: 5 boots, the p99 column is the slowest); `display.frame`: \
             render + present of one wave frame at the framebuffer's size, timed by vga in the \
             guest (up to the last 256 frames, while the shell was used).\n\n\
             | row | unit | median | p99 | min | samples | cycles median | cycles p99 |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
        for r in dists {
            let n = |k: &str| r.num(k).map_or("".into(), |v| format!("{v}"));
            s.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} | {} | {} |\n",
                r.name(),
                r.text("unit").unwrap_or(""),
                n("median"),
                n("p99"),
                n("min"),
                n("iterations"),
                n("cycles_median"),
                n("cycles_p99"),
            ));
        }
    }
    let single: Vec<&Row> = rows
        .iter()
        .filter(|r| r.num("value").is_some() && r.name() != "environment")
        .collect();
    if !single.is_empty() {
        s.push_str(
            "\n## Single figures\n\nThe phase engine's host bench (`phase.*`; docs/phase-core.md), \
             the release build's sizes (`size.*`: bytes as packed, stripped) and the wave frames \
             per second on the framebuffer (`display.fps`; docs/display.md).\n\n\
             | row | value | unit | details |\n|---|---|---|---|\n",
        );
        for r in single {
            let details: Vec<String> =
                r.0.iter()
                    .filter(|(k, _)| !["name", "unit", "value"].contains(&k.as_str()))
                    .map(|(k, v)| match v {
                        Value::Num(n) => format!("{k}={n}"),
                        Value::Str(t) => format!("{k}={t}"),
                    })
                    .collect();
            s.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                r.name(),
                r.num("value").unwrap_or(0.0),
                r.text("unit").unwrap_or(""),
                details.join(" ")
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Figure, Scalar, to_json_with};

    #[test]
    fn the_json_bench_writes_reads_back() {
        let figures = [Figure {
            name: "boot.qemu_to_ready".into(),
            unit: "ns".into(),
            median: 300_000_000,
            p99: 420_000_000,
            min: 250_000_000,
            iterations: 5,
            cycles: None,
        }];
        let scalars = [
            Scalar {
                name: "size.kernel".into(),
                unit: "bytes".into(),
                value: 389_120.0,
                extra: vec![("what".into(), "stripped".into())],
            },
            Scalar {
                name: "environment".into(),
                unit: "info".into(),
                value: 1.0,
                extra: vec![("qemu".into(), "QEMU emulator version 7.2.22 \"x\"".into())],
            },
        ];
        let rows = parse_json(&to_json_with(&figures, &scalars)).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].num("median"), Some(300e6));
        assert_eq!(rows[1].text("what"), Some("stripped"));
        let md = markdown(&rows);
        assert!(md.contains("| boot in less than 0.5 s | 300 ms median (250–420 ms over 5 boots)"));
        assert!(md.contains("| binary size \"kilobytes\" | kernel 380.0 KiB stripped |"));
        assert!(md.contains("| interrupt latency below 1 µs | not measured yet |"));
        assert!(md.contains("| `boot.qemu_to_ready` | ns | 300000000 | 420000000 |"));
        assert!(md.contains("| `size.kernel` | 389120 | bytes | what=stripped |"));
        assert!(!md.contains("| `environment`"));
    }

    #[test]
    fn verdicts_follow_the_figures() {
        let row = |pairs: &[(&str, Value)]| {
            Row(pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect())
        };
        let name = |n: &str| ("name", Value::Str(n.into()));
        let slow = [row(&[
            name("boot.qemu_to_ready"),
            ("median", Value::Num(900e6)),
            ("p99", Value::Num(1e9)),
            ("min", Value::Num(800e6)),
            ("iterations", Value::Num(5.0)),
        ])];
        assert!(claims(&slow)[0][3].starts_with("misses it"));
        let leaky = [row(&[
            name("phase.dudect_t"),
            ("value", Value::Num(-12.0)),
            ("threshold", Value::Num(4.5)),
        ])];
        assert_eq!(claims(&leaky)[2][3], "misses it");
        assert!(parse_json("[{\"name\": }]").is_err());
        assert!(parse_json("{}").is_err());
        assert_eq!(parse_json("[\n]\n").unwrap(), Vec::<Row>::new());
    }
}
