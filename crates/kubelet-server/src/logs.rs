//! Container logs as the kubelet serves them (`/containerLogs/...` and output-only
//! attach): reading CRI log files (`<RFC3339Nano> <stdout|stderr> <F|P> <text>` per line,
//! a `P` record continuing on the next one), the `PodLogOptions` query parameters with
//! upstream's validation, and the reader that applies them (tail, since, timestamps,
//! byte limit, stream selection) and follows a growing file until its container exits.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use http::StatusCode;
use jiff::Timestamp;

/// Which output stream a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One parsed CRI log record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord<'a> {
    /// When the runtime read the text.
    pub time: Timestamp,
    /// The stream.
    pub stream: LogStream,
    /// A partial record (`P`): the line continues in the next record.
    pub partial: bool,
    /// The text, without the line's newline.
    pub content: &'a [u8],
}

/// Parses one line of a CRI log file (without its trailing newline); `None` for a
/// malformed line.
pub fn parse_cri_line(line: &[u8]) -> Option<LogRecord<'_>> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let ts = std::str::from_utf8(parts.next()?).ok()?;
    let stream = match parts.next()? {
        b"stdout" => LogStream::Stdout,
        b"stderr" => LogStream::Stderr,
        _ => return None,
    };
    let tag = parts.next()?;
    // Tags are ':'-separated; the first one is the partial/full marker.
    let partial = match tag.split(|&b| b == b':').next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    let content = parts.next().unwrap_or_default();
    Some(LogRecord {
        time: ts.parse().ok()?,
        stream,
        partial,
        content,
    })
}

/// Formats a time as Go's `RFC3339NanoFixed` in UTC (always nine fraction digits), the
/// prefix `timestamps=true` puts before each line.
pub fn format_timestamp(t: Timestamp) -> String {
    let dt = t.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.subsec_nanosecond()
    )
}

/// Which streams to return (`stream` query parameter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StreamFilter {
    /// Both.
    #[default]
    All,
    /// Only stdout.
    Stdout,
    /// Only stderr.
    Stderr,
}

impl StreamFilter {
    fn wants(self, s: LogStream) -> bool {
        matches!(
            (self, s),
            (StreamFilter::All, _)
                | (StreamFilter::Stdout, LogStream::Stdout)
                | (StreamFilter::Stderr, LogStream::Stderr)
        )
    }
}

/// The `PodLogOptions` a request asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming until the container exits.
    pub follow: bool,
    /// The previous (terminated) instance of the container.
    pub previous: bool,
    /// Only the last N lines (records) of the file.
    pub tail_lines: Option<i64>,
    /// Stop after this many bytes of output.
    pub limit_bytes: Option<i64>,
    /// Skip records older than this.
    pub since: Option<Timestamp>,
    /// Prefix every line with its timestamp.
    pub timestamps: bool,
    /// Which streams.
    pub stream: StreamFilter,
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

impl LogOptions {
    /// Decodes and validates the query parameters as the kubelet does (`tail` is the old
    /// name of `tailLines`, `tail=all` means no limit). Errors carry upstream's status
    /// and body.
    pub fn from_query(
        query: &[(String, String)],
        now: Timestamp,
    ) -> Result<Self, (StatusCode, String)> {
        let undecodable = || {
            (
                StatusCode::BAD_REQUEST,
                r#"{"message": "Unable to decode query."}"#.to_string(),
            )
        };
        let invalid = || {
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                r#"{"message": "Invalid request."}"#.to_string(),
            )
        };
        let first = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let boolean = |name: &str| -> Result<bool, (StatusCode, String)> {
            match first(name) {
                None | Some("") => Ok(false),
                Some(v) => parse_bool(v).ok_or_else(undecodable),
            }
        };
        let int = |name: &str| -> Result<Option<i64>, (StatusCode, String)> {
            match first(name) {
                None | Some("") => Ok(None),
                Some(v) => v.parse().map(Some).map_err(|_| undecodable()),
            }
        };
        let mut opts = LogOptions {
            follow: boolean("follow")?,
            previous: boolean("previous")?,
            timestamps: boolean("timestamps")?,
            tail_lines: int("tailLines")?,
            limit_bytes: int("limitBytes")?,
            ..Default::default()
        };
        if let Some(tail) = first("tail").filter(|t| !t.is_empty()) {
            opts.tail_lines = if tail == "all" {
                None
            } else {
                Some(tail.parse().map_err(|_| undecodable())?)
            };
        }
        let since_seconds = int("sinceSeconds")?;
        let since_time = match first("sinceTime") {
            None | Some("") => None,
            Some(v) => Some(v.parse::<Timestamp>().map_err(|_| undecodable())?),
        };
        opts.stream = match first("stream") {
            None | Some("") | Some("All") => StreamFilter::All,
            Some("Stdout") => StreamFilter::Stdout,
            Some("Stderr") => StreamFilter::Stderr,
            Some(_) => return Err(invalid()),
        };
        if opts.tail_lines.is_some_and(|t| t < 0)
            || opts.limit_bytes.is_some_and(|l| l < 1)
            || since_seconds.is_some_and(|s| s < 1)
            || (since_seconds.is_some() && since_time.is_some())
            || (opts.stream != StreamFilter::All && opts.tail_lines.is_some())
        {
            return Err(invalid());
        }
        opts.since = match (since_time, since_seconds) {
            (Some(t), _) => Some(t),
            (None, Some(s)) => Some(
                now.checked_sub(jiff::SignedDuration::from_secs(s))
                    .unwrap_or(Timestamp::MIN),
            ),
            (None, None) => None,
        };
        Ok(opts)
    }
}

/// The offset where the last `n` lines of `f` start (0 when it has fewer).
pub(crate) fn tail_offset(f: &mut File, n: u64) -> io::Result<u64> {
    let len = f.metadata()?.len();
    if n == 0 {
        return Ok(len);
    }
    let mut pos = len;
    let mut count = 0u64;
    let mut buf = vec![0u8; 8192];
    while pos > 0 {
        let step = (buf.len() as u64).min(pos);
        pos -= step;
        f.seek(SeekFrom::Start(pos))?;
        let chunk = &mut buf[..step as usize];
        f.read_exact(chunk)?;
        for i in (0..chunk.len()).rev() {
            let at = pos + i as u64;
            // The newline ending the last line does not start a line.
            if chunk[i] == b'\n' && at + 1 != len {
                count += 1;
                if count == n {
                    return Ok(at + 1);
                }
            }
        }
    }
    Ok(0)
}

/// How often a followed file is checked for growth, and how often the container's state
/// is checked while the file does not grow.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
const LIVENESS_POLL: Duration = Duration::from_millis(500);

/// Reads the log file at `path` with `opts`, handing output to `emit(stream, bytes)`
/// (returning `false` stops). With `follow` the file is followed (also across a
/// rotation to a new file at the same path) until `running()` reports the container
/// gone and the file was read to its end. Blocking.
pub(crate) fn read_logs(
    path: &Path,
    opts: &LogOptions,
    running: &dyn Fn() -> bool,
    emit: &mut dyn FnMut(LogStream, &[u8]) -> bool,
) -> io::Result<()> {
    let mut file = File::open(path)?;
    let mut ino = file.metadata()?.ino();
    if let Some(n) = opts.tail_lines {
        let start = tail_offset(&mut file, n.max(0) as u64)?;
        file.seek(SeekFrom::Start(start))?;
    } else {
        file.seek(SeekFrom::Start(0))?;
    }
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut left = opts.limit_bytes.map(|l| l.max(0) as u64);
    let mut line: Vec<u8> = Vec::new();
    // Whether the next record starts a new line (the previous one was complete).
    let mut at_line_start = [true, true];
    let mut last_liveness = Instant::now();
    let mut exited = false;
    let mut out = Vec::new();
    loop {
        let n = reader.read_until(b'\n', &mut line)?;
        let complete = line.last() == Some(&b'\n');
        if n > 0 && (complete || !opts.follow) {
            let text = if complete {
                &line[..line.len() - 1]
            } else {
                &line[..]
            };
            if let Some(rec) = parse_cri_line(text) {
                let idx = (rec.stream == LogStream::Stderr) as usize;
                let prefix = at_line_start[idx];
                at_line_start[idx] = !rec.partial;
                let wanted =
                    opts.stream.wants(rec.stream) && opts.since.is_none_or(|s| rec.time >= s);
                if wanted {
                    out.clear();
                    if opts.timestamps && prefix {
                        out.extend_from_slice(format_timestamp(rec.time).as_bytes());
                        out.push(b' ');
                    }
                    out.extend_from_slice(rec.content);
                    if !rec.partial {
                        out.push(b'\n');
                    }
                    let mut chunk: &[u8] = &out;
                    if let Some(l) = left.as_mut() {
                        let take = (*l).min(chunk.len() as u64) as usize;
                        chunk = &chunk[..take];
                        *l -= take as u64;
                    }
                    if !chunk.is_empty() && !emit(rec.stream, chunk) {
                        return Ok(());
                    }
                    if left == Some(0) {
                        return Ok(());
                    }
                }
            }
            line.clear();
            continue;
        }
        // At the end of what is there now (keeping an incomplete last line for later).
        if !opts.follow || exited {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_POLL);
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.ino() != ino {
                // Rotated: finish the old file first, then continue with the new one.
                if reader.fill_buf().map(|b| b.is_empty()).unwrap_or(true) {
                    if let Ok(f) = File::open(path) {
                        ino = f.metadata().map(|m| m.ino()).unwrap_or(ino);
                        reader = BufReader::with_capacity(64 * 1024, f);
                        line.clear();
                        continue;
                    }
                }
            }
        }
        if last_liveness.elapsed() >= LIVENESS_POLL {
            last_liveness = Instant::now();
            if !running() {
                // One more pass to pick up what was written before the exit.
                exited = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn cri_lines() {
        let r = parse_cri_line(b"2016-10-06T00:17:09.669794202Z stdout F hello world").unwrap();
        assert_eq!(r.stream, LogStream::Stdout);
        assert!(!r.partial);
        assert_eq!(r.content, b"hello world");
        assert_eq!(r.time, ts("2016-10-06T00:17:09.669794202Z"));
        let r = parse_cri_line(b"2016-10-06T00:17:09.669794202+02:00 stderr P ").unwrap();
        assert_eq!(
            (r.stream, r.partial, r.content),
            (LogStream::Stderr, true, &b""[..])
        );
        let r = parse_cri_line(b"2016-10-06T00:17:09Z stdout P:x a").unwrap();
        assert!(r.partial);
        assert!(parse_cri_line(b"garbage").is_none());
        assert!(parse_cri_line(b"2016-10-06T00:17:09Z other F x").is_none());
        assert!(parse_cri_line(b"notatime stdout F x").is_none());
    }

    #[test]
    fn timestamps_have_nine_digits() {
        assert_eq!(
            format_timestamp(ts("2016-10-06T00:17:09.6697942Z")),
            "2016-10-06T00:17:09.669794200Z"
        );
        assert_eq!(
            format_timestamp(ts("2016-10-06T02:17:09+02:00")),
            "2016-10-06T00:17:09.000000000Z"
        );
    }

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn query_parameters() {
        let now = ts("2024-01-01T00:00:10Z");
        let o = LogOptions::from_query(
            &q(&[("follow", "true"), ("tailLines", "3"), ("timestamps", "1")]),
            now,
        )
        .unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!(o.tail_lines, Some(3));
        let o = LogOptions::from_query(&q(&[("sinceSeconds", "4")]), now).unwrap();
        assert_eq!(o.since, Some(ts("2024-01-01T00:00:06Z")));
        let o = LogOptions::from_query(&q(&[("tail", "all"), ("tailLines", "2")]), now).unwrap();
        assert_eq!(o.tail_lines, None);
        let o = LogOptions::from_query(&q(&[("tail", "5")]), now).unwrap();
        assert_eq!(o.tail_lines, Some(5));
        let bad = LogOptions::from_query(&q(&[("follow", "yes")]), now).unwrap_err();
        assert_eq!(
            bad,
            (
                StatusCode::BAD_REQUEST,
                r#"{"message": "Unable to decode query."}"#.to_string()
            )
        );
        for invalid in [
            q(&[("tailLines", "-1")]),
            q(&[("limitBytes", "0")]),
            q(&[("sinceSeconds", "0")]),
            q(&[("sinceSeconds", "1"), ("sinceTime", "2024-01-01T00:00:00Z")]),
            q(&[("stream", "Stdout"), ("tailLines", "1")]),
            q(&[("stream", "Both")]),
        ] {
            let e = LogOptions::from_query(&invalid, now).unwrap_err();
            assert_eq!(e.0, StatusCode::UNPROCESSABLE_ENTITY, "{invalid:?}");
            assert_eq!(e.1, r#"{"message": "Invalid request."}"#);
        }
    }

    const LOG: &str = "\
2024-01-01T00:00:01Z stdout F one
2024-01-01T00:00:02.5Z stderr F two
2024-01-01T00:00:03Z stdout P thr
2024-01-01T00:00:04Z stdout F ee
not a record
2024-01-01T00:00:05Z stdout F five
";

    fn read(opts: &LogOptions) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(&p, LOG).unwrap();
        let mut out = Vec::new();
        read_logs(&p, opts, &|| false, &mut |_, b| {
            out.extend_from_slice(b);
            true
        })
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn reading_with_options() {
        let all = LogOptions::default();
        assert_eq!(read(&all), "one\ntwo\nthree\nfive\n");
        let o = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            read(&o),
            "2024-01-01T00:00:01.000000000Z one\n\
             2024-01-01T00:00:02.500000000Z two\n\
             2024-01-01T00:00:03.000000000Z three\n\
             2024-01-01T00:00:05.000000000Z five\n"
        );
        let o = LogOptions {
            tail_lines: Some(2),
            ..Default::default()
        };
        assert_eq!(read(&o), "five\n");
        let o = LogOptions {
            tail_lines: Some(3),
            ..Default::default()
        };
        assert_eq!(read(&o), "ee\nfive\n");
        let o = LogOptions {
            tail_lines: Some(0),
            ..Default::default()
        };
        assert_eq!(read(&o), "");
        let o = LogOptions {
            tail_lines: Some(100),
            ..Default::default()
        };
        assert_eq!(read(&o), "one\ntwo\nthree\nfive\n");
        let o = LogOptions {
            since: Some(ts("2024-01-01T00:00:02.5Z")),
            ..Default::default()
        };
        assert_eq!(read(&o), "two\nthree\nfive\n");
        let o = LogOptions {
            limit_bytes: Some(6),
            ..Default::default()
        };
        assert_eq!(read(&o), "one\ntw");
        let o = LogOptions {
            stream: StreamFilter::Stderr,
            ..Default::default()
        };
        assert_eq!(read(&o), "two\n");
        let o = LogOptions {
            stream: StreamFilter::Stdout,
            ..Default::default()
        };
        assert_eq!(read(&o), "one\nthree\nfive\n");
    }

    #[test]
    fn follow_until_exit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(&p, "2024-01-01T00:00:01Z stdout F a\n").unwrap();
        let alive = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let writer = {
            let p = p.clone();
            let alive = alive.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
                // A record written in two pieces is only emitted once complete.
                f.write_all(b"2024-01-01T00:00:02Z stdout F ").unwrap();
                f.flush().unwrap();
                std::thread::sleep(Duration::from_millis(250));
                f.write_all(b"b\n").unwrap();
                std::thread::sleep(Duration::from_millis(300));
                alive.store(false, std::sync::atomic::Ordering::SeqCst);
            })
        };
        let opts = LogOptions {
            follow: true,
            ..Default::default()
        };
        let mut out = Vec::new();
        let start = Instant::now();
        read_logs(
            &p,
            &opts,
            &|| alive.load(std::sync::atomic::Ordering::SeqCst),
            &mut |_, b| {
                out.extend_from_slice(b);
                true
            },
        )
        .unwrap();
        writer.join().unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a\nb\n");
        assert!(start.elapsed() >= Duration::from_millis(800));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn tail_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "a\nb\nc\n").unwrap();
        let mut f = File::open(&p).unwrap();
        assert_eq!(tail_offset(&mut f, 1).unwrap(), 4);
        assert_eq!(tail_offset(&mut f, 2).unwrap(), 2);
        assert_eq!(tail_offset(&mut f, 3).unwrap(), 0);
        assert_eq!(tail_offset(&mut f, 9).unwrap(), 0);
        assert_eq!(tail_offset(&mut f, 0).unwrap(), 6);
        std::fs::write(&p, "a\nb").unwrap();
        let mut f = File::open(&p).unwrap();
        assert_eq!(tail_offset(&mut f, 1).unwrap(), 2);
    }
}
