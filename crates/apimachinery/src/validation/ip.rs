//! IP address and CIDR validation as upstream does it: with the "sloppy"
//! parser of `k8s.io/utils/net` (Go's pre-1.17 `net.ParseIP`, which accepts
//! IPv4 octets with leading zeros, read as decimal).

use crate::field::{FieldError, Path};

/// A parsed IP address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpAddr {
    /// An IPv4 address.
    V4([u8; 4]),
    /// An IPv6 address (possibly an IPv4-mapped one).
    V6([u8; 16]),
}

impl IpAddr {
    /// The IPv4 form, for IPv4 and IPv4-mapped IPv6 addresses (Go `To4`).
    pub fn to_v4(&self) -> Option<[u8; 4]> {
        match self {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(b) => {
                if b[..10].iter().all(|&x| x == 0) && b[10] == 0xff && b[11] == 0xff {
                    Some([b[12], b[13], b[14], b[15]])
                } else {
                    None
                }
            }
        }
    }
}

const BIG: u32 = 0xFF_FFFF;

/// Decimal digits at the start of `s`: (value, digits consumed), or `None`.
fn dtoi(s: &[u8]) -> Option<(u32, usize)> {
    let mut n: u32 = 0;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        n = n * 10 + u32::from(s[i] - b'0');
        if n >= BIG {
            return None;
        }
        i += 1;
    }
    (i > 0).then_some((n, i))
}

/// Hex digits at the start of `s`: (value, digits consumed), or `None`.
fn xtoi(s: &[u8]) -> Option<(u32, usize)> {
    let mut n: u32 = 0;
    let mut i = 0;
    while i < s.len() {
        let d = match s[i] {
            c @ b'0'..=b'9' => c - b'0',
            c @ b'a'..=b'f' => c - b'a' + 10,
            c @ b'A'..=b'F' => c - b'A' + 10,
            _ => break,
        };
        n = n * 16 + u32::from(d);
        if n >= BIG {
            return None;
        }
        i += 1;
    }
    (i > 0).then_some((n, i))
}

fn parse_ipv4(mut s: &[u8]) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    for (i, octet) in out.iter_mut().enumerate() {
        if s.is_empty() {
            return None;
        }
        if i > 0 {
            if s[0] != b'.' {
                return None;
            }
            s = &s[1..];
        }
        let (n, c) = dtoi(s)?;
        if n > 0xFF {
            return None;
        }
        *octet = n as u8;
        s = &s[c..];
    }
    s.is_empty().then_some(out)
}

fn parse_ipv6(mut s: &[u8]) -> Option<[u8; 16]> {
    let mut ip = [0u8; 16];
    let mut ellipsis: Option<usize> = None;
    if s.len() >= 2 && s[0] == b':' && s[1] == b':' {
        ellipsis = Some(0);
        s = &s[2..];
        if s.is_empty() {
            return Some(ip);
        }
    }
    let mut i = 0;
    while i < 16 {
        let (n, c) = xtoi(s)?;
        if n > 0xFFFF {
            return None;
        }
        if c < s.len() && s[c] == b'.' {
            // Trailing embedded IPv4.
            if ellipsis.is_none() && i != 12 {
                return None;
            }
            if i + 4 > 16 {
                return None;
            }
            let v4 = parse_ipv4(s)?;
            ip[i..i + 4].copy_from_slice(&v4);
            s = &[];
            i += 4;
            break;
        }
        ip[i] = (n >> 8) as u8;
        ip[i + 1] = n as u8;
        i += 2;
        s = &s[c..];
        if s.is_empty() {
            break;
        }
        if s[0] != b':' || s.len() == 1 {
            return None;
        }
        s = &s[1..];
        if s[0] == b':' {
            if ellipsis.is_some() {
                return None;
            }
            ellipsis = Some(i);
            s = &s[1..];
            if s.is_empty() {
                break;
            }
        }
    }
    if !s.is_empty() {
        return None;
    }
    if i < 16 {
        let e = ellipsis?;
        let n = 16 - i;
        for j in (e..i).rev() {
            ip[j + n] = ip[j];
        }
        for b in ip.iter_mut().skip(e).take(n) {
            *b = 0;
        }
    } else if ellipsis.is_some() {
        return None;
    }
    Some(ip)
}

/// Parses an IP address like upstream's `netutils.ParseIPSloppy`: the first
/// `.` or `:` decides between IPv4 and IPv6; zones are not accepted.
pub fn parse_ip_sloppy(s: &str) -> Option<IpAddr> {
    let b = s.as_bytes();
    for &c in b {
        match c {
            b'.' => return parse_ipv4(b).map(IpAddr::V4),
            b':' => return parse_ipv6(b).map(IpAddr::V6),
            _ => {}
        }
    }
    None
}

/// Parses a CIDR like upstream's `netutils.ParseCIDRSloppy`, returning the
/// address and the prefix length.
pub fn parse_cidr_sloppy(s: &str) -> Option<(IpAddr, u32)> {
    let (addr, mask) = s.split_once('/')?;
    let (ip, bits) = match parse_ipv4(addr.as_bytes()) {
        Some(v4) => (IpAddr::V4(v4), 32),
        None => (IpAddr::V6(parse_ipv6(addr.as_bytes())?), 128),
    };
    let (n, consumed) = dtoi(mask.as_bytes())?;
    if consumed != mask.len() || n > bits {
        return None;
    }
    Some((ip, n))
}

/// Tests that `value` is a valid IP address.
pub fn is_valid_ip(path: &Path, value: &str) -> Vec<FieldError> {
    if parse_ip_sloppy(value).is_none() {
        vec![FieldError::invalid(
            path,
            value,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        )]
    } else {
        Vec::new()
    }
}

/// Tests that `value` is a valid IPv4 address (IPv4-mapped IPv6 counts).
pub fn is_valid_ipv4_address(path: &Path, value: &str) -> Vec<FieldError> {
    match parse_ip_sloppy(value).and_then(|ip| ip.to_v4()) {
        Some(_) => Vec::new(),
        None => vec![FieldError::invalid(
            path,
            value,
            "must be a valid IPv4 address",
        )],
    }
}

/// Tests that `value` is a valid IPv6 address (not IPv4-mapped).
pub fn is_valid_ipv6_address(path: &Path, value: &str) -> Vec<FieldError> {
    match parse_ip_sloppy(value) {
        Some(ip) if ip.to_v4().is_none() => Vec::new(),
        _ => vec![FieldError::invalid(
            path,
            value,
            "must be a valid IPv6 address",
        )],
    }
}

/// Tests that `value` is a valid CIDR.
pub fn is_valid_cidr(path: &Path, value: &str) -> Vec<FieldError> {
    if parse_cidr_sloppy(value).is_none() {
        vec![FieldError::invalid(
            path,
            value,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        )]
    } else {
        Vec::new()
    }
}

fn format_v4(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

/// Formats an address as Go's `net.IP.String()` does (IPv4-mapped addresses
/// print as IPv4; IPv6 in RFC 5952 form).
fn format_ip(ip: &IpAddr) -> String {
    if let Some(v4) = ip.to_v4() {
        return format_v4(v4);
    }
    match ip {
        IpAddr::V4(a) => format_v4(*a),
        IpAddr::V6(b) => std::net::Ipv6Addr::from(*b).to_string(),
    }
}

/// Tests for an "ifaddr"-style CIDR in canonical form (`192.168.1.5/24`).
pub fn is_valid_interface_address(path: &Path, value: &str) -> Vec<FieldError> {
    let Some((ip, mut bits)) = parse_cidr_sloppy(value) else {
        return vec![FieldError::invalid(
            path,
            value,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        )];
    };
    if ip.to_v4().is_some() && bits > 32 {
        bits -= 96;
    }
    let canonical = format!("{}/{}", format_ip(&ip), bits);
    if value != canonical {
        return vec![FieldError::invalid(
            path,
            value,
            format!(
                "must be in canonical form ({})",
                crate::gofmt::quote(&canonical)
            ),
        )];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sloppy_ip_parsing() {
        assert_eq!(parse_ip_sloppy("10.9.8.7"), Some(IpAddr::V4([10, 9, 8, 7])));
        assert_eq!(
            parse_ip_sloppy("010.009.08.7"),
            Some(IpAddr::V4([10, 9, 8, 7]))
        );
        assert_eq!(parse_ip_sloppy("1.2.3"), None);
        assert_eq!(parse_ip_sloppy("1.2.3.256"), None);
        assert_eq!(parse_ip_sloppy("1.2.3.4.5"), None);
        assert_eq!(parse_ip_sloppy("1.2.3.4:80"), None);
        assert_eq!(parse_ip_sloppy(""), None);
        assert_eq!(parse_ip_sloppy("abc"), None);
        assert!(parse_ip_sloppy("::").is_some());
        assert!(parse_ip_sloppy("::1").is_some());
        assert!(parse_ip_sloppy("2001:db8::ffff").is_some());
        assert!(parse_ip_sloppy("2001:db8:0:0:0:0:0:1").is_some());
        assert!(parse_ip_sloppy("1:2:3:4:5:6:7:8").is_some());
        assert!(parse_ip_sloppy("1:2:3:4:5:6:7:8:9").is_none());
        assert!(parse_ip_sloppy("1::2::3").is_none());
        assert!(parse_ip_sloppy("1:2:3:4:5:6:7::8").is_none());
        assert!(parse_ip_sloppy("fe80::1%eth0").is_none());
        assert!(parse_ip_sloppy("12345::").is_none());
        let mapped = parse_ip_sloppy("::ffff:1.2.3.4");
        assert_eq!(mapped.and_then(|ip| ip.to_v4()), Some([1, 2, 3, 4]));
        assert!(parse_ip_sloppy("::ffff:01.2.3.4").is_some());
        assert!(parse_ip_sloppy("1:2:3:4:5:6:1.2.3.4").is_some());
        assert!(parse_ip_sloppy("1:2:3:4:5:1.2.3.4").is_none());
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            parse_cidr_sloppy("10.0.0.0/8"),
            Some((IpAddr::V4([10, 0, 0, 0]), 8))
        );
        assert!(parse_cidr_sloppy("10.0.0.0/33").is_none());
        assert!(parse_cidr_sloppy("10.0.0.0").is_none());
        assert!(parse_cidr_sloppy("10.0.0.0/").is_none());
        assert!(parse_cidr_sloppy("10.0.0.0/8x").is_none());
        assert!(parse_cidr_sloppy("2001:db8::/64").is_some());
        assert!(parse_cidr_sloppy("2001:db8::/129").is_none());
    }

    #[test]
    fn ip_validators() {
        let p = Path::new("spec").child("clusterIP");
        assert!(is_valid_ip(&p, "10.9.8.7").is_empty());
        assert_eq!(
            is_valid_ip(&p, "10.9.8")
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>(),
            vec![
                r#"spec.clusterIP: Invalid value: "10.9.8": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"#
            ]
        );
        assert!(is_valid_ipv4_address(&p, "::ffff:1.2.3.4").is_empty());
        assert_eq!(
            is_valid_ipv4_address(&p, "::1")[0].to_string(),
            r#"spec.clusterIP: Invalid value: "::1": must be a valid IPv4 address"#
        );
        assert!(is_valid_ipv6_address(&p, "::1").is_empty());
        assert_eq!(
            is_valid_ipv6_address(&p, "1.2.3.4")[0].to_string(),
            r#"spec.clusterIP: Invalid value: "1.2.3.4": must be a valid IPv6 address"#
        );
        assert!(is_valid_cidr(&p, "10.0.0.0/8").is_empty());
        assert_eq!(
            is_valid_cidr(&p, "10.0.0.0")[0].to_string(),
            r#"spec.clusterIP: Invalid value: "10.0.0.0": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"#
        );
        assert!(is_valid_interface_address(&p, "192.168.1.5/24").is_empty());
        assert!(is_valid_interface_address(&p, "2001:db8::1/64").is_empty());
        assert_eq!(
            is_valid_interface_address(&p, "192.168.001.5/24")[0].to_string(),
            r#"spec.clusterIP: Invalid value: "192.168.001.5/24": must be in canonical form ("192.168.1.5/24")"#
        );
        assert_eq!(
            is_valid_interface_address(&p, "::ffff:192.168.0.1/120")[0].to_string(),
            r#"spec.clusterIP: Invalid value: "::ffff:192.168.0.1/120": must be in canonical form ("192.168.0.1/24")"#
        );
    }
}
