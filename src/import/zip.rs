//! The zip archives `torch.save` writes: entries stored, not compressed (the only kind read here),
//! zip64 records for large files. Every offset and size read from the archive is checked against
//! its length; an entry's data is a slice of the input.

use std::collections::HashMap;

/// Whether `bytes` start like a zip archive (the format of `torch.save` since PyTorch 1.6).
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize)
}
fn u32_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as u64)
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// `offset` as a usize when it lies within `b` (so small constants can be added to it).
fn within(b: &[u8], offset: u64) -> Option<usize> {
    usize::try_from(offset).ok().filter(|&o| o <= b.len())
}

/// Name → contents of every entry, from the central directory.
pub fn entries(b: &[u8]) -> Result<HashMap<String, &[u8]>, String> {
    let bad = |what: &str| format!("a broken zip archive ({what}); the file may be truncated");
    // End of central directory: 22 bytes plus a comment of up to 65535.
    let from = b.len().saturating_sub(22 + 65535);
    let eocd = (from..b.len().saturating_sub(21))
        .rev()
        .find(|&i| b[i..].starts_with(b"PK\x05\x06"))
        .ok_or_else(|| bad("no end of central directory"))?;
    let (mut count, mut cd_offset) = (u16_at(b, eocd + 10).unwrap_or(0) as u64, u32_at(b, eocd + 16).unwrap_or(0));
    // Zip64: a locator just before, pointing at the zip64 end record.
    if eocd >= 20 && b[eocd - 20..].starts_with(b"PK\x06\x07") {
        // Offsets read from the file are checked against its length before anything is added to them.
        let at = u64_at(b, eocd - 20 + 8).and_then(|a| within(b, a)).ok_or_else(|| bad("zip64 locator"))?;
        if !b.get(at..).is_some_and(|r| r.starts_with(b"PK\x06\x06")) {
            return Err(bad("zip64 end record"));
        }
        count = u64_at(b, at + 32).ok_or_else(|| bad("zip64 end record"))?;
        cd_offset = u64_at(b, at + 48).ok_or_else(|| bad("zip64 end record"))?;
    }
    let mut entries = HashMap::new();
    let mut p = within(b, cd_offset).ok_or_else(|| bad("central directory offset"))?;
    for _ in 0..count {
        let h = b.get(p..p + 46).filter(|h| h.starts_with(b"PK\x01\x02")).ok_or_else(|| bad("central directory"))?;
        let method = u16_at(h, 10).unwrap_or(0);
        let (mut csize, mut usize_) = (u32_at(h, 20).unwrap_or(0), u32_at(h, 24).unwrap_or(0));
        let (n, e, c) = (u16_at(h, 28).unwrap_or(0), u16_at(h, 30).unwrap_or(0), u16_at(h, 32).unwrap_or(0));
        let mut local = u32_at(h, 42).unwrap_or(0);
        let name = b.get(p + 46..p + 46 + n).ok_or_else(|| bad("entry name"))?;
        let name = String::from_utf8_lossy(name).into_owned();
        // Zip64 extra field: the 64-bit values of the fields saturated at 0xFFFFFFFF, in order.
        let mut extra = b.get(p + 46 + n..p + 46 + n + e).ok_or_else(|| bad("extra field"))?;
        while extra.len() >= 4 {
            let (id, len) = (u16_at(extra, 0).unwrap_or(0), u16_at(extra, 2).unwrap_or(0));
            let body = extra.get(4..4 + len).ok_or_else(|| bad("extra field"))?;
            if id == 1 {
                let mut at = 0;
                for field in [&mut usize_, &mut csize, &mut local] {
                    if *field == 0xFFFF_FFFF {
                        *field = u64_at(body, at).ok_or_else(|| bad("zip64 extra field"))?;
                        at += 8;
                    }
                }
            }
            extra = &extra[4 + len..];
        }
        if method != 0 {
            return Err(format!("zip entry {name} is compressed (method {method}); torch.save stores entries"));
        }
        if csize != usize_ {
            return Err(bad("stored entry sizes differ"));
        }
        let l = within(b, local).ok_or_else(|| bad("local header offset"))?;
        let lh = b.get(l..l + 30).filter(|h| h.starts_with(b"PK\x03\x04")).ok_or_else(|| bad("local header"))?;
        let start = l + 30 + u16_at(lh, 26).unwrap_or(0) + u16_at(lh, 28).unwrap_or(0);
        let len = usize::try_from(csize).map_err(|_| bad("entry size"))?;
        let data = start.checked_add(len).and_then(|end| b.get(start..end)).ok_or_else(|| bad("entry data"))?;
        entries.insert(name, data);
        p += 46 + n + e + c;
    }
    Ok(entries)
}
