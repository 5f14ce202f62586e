//! Transparent gzip: files that start with the gzip magic are inflated, others pass through.

use std::borrow::Cow;
use std::io::Read;

use crate::error::{Error, Position, Result};

pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// The bytes themselves, or their decompression when they are gzip data.
pub fn maybe_inflate<'a>(bytes: &'a [u8], source: &str) -> Result<Cow<'a, [u8]>> {
    if !is_gzip(bytes) {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(1 << 28));
    let mut dec = flate2::read::MultiGzDecoder::new(bytes);
    dec.read_to_end(&mut out).map_err(|e| {
        Error::format(
            source,
            Position::Byte(out.len() as u64),
            format!("corrupt gzip data ({e}) after {} inflated bytes", out.len()),
        )
    })?;
    Ok(Cow::Owned(out))
}
