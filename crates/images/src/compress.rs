//! Compression of archives and layers: detection by magic bytes (gzip, zstd or none)
//! and decompressing readers, including multi-frame zstd streams.

use std::io::{self, BufRead, Read};

use flate2::bufread::MultiGzDecoder;
use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

/// Compression of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Plain, uncompressed.
    None,
    /// gzip (RFC 1952), possibly several members.
    Gzip,
    /// Zstandard, possibly several frames.
    Zstd,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const ZSTD_SKIPPABLE_MASK: u32 = 0xffff_fff0;
const ZSTD_SKIPPABLE_MAGIC: u32 = 0x184d_2a50;

/// Looks at the first bytes of `r` without consuming them.
pub fn sniff<R: BufRead>(r: &mut R) -> io::Result<Compression> {
    let mut head = Vec::with_capacity(4);
    // fill_buf may return fewer bytes than needed at a buffer boundary only at the very
    // start of a fresh BufReader; it returns at least what one read() gave.
    let buf = r.fill_buf()?;
    head.extend_from_slice(&buf[..buf.len().min(4)]);
    if head.starts_with(&GZIP_MAGIC) {
        return Ok(Compression::Gzip);
    }
    if head.len() == 4 {
        let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        if head == ZSTD_MAGIC || magic & ZSTD_SKIPPABLE_MASK == ZSTD_SKIPPABLE_MAGIC {
            return Ok(Compression::Zstd);
        }
    }
    Ok(Compression::None)
}

/// Wraps `r` in the decompressor its magic bytes call for.
pub fn decompress<'a, R: BufRead + 'a>(mut r: R) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match sniff(&mut r)? {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(ZstdReader::new(r)),
    })
}

/// Decodes every frame of a zstd stream, skipping skippable frames.
pub struct ZstdReader<R> {
    src: R,
    decoder: FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> ZstdReader<R> {
    /// Starts decoding at the current position of `src`.
    pub fn new(src: R) -> Self {
        ZstdReader {
            src,
            decoder: FrameDecoder::new(),
            in_frame: false,
        }
    }
}

fn zstd_err(e: FrameDecoderError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
}

impl<R: BufRead> Read for ZstdReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.in_frame {
                while self.decoder.can_collect() == 0 && !self.decoder.is_finished() {
                    self.decoder
                        .decode_blocks(&mut self.src, BlockDecodingStrategy::UptoBlocks(1))
                        .map_err(zstd_err)?;
                }
                let n = self.decoder.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                if self.decoder.is_finished() && self.decoder.can_collect() == 0 {
                    self.in_frame = false;
                }
                continue;
            }
            if self.src.fill_buf()?.is_empty() {
                return Ok(0);
            }
            match self.decoder.reset(&mut self.src) {
                Ok(()) => self.in_frame = true,
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped = io::copy(
                        &mut (&mut self.src).take(u64::from(length)),
                        &mut io::sink(),
                    )?;
                    if skipped != u64::from(length) {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "zstd: truncated skippable frame",
                        ));
                    }
                }
                Err(e) => return Err(zstd_err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Write};

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    fn roundtrip(compressed: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        decompress(BufReader::new(compressed))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn detects_and_decodes() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        assert_eq!(sniff(&mut &gzip(&data)[..]).unwrap(), Compression::Gzip);
        assert_eq!(sniff(&mut &zstd(&data)[..]).unwrap(), Compression::Zstd);
        assert_eq!(sniff(&mut &data[..]).unwrap(), Compression::None);
        assert_eq!(sniff(&mut &b""[..]).unwrap(), Compression::None);
        assert_eq!(roundtrip(&gzip(&data)), data);
        assert_eq!(roundtrip(&zstd(&data)), data);
        assert_eq!(roundtrip(&data), data);
    }

    #[test]
    fn zstd_multiple_and_skippable_frames() {
        let mut stream = zstd(b"first ");
        // A skippable frame: magic 0x184D2A5F, 4-byte little-endian length, payload.
        stream.extend_from_slice(&0x184d_2a5fu32.to_le_bytes());
        stream.extend_from_slice(&3u32.to_le_bytes());
        stream.extend_from_slice(b"xyz");
        stream.extend_from_slice(&zstd(b"second"));
        assert_eq!(roundtrip(&stream), b"first second");
    }

    #[test]
    fn gzip_multiple_members() {
        let mut stream = gzip(b"one ");
        stream.extend_from_slice(&gzip(b"two"));
        assert_eq!(roundtrip(&stream), b"one two");
    }
}
