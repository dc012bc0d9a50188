//! The CRI container log format the kubelet reads (`kubectl logs`): one record per line
//! written by the container, `<RFC3339Nano UTC> <stdout|stderr> <F|P> <text>\n`, where `P`
//! marks a partial record (a line longer than 16 KiB is cut into 16 KiB pieces, and an
//! unterminated last chunk at end of stream is partial too).

use std::time::{SystemTime, UNIX_EPOCH};

/// Longest record body before a line is split into partial records (containerd's
/// `max_container_log_line_size` default).
pub(crate) const MAX_LINE: usize = 16 * 1024;

/// Splits a byte stream into CRI log records.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes read from the stream; `emit(body, full)` is called per record.
    pub(crate) fn push(&mut self, mut data: &[u8], emit: &mut impl FnMut(&[u8], bool)) {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.pending.extend_from_slice(&data[..i]);
                    data = &data[i + 1..];
                    self.flush_oversized(emit);
                    let mut body: &[u8] = &self.pending;
                    if body.last() == Some(&b'\r') {
                        body = &body[..body.len() - 1];
                    }
                    emit(body, true);
                    self.pending.clear();
                }
                None => {
                    self.pending.extend_from_slice(data);
                    self.flush_oversized(emit);
                    data = &[];
                }
            }
        }
    }

    /// Ends the stream: an unterminated remainder becomes a partial record.
    pub(crate) fn finish(&mut self, emit: &mut impl FnMut(&[u8], bool)) {
        if !self.pending.is_empty() {
            emit(&self.pending, false);
            self.pending.clear();
        }
    }

    fn flush_oversized(&mut self, emit: &mut impl FnMut(&[u8], bool)) {
        while self.pending.len() > MAX_LINE {
            emit(&self.pending[..MAX_LINE], false);
            self.pending.drain(..MAX_LINE);
        }
    }
}

/// Formats one log record.
pub(crate) fn format_record(time: SystemTime, stream: &str, full: bool, body: &[u8]) -> Vec<u8> {
    let ts = format_rfc3339_nano(time);
    let mut out = Vec::with_capacity(ts.len() + stream.len() + body.len() + 5);
    out.extend_from_slice(ts.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_bytes());
    out.push(b' ');
    out.push(if full { b'F' } else { b'P' });
    out.push(b' ');
    out.extend_from_slice(body);
    out.push(b'\n');
    out
}

/// Formats a time as Go's `time.RFC3339Nano` in UTC: nanoseconds with trailing zeros
/// dropped (no fraction at all for a whole second), e.g. `2016-10-06T00:17:09.6697942Z`.
pub fn format_rfc3339_nano(time: SystemTime) -> String {
    let d = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn split(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        let mut s = LineSplitter::default();
        let mut emit = |b: &[u8], full: bool| out.push((b.to_vec(), full));
        for c in chunks {
            s.push(c, &mut emit);
        }
        s.finish(&mut emit);
        out
    }

    #[test]
    fn timestamps() {
        let t = UNIX_EPOCH + Duration::new(1_475_713_029, 669_794_200);
        assert_eq!(format_rfc3339_nano(t), "2016-10-06T00:17:09.6697942Z");
        assert_eq!(
            format_rfc3339_nano(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            format_rfc3339_nano(UNIX_EPOCH + Duration::new(4_102_444_799, 1)),
            "2099-12-31T23:59:59.000000001Z"
        );
        assert_eq!(format_rfc3339_nano(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn records() {
        let t = UNIX_EPOCH + Duration::new(1_475_713_029, 669_794_202);
        assert_eq!(
            format_record(t, "stdout", true, b"hello"),
            b"2016-10-06T00:17:09.669794202Z stdout F hello\n"
        );
        assert_eq!(
            format_record(t, "stderr", false, b""),
            b"2016-10-06T00:17:09.669794202Z stderr P \n"
        );
    }

    #[test]
    fn lines_across_chunks() {
        assert_eq!(
            split(&[b"a\nb", b"c\r\n\n", b"tail"]),
            vec![
                (b"a".to_vec(), true),
                (b"bc".to_vec(), true),
                (b"".to_vec(), true),
                (b"tail".to_vec(), false)
            ]
        );
        assert!(split(&[]).is_empty());
    }

    #[test]
    fn long_lines_split_at_16k() {
        let long = vec![b'x'; 2 * MAX_LINE + 10];
        let mut input = long.clone();
        input.push(b'\n');
        let out = split(&[&input[..1000], &input[1000..]]);
        assert_eq!(out.len(), 3);
        assert_eq!((out[0].0.len(), out[0].1), (MAX_LINE, false));
        assert_eq!((out[1].0.len(), out[1].1), (MAX_LINE, false));
        assert_eq!((out[2].0.len(), out[2].1), (10, true));
        // Exactly 16 KiB plus newline stays one full record.
        let mut exact = vec![b'y'; MAX_LINE];
        exact.push(b'\n');
        assert_eq!(split(&[&exact]), vec![(vec![b'y'; MAX_LINE], true)]);
    }
}
