//! Traffic logs: a hex dump (`-x FILE`) and a raw log (`-o FILE`) of both directions.
//!
//! [`HexDump`] writes one block per chunk of data read or written: a header line with the
//! direction mark (`>` sent to the peer, `<` received from it), the UTC time, the time since
//! the log began, an optional label (which connection), the chunk's length and its offset in
//! that direction's byte stream, then `hexdump -C`-style lines whose offsets continue that
//! direction's stream:
//!
//! ```text
//! > 2026-11-29T13:40:07.123456Z +0.000000s length=6 offset=0
//! 00000000  68 65 6c 6c 6f 0a                                 |hello.|
//! < 2026-11-29T13:40:07.123901Z +0.000445s length=6 offset=0
//! 00000000  48 45 4c 4c 4f 0a                                 |HELLO.|
//! ```
//!
//! [`RawLog`] writes the bytes themselves, both directions in the order they passed
//! (ncat's `-o`). [`TrafficLog`] holds either or both; every record is flushed at once, so
//! a log is complete up to the last chunk even if the process is killed.
//!
//! The writers are plain [`Write`] values; sharing one between the two directions of a
//! relay (or between connections) is the caller's job (a `Mutex`).

use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which way a chunk went, seen from the program writing the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent to the peer (forward: client to target). Marked `>`.
    Sent,
    /// Received from the peer (forward: target to client). Marked `<`.
    Received,
}

impl Direction {
    /// The mark at the start of a header line: `>` or `<`.
    pub fn mark(self) -> char {
        match self {
            Direction::Sent => '>',
            Direction::Received => '<',
        }
    }

    fn index(self) -> usize {
        match self {
            Direction::Sent => 0,
            Direction::Received => 1,
        }
    }
}

/// A hex dump writer (`-x FILE`): offsets, direction marks and timestamps.
#[derive(Debug)]
pub struct HexDump<W: Write> {
    out: W,
    start: Option<SystemTime>,
    offsets: [u64; 2],
}

impl<W: Write> HexDump<W> {
    /// A dump writing to `out`; the first record's time is the dump's time zero.
    pub fn new(out: W) -> Self {
        HexDump {
            out,
            start: None,
            offsets: [0, 0],
        }
    }

    /// Writes one chunk stamped with the current time. See [`record_at`](Self::record_at).
    ///
    /// # Errors
    /// The writer's error.
    pub fn record(&mut self, dir: Direction, label: Option<&str>, data: &[u8]) -> io::Result<()> {
        self.record_at(SystemTime::now(), dir, label, data)
    }

    /// Writes one chunk stamped with `at`: a header line, then 16 bytes per line, and
    /// flushes. An empty chunk (a zero-length datagram) writes the header alone.
    ///
    /// # Errors
    /// The writer's error.
    pub fn record_at(
        &mut self,
        at: SystemTime,
        dir: Direction,
        label: Option<&str>,
        data: &[u8],
    ) -> io::Result<()> {
        let offset = self.offsets[dir.index()];
        self.offsets[dir.index()] = offset + data.len() as u64;
        self.record_stream(at, dir, label, offset, data)
    }

    /// Writes one chunk of a stream whose offsets the caller keeps (one dump shared by
    /// several connections: each labels its chunks and counts its own offsets).
    ///
    /// # Errors
    /// The writer's error.
    pub fn record_stream(
        &mut self,
        at: SystemTime,
        dir: Direction,
        label: Option<&str>,
        offset: u64,
        data: &[u8],
    ) -> io::Result<()> {
        let start = *self.start.get_or_insert(at);
        let since = at.duration_since(start).unwrap_or(Duration::ZERO);
        let mut text = String::with_capacity(80 + data.len() * 5);
        text.push(dir.mark());
        text.push(' ');
        text.push_str(&utc_text(at));
        text.push_str(&format!(
            " +{}.{:06}s",
            since.as_secs(),
            since.subsec_micros()
        ));
        if let Some(l) = label {
            text.push(' ');
            text.push_str(l);
        }
        text.push_str(&format!(" length={} offset={offset}\n", data.len()));
        for (i, line) in data.chunks(16).enumerate() {
            hex_line(&mut text, offset + (i as u64) * 16, line);
        }
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Appends one `hexdump -C` line: 8 hex digits of offset, 16 bytes in two groups of
/// eight, then the printable ASCII between bars (`.` for the rest).
fn hex_line(text: &mut String, offset: u64, bytes: &[u8]) {
    use std::fmt::Write as _;
    let _ = write!(text, "{offset:08x} ");
    for i in 0..16 {
        if i == 8 {
            text.push(' ');
        }
        match bytes.get(i) {
            Some(b) => {
                let _ = write!(text, " {b:02x}");
            }
            None => text.push_str("   "),
        }
    }
    text.push_str("  |");
    for &b in bytes {
        text.push(if b.is_ascii_graphic() || b == b' ' {
            b as char
        } else {
            '.'
        });
    }
    text.push_str("|\n");
}

/// `YYYY-MM-DDTHH:MM:SS.uuuuuuZ` for a time (UTC, microseconds).
pub fn utc_text(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A raw log (`-o FILE`): the bytes of both directions, in the order they passed.
#[derive(Debug)]
pub struct RawLog<W: Write> {
    out: W,
}

impl<W: Write> RawLog<W> {
    /// A raw log writing to `out`.
    pub fn new(out: W) -> Self {
        RawLog { out }
    }

    /// Appends `data` and flushes.
    ///
    /// # Errors
    /// The writer's error.
    pub fn record(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.write_all(data)?;
        self.out.flush()
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// The writer type of a [`TrafficLog`] opened on files.
pub type BoxWrite = Box<dyn Write + Send>;

/// The `-x`/`-o` pair: a hex dump, a raw log, either or neither.
#[derive(Debug, Default)]
pub struct TrafficLog {
    /// The hex dump, when `-x` was given.
    pub hex: Option<HexDump<BufWriterDebug>>,
    /// The raw log, when `-o` was given.
    pub raw: Option<RawLog<BufWriterDebug>>,
}

/// A buffered boxed writer (with a `Debug` that says nothing about its contents).
pub struct BufWriterDebug(io::BufWriter<BoxWrite>);

impl std::fmt::Debug for BufWriterDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BufWriter")
    }
}

impl Write for BufWriterDebug {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl TrafficLog {
    /// Opens (creates or truncates) the files given: `hex` for the dump, `raw` for the log.
    ///
    /// # Errors
    /// [`ErrorKind::Os`](crate::ErrorKind::Os) when a file cannot be created (op `open`).
    pub fn create(
        hex: Option<&std::path::Path>,
        raw: Option<&std::path::Path>,
    ) -> crate::Result<TrafficLog> {
        let open = |p: &std::path::Path| -> crate::Result<BufWriterDebug> {
            let f = std::fs::File::create(p)
                .map_err(|e| crate::Error::from_io(format!("open {}", p.display()), e))?;
            Ok(BufWriterDebug(io::BufWriter::new(Box::new(f) as BoxWrite)))
        };
        Ok(TrafficLog {
            hex: hex.map(open).transpose()?.map(HexDump::new),
            raw: raw.map(open).transpose()?.map(RawLog::new),
        })
    }

    /// A log over any writers (tests, stderr).
    pub fn from_writers(hex: Option<BoxWrite>, raw: Option<BoxWrite>) -> TrafficLog {
        let wrap = |w: BoxWrite| BufWriterDebug(io::BufWriter::new(w));
        TrafficLog {
            hex: hex.map(|w| HexDump::new(wrap(w))),
            raw: raw.map(|w| RawLog::new(wrap(w))),
        }
    }

    /// True when neither `-x` nor `-o` was given (nothing to record).
    pub fn is_empty(&self) -> bool {
        self.hex.is_none() && self.raw.is_none()
    }

    /// Records one chunk in both logs.
    ///
    /// # Errors
    /// The first writer error.
    pub fn record(&mut self, dir: Direction, label: Option<&str>, data: &[u8]) -> io::Result<()> {
        if let Some(h) = self.hex.as_mut() {
            h.record(dir, label, data)?;
        }
        if let Some(r) = self.raw.as_mut() {
            r.record(data)?;
        }
        Ok(())
    }
}

/// A traffic log shared by the sessions of a server (`forward -x`, `listen -k -x`), each
/// writing through its own [`SessionTap`]: chunks labelled with the session
/// (`#1 127.0.0.1:37940`) and its own stream offsets. The first write error stops the log
/// (the relays' data matters more than their log, so the sessions go on) and is handed
/// once to the `on_failure` callback, named after the file that failed.
pub struct SharedLog {
    log: std::sync::Mutex<TrafficLog>,
    hex_name: String,
    raw_name: String,
    failed: std::sync::atomic::AtomicBool,
    on_failure: Box<dyn Fn(crate::Error) + Send + Sync>,
}

impl std::fmt::Debug for SharedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLog")
            .field("hex_name", &self.hex_name)
            .field("raw_name", &self.raw_name)
            .field("failed", &self.failed())
            .finish()
    }
}

impl SharedLog {
    /// `log` shared; `hex_name`/`raw_name` name its files in the failure's op
    /// (`{name}: write`); `on_failure` gets the first write error, once.
    pub fn new(
        log: TrafficLog,
        hex_name: impl Into<String>,
        raw_name: impl Into<String>,
        on_failure: impl Fn(crate::Error) + Send + Sync + 'static,
    ) -> SharedLog {
        SharedLog {
            log: std::sync::Mutex::new(log),
            hex_name: hex_name.into(),
            raw_name: raw_name.into(),
            failed: std::sync::atomic::AtomicBool::new(false),
            on_failure: Box::new(on_failure),
        }
    }

    /// A tap for one session: its chunks labelled `label` in the hex dump (none: no
    /// label), with its own stream offsets from 0.
    pub fn tap(self: &std::sync::Arc<Self>, label: Option<String>) -> SessionTap {
        SessionTap {
            log: self.clone(),
            label,
            offsets: Default::default(),
        }
    }

    /// True once a write failed (the log stopped there).
    pub fn failed(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// One session's view of a [`SharedLog`] (a relay [`Tap`](crate::relay::Tap)): `Send`
/// is recorded as [`Direction::Sent`], `Recv` as [`Direction::Received`].
#[derive(Debug)]
pub struct SessionTap {
    log: std::sync::Arc<SharedLog>,
    label: Option<String>,
    offsets: [std::sync::atomic::AtomicU64; 2],
}

impl crate::relay::Tap for SessionTap {
    fn data(&self, dir: crate::relay::Direction, bytes: &[u8]) {
        use std::sync::atomic::Ordering;
        let shared = &*self.log;
        if shared.failed() {
            return;
        }
        let (d, i) = match dir {
            crate::relay::Direction::Send => (Direction::Sent, 0),
            crate::relay::Direction::Recv => (Direction::Received, 1),
        };
        let offset = self.offsets[i].fetch_add(bytes.len() as u64, Ordering::SeqCst);
        let Ok(mut log) = shared.log.lock() else {
            return;
        };
        let mut failed = None;
        if let Some(h) = log.hex.as_mut()
            && let Err(e) =
                h.record_stream(SystemTime::now(), d, self.label.as_deref(), offset, bytes)
        {
            failed = Some((&shared.hex_name, e));
        }
        if failed.is_none()
            && let Some(r) = log.raw.as_mut()
            && let Err(e) = r.record(bytes)
        {
            failed = Some((&shared.raw_name, e));
        }
        if let Some((name, e)) = failed
            && !shared.failed.swap(true, Ordering::SeqCst)
        {
            (shared.on_failure)(crate::Error::from_io(format!("{name}: write"), e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_text_of_known_instants() {
        assert_eq!(utc_text(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let t = UNIX_EPOCH + Duration::from_micros(1_796_046_007_123_456);
        assert_eq!(utc_text(t), "2026-11-30T13:40:07.123456Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(utc_text(leap), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn dump_of_a_known_exchange() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_796_046_007);
        let mut d = HexDump::new(Vec::new());
        d.record_at(t0, Direction::Sent, None, b"hello\n").unwrap();
        d.record_at(
            t0 + Duration::from_micros(445),
            Direction::Received,
            Some("127.0.0.1:5555"),
            b"HELLO\n",
        )
        .unwrap();
        let long: Vec<u8> = (0u8..20).collect();
        d.record_at(t0 + Duration::from_secs(1), Direction::Sent, None, &long)
            .unwrap();
        d.record_at(t0 + Duration::from_secs(2), Direction::Received, None, b"")
            .unwrap();
        let text = String::from_utf8(d.into_inner()).unwrap();
        let expected = "\
> 2026-11-30T13:40:07.000000Z +0.000000s length=6 offset=0
00000000  68 65 6c 6c 6f 0a                                 |hello.|
< 2026-11-30T13:40:07.000445Z +0.000445s 127.0.0.1:5555 length=6 offset=0
00000000  48 45 4c 4c 4f 0a                                 |HELLO.|
> 2026-11-30T13:40:08.000000Z +1.000000s length=20 offset=6
00000006  00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f  |................|
00000016  10 11 12 13                                       |....|
< 2026-11-30T13:40:09.000000Z +2.000000s length=0 offset=6
";
        assert_eq!(text, expected);
    }

    #[test]
    fn raw_log_keeps_the_bytes_in_order() {
        let mut r = RawLog::new(Vec::new());
        r.record(b"ab").unwrap();
        r.record(b"").unwrap();
        r.record(&[0, 255]).unwrap();
        assert_eq!(r.into_inner(), vec![b'a', b'b', 0, 255]);
    }
}
