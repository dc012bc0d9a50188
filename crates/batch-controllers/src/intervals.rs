//! Ordered index intervals: the compressed index lists of Indexed Jobs
//! (`status.completedIndexes`, `status.failedIndexes`, success policy
//! `succeededIndexes`), written `"1,3-5,7"`: ascending, comma separated, a run of
//! three or more as `first-last`, a run of two as `first,last`.

use std::fmt;

/// A closed range of indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// The first index of the range.
    pub first: i32,
    /// The last index of the range (inclusive).
    pub last: i32,
}

/// Disjoint, non-adjacent intervals in ascending order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderedIntervals(pub Vec<Interval>);

impl OrderedIntervals {
    /// Parses an index list, keeping only indexes below `completions` (a range
    /// crossing the limit is cut; parsing stops at the first range starting at or
    /// above it). Unparsable items are skipped, as upstream logs and ignores them.
    pub fn parse(s: &str, completions: i32) -> Self {
        let mut out: Vec<Interval> = Vec::new();
        if s.is_empty() {
            return OrderedIntervals(out);
        }
        for item in s.split(',') {
            let mut limits = item.split('-');
            let Some(Ok(first)) = limits.next().map(str::parse::<i32>) else {
                continue;
            };
            if first >= completions {
                break;
            }
            let last = match limits.next() {
                Some(l) => match l.parse::<i32>() {
                    Ok(l) => l.min(completions - 1),
                    Err(_) => continue,
                },
                None => first,
            };
            match out.last_mut() {
                Some(prev) if prev.last == first - 1 => prev.last = last,
                _ => out.push(Interval { first, last }),
            }
        }
        OrderedIntervals(out)
    }

    /// A new list that also holds `indexes` (given in ascending order).
    pub fn with_ordered_indexes(&self, indexes: &[i32]) -> Self {
        let singles = OrderedIntervals(
            indexes
                .iter()
                .map(|&i| Interval { first: i, last: i })
                .collect(),
        );
        self.merge(&singles)
    }

    /// The union of two lists.
    pub fn merge(&self, other: &OrderedIntervals) -> Self {
        let mut out: Vec<Interval> = Vec::new();
        let push = |out: &mut Vec<Interval>, iv: Interval| match out.last_mut() {
            Some(prev) if iv.first <= prev.last + 1 => prev.last = prev.last.max(iv.last),
            _ => out.push(iv),
        };
        let (a, b) = (&self.0, &other.0);
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            if a[i].first < b[j].first {
                push(&mut out, a[i]);
                i += 1;
            } else {
                push(&mut out, b[j]);
                j += 1;
            }
        }
        for iv in a[i..].iter().chain(&b[j..]) {
            push(&mut out, *iv);
        }
        OrderedIntervals(out)
    }

    /// How many indexes the list holds.
    pub fn total(&self) -> i32 {
        self.0.iter().map(|iv| iv.last - iv.first + 1).sum()
    }

    /// Whether `ix` is in the list.
    pub fn has(&self, ix: i32) -> bool {
        let pos = self.0.partition_point(|iv| iv.last < ix);
        self.0.get(pos).is_some_and(|iv| iv.first <= ix)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for OrderedIntervals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, iv) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}", iv.first)?;
            if iv.last == iv.first + 1 {
                write!(f, ",{}", iv.last)?;
            } else if iv.last > iv.first {
                write!(f, "-{}", iv.last)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(pairs: &[(i32, i32)]) -> OrderedIntervals {
        OrderedIntervals(
            pairs
                .iter()
                .map(|&(first, last)| Interval { first, last })
                .collect(),
        )
    }

    #[test]
    fn parses_and_formats() {
        let p = OrderedIntervals::parse("1,3-5", 10);
        assert_eq!(p, iv(&[(1, 1), (3, 5)]));
        assert_eq!(p.to_string(), "1,3-5");
        assert_eq!(p.total(), 4);
        // Adjacent items join; a run of two prints as a pair.
        assert_eq!(OrderedIntervals::parse("0,1", 10), iv(&[(0, 1)]));
        assert_eq!(iv(&[(0, 1)]).to_string(), "0,1");
        assert_eq!(OrderedIntervals::parse("0,1,2", 10).to_string(), "0-2");
        assert_eq!(OrderedIntervals::parse("", 10), iv(&[]));
        assert_eq!(iv(&[]).to_string(), "");
    }

    #[test]
    fn parse_respects_completions_and_skips_garbage() {
        assert_eq!(OrderedIntervals::parse("1,3-9", 5), iv(&[(1, 1), (3, 4)]));
        assert_eq!(OrderedIntervals::parse("1,7,2", 5), iv(&[(1, 1)]));
        assert_eq!(OrderedIntervals::parse("x,2,a-4,3", 5), iv(&[(2, 3)]));
    }

    #[test]
    fn merges_and_looks_up() {
        let a = iv(&[(0, 2), (7, 9)]);
        let merged = a.with_ordered_indexes(&[3, 5, 10]);
        assert_eq!(merged, iv(&[(0, 3), (5, 5), (7, 10)]));
        assert_eq!(merged.to_string(), "0-3,5,7-10");
        assert!(merged.has(0) && merged.has(5) && merged.has(10));
        assert!(!merged.has(4) && !merged.has(6) && !merged.has(11) && !merged.has(-1));
        assert_eq!(
            iv(&[(1, 4)]).merge(&iv(&[(2, 3), (6, 6)])),
            iv(&[(1, 4), (6, 6)])
        );
    }
}
