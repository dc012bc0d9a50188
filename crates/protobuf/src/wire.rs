//! Low-level protobuf wire format: varints, keys, length-delimited fields,
//! and a reader that splits a message into its raw fields.

use crate::ProtoError;

/// Wire type of varint-encoded fields (int32, int64, bool, enums).
pub(crate) const VARINT: u8 = 0;
/// Wire type of 8-byte little-endian fields (double, fixed64).
pub(crate) const FIXED64: u8 = 1;
/// Wire type of length-delimited fields (strings, bytes, messages, packed lists).
pub(crate) const LEN: u8 = 2;
/// Wire type of 4-byte little-endian fields (float, fixed32).
pub(crate) const FIXED32: u8 = 5;

/// One field as it appears on the wire, before the schema gives it meaning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Raw<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

impl Raw<'_> {
    /// The wire type number of this value, for error messages.
    pub(crate) fn wire_type(&self) -> u8 {
        match self {
            Raw::Varint(_) => VARINT,
            Raw::Fixed64(_) => FIXED64,
            Raw::Fixed32(_) => FIXED32,
            Raw::Bytes(_) => LEN,
        }
    }
}

/// Reads a base-128 varint from `data` at `*pos`, advancing `*pos`.
pub(crate) fn read_varint(data: &[u8], pos: &mut usize) -> Result<u64, ProtoError> {
    let mut value: u64 = 0;
    for shift in 0..10 {
        let byte = *data.get(*pos).ok_or(ProtoError::Truncated)?;
        *pos += 1;
        if shift == 9 && byte > 1 {
            return Err(ProtoError::VarintOverflow);
        }
        value |= u64::from(byte & 0x7f) << (7 * shift);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ProtoError::VarintOverflow)
}

fn take<'a>(data: &'a [u8], pos: &mut usize, len: usize) -> Result<&'a [u8], ProtoError> {
    let end = pos.checked_add(len).ok_or(ProtoError::Truncated)?;
    let slice = data.get(*pos..end).ok_or(ProtoError::Truncated)?;
    *pos = end;
    Ok(slice)
}

/// Splits a message into `(field number, raw value)` pairs in wire order.
pub(crate) fn parse_fields(data: &[u8]) -> Result<Vec<(u32, Raw<'_>)>, ProtoError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let key = read_varint(data, &mut pos)?;
        let number = u32::try_from(key >> 3).map_err(|_| ProtoError::BadFieldNumber(key >> 3))?;
        if number == 0 {
            return Err(ProtoError::BadFieldNumber(0));
        }
        let raw = match (key & 7) as u8 {
            VARINT => Raw::Varint(read_varint(data, &mut pos)?),
            FIXED64 => {
                let b = take(data, &mut pos, 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Raw::Fixed64(u64::from_le_bytes(a))
            }
            LEN => {
                let len = read_varint(data, &mut pos)?;
                let len = usize::try_from(len).map_err(|_| ProtoError::Truncated)?;
                Raw::Bytes(take(data, &mut pos, len)?)
            }
            FIXED32 => {
                let b = take(data, &mut pos, 4)?;
                let mut a = [0u8; 4];
                a.copy_from_slice(b);
                Raw::Fixed32(u32::from_le_bytes(a))
            }
            other => return Err(ProtoError::UnsupportedWireType(other)),
        };
        out.push((number, raw));
    }
    Ok(out)
}

/// Appends a varint.
pub(crate) fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// Appends a field key.
pub(crate) fn put_key(buf: &mut Vec<u8>, number: u32, wire_type: u8) {
    put_varint(buf, (u64::from(number) << 3) | u64::from(wire_type));
}

/// Appends a length-delimited field.
pub(crate) fn put_bytes(buf: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_key(buf, number, LEN);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// Appends a varint field.
pub(crate) fn put_varint_field(buf: &mut Vec<u8>, number: u32, value: u64) {
    put_key(buf, number, VARINT);
    put_varint(buf, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip() {
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            let mut pos = 0;
            assert_eq!(read_varint(&buf, &mut pos).unwrap(), v);
            assert_eq!(pos, buf.len());
        }
        let mut buf = Vec::new();
        put_varint(&mut buf, 300);
        assert_eq!(buf, [0xac, 0x02]);
    }

    #[test]
    fn truncated_and_overlong() {
        let mut pos = 0;
        assert!(matches!(
            read_varint(&[0x80], &mut pos),
            Err(ProtoError::Truncated)
        ));
        let mut pos = 0;
        let long = [0xffu8; 11];
        assert!(matches!(
            read_varint(&long, &mut pos),
            Err(ProtoError::VarintOverflow)
        ));
        assert!(matches!(
            parse_fields(&[0x0a, 0x05, b'a']),
            Err(ProtoError::Truncated)
        ));
        assert!(matches!(
            parse_fields(&[0x0b]),
            Err(ProtoError::UnsupportedWireType(3))
        ));
    }

    #[test]
    fn parses_all_wire_types() {
        let data = [
            0x08, 0x96, 0x01, 0x11, 1, 0, 0, 0, 0, 0, 0, 0, 0x1a, 0x02, b'h', b'i', 0x25, 2, 0, 0,
            0,
        ];
        let fields = parse_fields(&data).unwrap();
        assert_eq!(
            fields,
            vec![
                (1, Raw::Varint(150)),
                (2, Raw::Fixed64(1)),
                (3, Raw::Bytes(b"hi")),
                (4, Raw::Fixed32(2))
            ]
        );
    }
}
