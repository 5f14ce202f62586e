//! The Kaggle CSV layout of MNIST / Fashion-MNIST: an optional header row, then one image per row:
//! `label,pixel1,...,pixel784` with integers 0-255. Parsed as a stream of lines with a hand-written
//! integer scanner: a 60k-row file (~110 MB) takes about a second, not tens.

use std::io::{BufRead, Read};

use crate::error::{Error, Position, Result};

/// Parsed rows: labels, and pixels row-major (rows x pixels_per_row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvImages {
    pub labels: Vec<u8>,
    pub pixels: Vec<u8>,
    pub pixels_per_row: usize,
}

/// The longest row read: label and a 1024x1024 image at 6 bytes a value ("255.0,") fit. Bounds
/// the line buffer, so a file without newlines (or a gzip stream inflating to one) is refused
/// rather than held whole.
pub const MAX_ROW_BYTES: usize = 8 << 20;

/// Reads a Kaggle-layout CSV. `classes` bounds the labels; `source` names the file in errors.
pub fn parse<R: BufRead>(mut reader: R, source: &str, classes: usize) -> Result<CsvImages> {
    let io = |e: std::io::Error| Error::Io(format!("{source}: {e}"));
    let mut line = Vec::with_capacity(4096);
    let mut out = CsvImages { labels: Vec::new(), pixels: Vec::new(), pixels_per_row: 0 };
    let mut row = 0u64;
    let mut columns: Option<usize> = None;
    loop {
        line.clear();
        if (&mut reader).take(MAX_ROW_BYTES as u64 + 1).read_until(b'\n', &mut line).map_err(io)? == 0 {
            break;
        }
        row += 1;
        if line.len() > MAX_ROW_BYTES {
            return Err(Error::format(
                source,
                Position::Row(row),
                format!("longer than {MAX_ROW_BYTES} bytes; expected label,pixel,... lines"),
            ));
        }
        let text = trim_line(&line);
        if text.is_empty() {
            continue;
        }
        if row == 1 && !text[0].is_ascii_digit() {
            // Header: its column count fixes the layout.
            let n = text.split(|&b| b == b',').count();
            check_columns(n, source, row)?;
            columns = Some(n);
            continue;
        }
        let n = parse_row(text, source, row, classes, &mut out)?;
        match columns {
            None => {
                check_columns(n, source, row)?;
                columns = Some(n);
            }
            Some(expected) if n != expected => {
                return Err(Error::format(
                    source,
                    Position::Row(row),
                    format!("{n} columns; expected {expected} (label + pixels)"),
                ));
            }
            Some(_) => {}
        }
    }
    match columns {
        Some(n) if !out.labels.is_empty() => out.pixels_per_row = n - 1,
        _ => return Err(Error::format(source, Position::Row(row), "no image rows; expected label,pixel,... lines")),
    }
    Ok(out)
}

fn check_columns(n: usize, source: &str, row: u64) -> Result<()> {
    let side = ((n.saturating_sub(1)) as f64).sqrt() as usize;
    if n < 2 || side * side != n - 1 {
        return Err(Error::format(
            source,
            Position::Row(row),
            format!("{n} columns; expected a label and a square image's pixels (785 for 28x28)"),
        ));
    }
    Ok(())
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut t = line;
    while let [rest @ .., b'\n' | b'\r' | b' '] = t {
        t = rest;
    }
    t
}

/// Appends one row's label and pixels; returns its column count.
fn parse_row(text: &[u8], source: &str, row: u64, classes: usize, out: &mut CsvImages) -> Result<usize> {
    let mut col = 0usize;
    for field in text.split(|&b| b == b',') {
        col += 1;
        let value = parse_u8(field).ok_or_else(|| {
            let shown = String::from_utf8_lossy(&field[..field.len().min(20)]).into_owned();
            let what = if col == 1 { "a label" } else { "a pixel value 0-255" };
            Error::format(source, Position::RowColumn(row, col as u64), format!("expected {what}, found '{shown}'"))
        })?;
        if col == 1 {
            if value as usize >= classes {
                return Err(Error::format(
                    source,
                    Position::RowColumn(row, 1),
                    format!("label {value} is outside the {classes} classes (0-{})", classes.saturating_sub(1)),
                ));
            }
            out.labels.push(value);
        } else {
            out.pixels.push(value);
        }
    }
    Ok(col)
}

/// A decimal integer 0-255 (surrounding spaces allowed; "12.0" accepted as 12, as pandas writes).
fn parse_u8(field: &[u8]) -> Option<u8> {
    let f = field.trim_ascii();
    let f = f.strip_suffix(b".0").unwrap_or(f);
    if f.is_empty() || f.len() > 3 {
        return None;
    }
    let mut v = 0u32;
    for &b in f {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (b - b'0') as u32;
    }
    u8::try_from(v).ok()
}

/// Writes images in the Kaggle layout (header row, label first).
pub fn write<W: std::io::Write>(mut w: W, labels: &[u8], pixels: &[u8], pixels_per_row: usize) -> std::io::Result<()> {
    let mut line = String::with_capacity(4 * pixels_per_row + 8);
    line.push_str("label");
    for i in 1..=pixels_per_row {
        line.push_str(&format!(",pixel{i}"));
    }
    writeln!(w, "{line}")?;
    for (label, px) in labels.iter().zip(pixels.chunks(pixels_per_row)) {
        line.clear();
        line.push_str(&label.to_string());
        for p in px {
            line.push(',');
            line.push_str(&p.to_string());
        }
        writeln!(w, "{line}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> Result<CsvImages> {
        parse(text.as_bytes(), "t.csv", 10)
    }

    #[test]
    fn reads_with_and_without_header() {
        let a = csv("label,p1,p2,p3,p4\n3,0,255,7,8\r\n9,1,2,3,4\n").unwrap();
        assert_eq!(a.labels, vec![3, 9]);
        assert_eq!(a.pixels, vec![0, 255, 7, 8, 1, 2, 3, 4]);
        assert_eq!(a.pixels_per_row, 4);
        assert_eq!(csv("3,0,255,7,8\n").unwrap().pixels_per_row, 4);
    }

    #[test]
    fn errors_name_row_and_column() {
        let m = |t: &str| csv(t).unwrap_err().to_string();
        assert!(
            m("label,a,b,c,d\n1,2,3,4\n").contains("row 2: 4 columns; expected 5"),
            "{}",
            m("label,a,b,c,d\n1,2,3,4\n")
        );
        assert!(m("1,2,3,x,5\n").contains("row 1, column 4: expected a pixel value 0-255, found 'x'"));
        assert!(m("1,2,3,256,5\n").contains("column 4"));
        assert!(m("11,2,3,4,5\n").contains("label 11 is outside"));
        assert!(m("1,2,3\n").contains("expected a label and a square image"));
        assert!(m("").contains("no image rows"));
        let long = format!("1,{}\n", "0,".repeat(MAX_ROW_BYTES / 2));
        assert!(m(&long).contains("row 1: longer than 8388608 bytes"), "{}", m(&long));
        assert!(m("label,a,b,c,d\n").contains("no image rows"));
    }
}
