//! The IDX format of MNIST and Fashion-MNIST: a 4-byte magic (0, 0, type, rank), `rank` big-endian
//! u32 dimensions, then the values. Only unsigned bytes (type 0x08) occur in these datasets.

use std::io::Read;

use super::gz;
use crate::error::{Error, Position, Result};

/// An unsigned-byte IDX array: its dimensions and its values, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

fn type_name(code: u8) -> &'static str {
    match code {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "short",
        0x0C => "int",
        0x0D => "float",
        0x0E => "double",
        _ => "unknown",
    }
}

/// The header at the start of `bytes`: (dimensions, header length in bytes).
fn header(bytes: &[u8], source: &str) -> Result<(Vec<usize>, usize)> {
    let err = |at, msg: String| Error::format(source, at, msg);
    if bytes.is_empty() {
        return Err(err(Position::Start, "empty file; expected an IDX header".into()));
    }
    if bytes.len() < 4 {
        return Err(err(Position::Start, format!("file is {} bytes, shorter than the 4-byte IDX magic", bytes.len())));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        let hint = if bytes[0].is_ascii_digit() || bytes[0] == b'l' { " (is this a CSV file?)" } else { "" };
        return Err(err(
            Position::Byte(0),
            format!(
                "wrong magic {:02x} {:02x} {:02x} {:02x}: not an IDX file{hint}",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(err(
            Position::Byte(2),
            format!("data type 0x{:02x} ({}); expected 0x08 (unsigned byte)", bytes[2], type_name(bytes[2])),
        ));
    }
    let rank = bytes[3] as usize;
    if rank == 0 {
        return Err(err(Position::Byte(3), "rank 0; expected at least one dimension".into()));
    }
    let len = 4 + 4 * rank;
    if bytes.len() < len {
        return Err(err(
            Position::Byte(bytes.len() as u64),
            format!("truncated header: {rank} dimensions need {len} bytes, file has {}", bytes.len()),
        ));
    }
    let dims = bytes[4..len].chunks_exact(4).map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize).collect();
    Ok((dims, len))
}

/// The number of values `dims` declare. Checked: a corrupt header may claim more than fits in
/// memory; callers compare the claim with the data, never allocate it.
fn declared(dims: &[usize], source: &str) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::format(source, Position::Byte(4), format!("dimensions {dims:?} overflow")))
}

fn truncated(source: &str, dims: &[usize], header: usize, n: usize, present: usize) -> Error {
    Error::format(
        source,
        Position::Byte((header + present) as u64),
        format!("truncated: dimensions {dims:?} declare {n} values, the file holds {present}"),
    )
}

/// Parses raw (already inflated) IDX bytes. `source` names the file in errors.
pub fn parse(bytes: &[u8], source: &str) -> Result<IdxArray> {
    let (dims, header) = header(bytes, source)?;
    let n = declared(&dims, source)?;
    let present = bytes.len() - header;
    if n > present {
        return Err(truncated(source, &dims, header, n, present));
    }
    if n < present {
        return Err(Error::format(
            source,
            Position::Byte((header + n) as u64),
            format!("{} unexpected bytes after the {n} values that dimensions {dims:?} declare", present - n),
        ));
    }
    Ok(IdxArray { dims, data: bytes[header..].to_vec() })
}

/// How far past the declared values a gzip stream is read to tell the size of the excess.
const SLACK: usize = 1 << 16;

/// Parses IDX bytes, raw or gzip. A gzip stream is inflated header first, then only as far as
/// the values the header declares (plus `SLACK` to report an excess): a stream that inflates
/// to far more (a gzip bomb) is refused without being held in memory.
pub fn read(bytes: &[u8], source: &str) -> Result<IdxArray> {
    if !gz::is_gzip(bytes) {
        return parse(bytes, source);
    }
    let mut dec = flate2::read::MultiGzDecoder::new(bytes);
    let mut head = Vec::new();
    gz::read_up_to(&mut dec, &mut head, 4).map_err(|e| gz::corrupt(source, e, head.len()))?;
    if let Some(&rank) = head.get(3) {
        let len = 4 + 4 * rank as usize;
        gz::read_up_to(&mut dec, &mut head, len).map_err(|e| gz::corrupt(source, e, head.len()))?;
    }
    let (dims, header) = header(&head, source)?;
    let n = declared(&dims, source)?;
    let mut data = Vec::new();
    gz::read_up_to(&mut dec, &mut data, n).map_err(|e| gz::corrupt(source, e, header + data.len()))?;
    if data.len() < n {
        return Err(truncated(source, &dims, header, n, data.len()));
    }
    // The end of the stream, where the decoder also checks the CRC, must come next.
    let mut extra = 0usize;
    let mut buf = [0u8; 4096];
    while extra <= SLACK {
        match dec.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => extra += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if extra == 0 => return Err(gz::corrupt(source, e, header + n)),
            Err(_) => break,
        }
    }
    if extra > 0 {
        let count = if extra > SLACK { format!("more than {SLACK}") } else { extra.to_string() };
        return Err(Error::format(
            source,
            Position::Byte((header + n) as u64),
            format!(
                "{count} unexpected bytes after the {n} values that dimensions {dims:?} declare \
                 (the gzip data inflates to more than its header declares; read no further)"
            ),
        ));
    }
    Ok(IdxArray { dims, data })
}

/// Labels file (raw or gzip): rank 1, every label < `classes`.
pub fn parse_labels(bytes: &[u8], source: &str, classes: usize) -> Result<Vec<u8>> {
    let a = read(bytes, source)?;
    if a.dims.len() != 1 {
        return Err(Error::format(
            source,
            Position::Byte(3),
            format!("labels need rank 1, found dimensions {:?}", a.dims),
        ));
    }
    if let Some(i) = a.data.iter().position(|&l| l as usize >= classes) {
        return Err(Error::format(
            source,
            Position::Byte(8 + i as u64),
            format!(
                "label {} at index {i} is outside the {classes} classes (0-{})",
                a.data[i],
                classes.saturating_sub(1)
            ),
        ));
    }
    Ok(a.data)
}

/// Images file (raw or gzip): rank 3 (count, height, width). Returns (pixels, height, width).
pub fn parse_images(bytes: &[u8], source: &str) -> Result<(Vec<u8>, usize, usize)> {
    let a = read(bytes, source)?;
    match a.dims[..] {
        [_, h, w] if h > 0 && w > 0 => Ok((a.data, h, w)),
        _ => Err(Error::format(
            source,
            Position::Byte(3),
            format!("images need dimensions (count, height, width), found {:?}", a.dims),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    fn msg(bytes: &[u8]) -> String {
        parse(bytes, "f.idx").unwrap_err().to_string()
    }

    #[test]
    fn reads_valid_arrays() {
        let a = parse(&idx(&[2, 3], &[1, 2, 3, 4, 5, 6]), "x").unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn bad_headers_are_named() {
        assert!(msg(&[]).contains("empty file"));
        assert!(msg(&[0, 0]).contains("shorter than the 4-byte"));
        assert!(msg(b"label,pixel1").contains("CSV"));
        assert!(msg(&[0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0]).contains("0x0d (float)"));
        assert!(msg(&[0, 0, 8, 3, 0, 0]).contains("truncated header"));
        let m = msg(&idx(&[10, 28, 28], &[0; 100]));
        assert!(
            m.contains("f.idx") && m.contains("truncated") && m.contains("7840") && m.contains("byte offset 116"),
            "{m}"
        );
        assert!(msg(&idx(&[2], &[1, 2, 3])).contains("1 unexpected bytes"));
        // A header claiming ~2^96 values must fail cleanly, not try to allocate them.
        assert!(msg(&idx(&[u32::MAX, u32::MAX, u32::MAX], &[])).contains("overflow"));
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_reads_what_the_header_declares_and_no_more() {
        let two = idx(&[2, 28, 28], &[7; 2 * 784]);
        assert_eq!(read(&gzip(&two), "g").unwrap(), parse(&two, "g").unwrap());
        let m = read(&gzip(&two[..two.len() - 5]), "g").unwrap_err().to_string();
        assert!(m.contains("truncated") && m.contains("1568 values, the file holds 1563"), "{m}");
        let m = read(&gzip(&two[..10]), "g").unwrap_err().to_string();
        assert!(m.contains("truncated header"), "{m}");
        let mut longer = two.clone();
        longer.extend_from_slice(&[0; 100]);
        let m = read(&gzip(&longer), "g").unwrap_err().to_string();
        assert!(m.contains("100 unexpected bytes after the 1568 values") && m.contains("byte offset 1584"), "{m}");

        // A bomb: the header declares 2 images, the stream inflates to 64 MiB of zeros (64 KiB
        // compressed). Refused after reading SLACK bytes past the declared values.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut e, &two[..16]).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            std::io::Write::write_all(&mut e, &zeros).unwrap();
        }
        let bomb = e.finish().unwrap();
        assert!(bomb.len() < 1 << 17, "{}", bomb.len());
        let m = parse_images(&bomb, "bomb.gz").unwrap_err().to_string();
        assert!(m.contains("bomb.gz") && m.contains("more than 65536 unexpected bytes"), "{m}");

        // A header claiming 2^32 images backed by a few bytes: truncated, nothing reserved for the claim.
        let m = read(&gzip(&idx(&[u32::MAX, 28, 28], &[1; 10])), "g").unwrap_err().to_string();
        assert!(m.contains("truncated") && m.contains("the file holds 10"), "{m}");
        // Corrupt CRC after complete data.
        let mut bad = gzip(&two);
        let crc = bad.len() - 8;
        bad[crc] ^= 0xff;
        assert!(read(&bad, "g").unwrap_err().to_string().contains("corrupt gzip"));
    }

    #[test]
    fn labels_are_range_checked() {
        let m = parse_labels(&idx(&[3], &[1, 12, 3]), "l", 10).unwrap_err().to_string();
        assert!(m.contains("label 12 at index 1") && m.contains("byte offset 9"), "{m}");
        assert!(parse_labels(&idx(&[1, 1], &[1]), "l", 10).is_err());
    }
}
