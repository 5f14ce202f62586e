//! The IDX format of MNIST and Fashion-MNIST: a 4-byte magic (0, 0, type, rank), `rank` big-endian
//! u32 dimensions, then the values. Only unsigned bytes (type 0x08) occur in these datasets.

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

/// Parses raw (already inflated) IDX bytes. `source` names the file in errors.
pub fn parse(bytes: &[u8], source: &str) -> Result<IdxArray> {
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
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(err(
            Position::Byte(bytes.len() as u64),
            format!("truncated header: {rank} dimensions need {header} bytes, file has {}", bytes.len()),
        ));
    }
    let dims: Vec<usize> =
        bytes[4..header].chunks_exact(4).map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize).collect();
    // Checked: a corrupt header may claim more than fits in memory; we compare, never allocate, the claim.
    let declared = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let present = bytes.len() - header;
    match declared {
        Some(n) if n == present => Ok(IdxArray { dims, data: bytes[header..].to_vec() }),
        Some(n) if n > present => Err(err(
            Position::Byte(bytes.len() as u64),
            format!("truncated: dimensions {dims:?} declare {n} values, the file holds {present}"),
        )),
        Some(n) => Err(err(
            Position::Byte((header + n) as u64),
            format!("{} unexpected bytes after the {n} values that dimensions {dims:?} declare", present - n),
        )),
        None => Err(err(Position::Byte(4), format!("dimensions {dims:?} overflow"))),
    }
}

/// Labels file: rank 1, every label < `classes`.
pub fn parse_labels(bytes: &[u8], source: &str, classes: usize) -> Result<Vec<u8>> {
    let a = parse(bytes, source)?;
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
            format!("label {} at index {i} is outside the {classes} classes (0-{})", a.data[i], classes - 1),
        ));
    }
    Ok(a.data)
}

/// Images file: rank 3 (count, height, width). Returns (pixels, height, width).
pub fn parse_images(bytes: &[u8], source: &str) -> Result<(Vec<u8>, usize, usize)> {
    let a = parse(bytes, source)?;
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

    #[test]
    fn labels_are_range_checked() {
        let m = parse_labels(&idx(&[3], &[1, 12, 3]), "l", 10).unwrap_err().to_string();
        assert!(m.contains("label 12 at index 1") && m.contains("byte offset 9"), "{m}");
        assert!(parse_labels(&idx(&[1, 1], &[1]), "l", 10).is_err());
    }
}
