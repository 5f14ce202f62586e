//! Transparent gzip: files that start with the gzip magic are inflated, others pass through.

use std::borrow::Cow;
use std::io::{self, Read};

use crate::error::{Error, Position, Result};

pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// The bytes themselves, or their decompression when they are gzip data. Inflates everything:
/// for IDX files use [`crate::data::idx::read`], which stops at what the header declares.
pub fn maybe_inflate<'a>(bytes: &'a [u8], source: &str) -> Result<Cow<'a, [u8]>> {
    if !is_gzip(bytes) {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(1 << 28));
    let mut dec = flate2::read::MultiGzDecoder::new(bytes);
    dec.read_to_end(&mut out).map_err(|e| corrupt(source, e, out.len()))?;
    Ok(Cow::Owned(out))
}

/// The error for a gzip stream that failed after `inflated` bytes.
pub(crate) fn corrupt(source: &str, e: io::Error, inflated: usize) -> Error {
    Error::format(
        source,
        Position::Byte(inflated as u64),
        format!("corrupt gzip data ({e}) after {inflated} inflated bytes"),
    )
}

/// Appends from `r` to `out` until `out` holds `n` bytes or the stream ends. Memory follows the
/// data that arrives (doubling, never past `n`), so a header's claim costs nothing until the
/// stream backs it.
pub(crate) fn read_up_to(r: &mut dyn Read, out: &mut Vec<u8>, n: usize) -> io::Result<()> {
    while out.len() < n {
        let len = out.len();
        if len == out.capacity() {
            let grown = len.saturating_mul(2).max(1 << 16).min(n);
            out.reserve_exact(grown - len);
        }
        // Zero only what one read may fill: zeroing to capacity each time would be quadratic.
        let end = out.capacity().min(n).min(len + (1 << 20));
        out.resize(end, 0);
        let got = loop {
            match r.read(&mut out[len..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match got {
            Ok(0) => {
                out.truncate(len);
                break;
            }
            Ok(k) => out.truncate(len + k),
            Err(e) => {
                out.truncate(len);
                return Err(e);
            }
        }
    }
    Ok(())
}
