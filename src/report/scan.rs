//! Reading stage of the report: streams flow-log files line by line into bounded
//! counters (per route, caller, upstream, label, category, action, direction), with first
//! and last seen times.
//!
//! It never keeps an event: memory grows with the number of distinct names the config
//! produced, not with the number of events. It must never keep request ids or client
//! addresses (the report does not need them, and a client address is personal data), and
//! never echo a line it could not read.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use crate::flowlog::{Direction, LoggedEvent};

/// Longest line accepted; a longer one is skipped (and counted unreadable) without being
/// held in memory. Real events are well under 4 KiB.
const MAX_LINE: usize = 1 << 20;

/// Distinct names kept before new ones are folded into [`OVERFLOW_NAME`]; flow logs hold
/// only names from the config, so only a damaged or foreign file gets near it.
const MAX_NAMES: usize = 65_536;

/// What names beyond [`MAX_NAMES`] are counted as.
pub const OVERFLOW_NAME: &str = "(too many distinct names)";

/// Id of a missing name (`null` in the event).
pub const NONE: u32 = u32::MAX;

/// An event time as a sortable number: the digits of `2026-05-01T12:34:56.789Z`, that
/// is `20260501123456789`; 0 when unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp(u64);

impl Stamp {
    /// Reads the writer's time format (RFC 3339, UTC, milliseconds); unknown otherwise.
    pub fn parse(s: &str) -> Stamp {
        let b = s.as_bytes();
        let shape_ok = b.len() == 24
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b'.'
            && b[23] == b'Z';
        if !shape_ok {
            return Stamp(0);
        }
        let mut n = 0u64;
        for (i, &c) in b[..23].iter().enumerate() {
            if matches!(i, 4 | 7 | 10 | 13 | 16 | 19) {
                continue;
            }
            if !c.is_ascii_digit() {
                return Stamp(0);
            }
            n = n * 10 + u64::from(c - b'0');
        }
        Stamp(n)
    }

    /// True when the time was readable.
    pub fn is_known(self) -> bool {
        self.0 != 0
    }

    /// Back to RFC 3339 (`None` when unknown).
    pub fn to_rfc3339(self) -> Option<String> {
        if !self.is_known() {
            return None;
        }
        let d = format!("{:017}", self.0);
        Some(format!(
            "{}-{}-{}T{}:{}:{}.{}Z",
            &d[0..4],
            &d[4..6],
            &d[6..8],
            &d[8..10],
            &d[10..12],
            &d[12..14],
            &d[14..17]
        ))
    }
}

/// Interned names: every string of the report is stored once, counters hold `u32` ids.
#[derive(Debug, Default)]
pub struct Names {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
    /// Set when a name was folded into [`OVERFLOW_NAME`].
    pub overflowed: bool,
}

impl Names {
    /// The id of `name`, adding it if new.
    pub fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        if self.names.len() >= MAX_NAMES {
            self.overflowed = true;
            return self.id_unbounded(OVERFLOW_NAME);
        }
        self.id_unbounded(name)
    }

    fn id_unbounded(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    /// [`NONE`] for a missing name.
    pub fn opt(&mut self, name: Option<&str>) -> u32 {
        name.map_or(NONE, |n| self.id(n))
    }

    /// The name of an id; `None` for [`NONE`].
    pub fn get(&self, id: u32) -> Option<&str> {
        self.names.get(id as usize).map(|s| &**s)
    }
}

/// Counts and times of one key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Events (exchanges) counted.
    pub exchanges: u64,
    /// Values touched (field keys) or values that did not open (exchange keys).
    pub values: u64,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
    /// Earliest event time.
    pub first: Stamp,
    /// Latest event time.
    pub last: Stamp,
}

impl Tally {
    /// Adds another tally's counts and widens the time span.
    pub fn merge(&mut self, other: &Tally) {
        self.exchanges += other.exchanges;
        self.values += other.values;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        if other.first.is_known() && (!self.first.is_known() || other.first < self.first) {
            self.first = other.first;
        }
        if other.last > self.last {
            self.last = other.last;
        }
    }

    fn add(&mut self, at: Stamp, values: u64) {
        self.exchanges += 1;
        self.values += values;
        if at.is_known() {
            if !self.first.is_known() || at < self.first {
                self.first = at;
            }
            if at > self.last {
                self.last = at;
            }
        }
    }
}

/// One kind of exchange: who, where, what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExchangeKey {
    /// Route name id.
    pub route: u32,
    /// Path template id.
    pub template: u32,
    /// Method id.
    pub method: u32,
    /// Caller role id.
    pub caller: u32,
    /// Upstream name id.
    pub upstream: u32,
    /// Outcome id.
    pub outcome: u32,
    /// Reason id.
    pub reason: u32,
    /// Status sent.
    pub status: u16,
}

/// One field rule's traffic on one route, for one caller and upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldKey {
    /// Route name id.
    pub route: u32,
    /// Caller role id.
    pub caller: u32,
    /// Upstream name id.
    pub upstream: u32,
    /// Rule label id.
    pub label: u32,
    /// Category id.
    pub category: u32,
    /// Action id.
    pub action: u32,
    /// True for the response direction.
    pub response: bool,
}

impl FieldKey {
    /// The direction of the key.
    pub fn direction(&self) -> Direction {
        if self.response {
            Direction::Response
        } else {
            Direction::Request
        }
    }
}

/// Sensitive-looking data no rule covered, by route, caller, upstream and detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UncoveredKey {
    /// Route name id.
    pub route: u32,
    /// Caller role id.
    pub caller: u32,
    /// Upstream name id.
    pub upstream: u32,
    /// Detector name id.
    pub detector: u32,
}

/// Everything the report needs from the events, in bounded memory.
#[derive(Debug, Default)]
pub struct Aggregate {
    /// The interned names.
    pub names: Names,
    /// Lines read.
    pub lines: u64,
    /// Lines that were events.
    pub events: u64,
    /// Lines that were not events (or too long).
    pub unreadable: u64,
    /// All events.
    pub all: Tally,
    /// Per exchange kind.
    pub exchanges: HashMap<ExchangeKey, Tally>,
    /// Per field flow.
    pub fields: HashMap<FieldKey, Tally>,
    /// Per uncovered finding.
    pub uncovered: HashMap<UncoveredKey, Tally>,
    /// Per instance.
    pub instances: HashMap<u32, Tally>,
}

impl Aggregate {
    /// Streams one file into the counters.
    pub fn read_file(&mut self, path: &Path) -> io::Result<()> {
        let file = File::open(path)?;
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        let mut line = Vec::with_capacity(4096);
        while let Some(fits) = next_line(&mut reader, &mut line)? {
            self.lines += 1;
            if fits {
                self.add_line(&line);
            } else {
                self.unreadable += 1;
            }
        }
        Ok(())
    }

    /// Counts one line (without its newline).
    pub fn add_line(&mut self, line: &[u8]) {
        match LoggedEvent::parse(line) {
            Some(ev) => self.add(&ev),
            None => self.unreadable += 1,
        }
    }

    /// Counts one event.
    pub fn add(&mut self, ev: &LoggedEvent) {
        let at = Stamp::parse(&ev.time);
        let n = &mut self.names;
        let route = n.opt(ev.route.as_deref());
        let caller = n.opt(ev.caller.as_deref());
        let upstream = n.opt(ev.upstream.as_deref());
        let key = ExchangeKey {
            route,
            template: n.opt(ev.path_template.as_deref()),
            method: n.id(&ev.method),
            caller,
            upstream,
            outcome: n.id(&ev.outcome),
            reason: n.opt(ev.reason.as_deref()),
            status: ev.status,
        };
        let instance = n.id(&ev.instance);
        let t = self.exchanges.entry(key).or_default();
        t.add(at, u64::from(ev.open_failures));
        t.bytes_in += ev.bytes_in;
        t.bytes_out += ev.bytes_out;
        for f in &ev.fields {
            let key = FieldKey {
                route,
                caller,
                upstream,
                label: n.id(&f.label),
                category: n.id(&f.category),
                action: n.id(&f.action),
                response: f.direction == Direction::Response,
            };
            self.fields
                .entry(key)
                .or_default()
                .add(at, u64::from(f.count));
        }
        for d in &ev.uncovered {
            let key = UncoveredKey {
                route,
                caller,
                upstream,
                detector: n.id(d),
            };
            self.uncovered.entry(key).or_default().add(at, 1);
        }
        self.instances.entry(instance).or_default().add(at, 0);
        self.all.add(at, 0);
        self.events += 1;
    }
}

/// Reads the next line into `buf` (without the newline). `Some(false)` for a line longer
/// than [`MAX_LINE`], which is skipped without being buffered; `None` at the end.
fn next_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
    buf.clear();
    let mut fits = true;
    let mut any = false;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(any.then_some(fits));
        }
        any = true;
        let (take, done) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        if fits && buf.len() + take <= MAX_LINE {
            buf.extend_from_slice(&chunk[..take]);
        } else {
            fits = false;
            buf.clear();
        }
        reader.consume(take + usize::from(done));
        if done {
            return Ok(Some(fits));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_and_sorts() {
        let a = Stamp::parse("2026-05-01T12:34:56.789Z");
        let b = Stamp::parse("2026-05-02T00:00:00.000Z");
        assert!(a.is_known() && a < b);
        assert_eq!(a.to_rfc3339().unwrap(), "2026-05-01T12:34:56.789Z");
        for bad in [
            "",
            "2026-05-01T12:34:56Z",
            "2026-05-01T12:34:56.78xZ",
            "x".repeat(24).as_str(),
        ] {
            assert!(!Stamp::parse(bad).is_known(), "{bad}");
        }
    }

    #[test]
    fn long_lines_are_skipped_without_buffering() {
        let mut data = vec![b'x'; MAX_LINE + 10];
        data.extend_from_slice(b"\nok\nlast");
        let mut r = io::Cursor::new(data);
        let mut buf = Vec::new();
        assert_eq!(next_line(&mut r, &mut buf).unwrap(), Some(false));
        assert!(buf.is_empty());
        assert_eq!(next_line(&mut r, &mut buf).unwrap(), Some(true));
        assert_eq!(buf, b"ok");
        assert_eq!(next_line(&mut r, &mut buf).unwrap(), Some(true));
        assert_eq!(buf, b"last");
        assert_eq!(next_line(&mut r, &mut buf).unwrap(), None);
    }

    #[test]
    fn names_are_bounded() {
        let mut n = Names::default();
        for i in 0..MAX_NAMES + 5 {
            n.id(&i.to_string());
        }
        assert!(n.overflowed);
        assert_eq!(n.names.len(), MAX_NAMES + 1);
        let id = n.id("another");
        assert_eq!(n.get(id), Some(OVERFLOW_NAME));
    }
}
