//! Printing that survives a closed pipe, and output paths checked before the work starts.
//!
//! `println!` panics when stdout is a pipe whose reader has gone (`scratchnet predict *.png | head
//! -n 2`). Here a closed stdout ends the printing quietly, like other Unix tools, while the work
//! goes on: `train ... | head -1` still writes its model.

use std::fmt::Arguments;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether stdout can no longer be written (its reader has gone, or it failed).
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// One line to stdout; after a failed write nothing more is attempted.
pub fn write_line(args: Arguments) {
    if stdout_closed() {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|_| out.write_all(b"\n")).and_then(|_| out.flush()) {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != ErrorKind::BrokenPipe {
            write_err_line(format_args!("warning: standard output failed ({e}); printing stops, the work goes on"));
        }
    }
}

/// One line to stderr; a closed stderr is ignored (`eprintln!` would panic).
pub fn write_err_line(args: Arguments) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|_| err.write_all(b"\n"));
}

/// `println!` that never panics; see [`write_line`].
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::out::write_line(format_args!($($arg)*)) };
}
/// `eprintln!` that never panics.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::cli::out::write_err_line(format_args!($($arg)*)) };
}
pub(crate) use {errln, outln};

/// Fails, naming `flag` and the path, unless a file can be written at `path`: its folder exists
/// and takes new files (outputs are written to a temporary file there, then renamed), and the path
/// is not a folder or a read-only file. Called before any training or evaluation, so a mistyped
/// path costs nothing.
pub fn check_writable(flag: &str, path: &Path) -> Result<()> {
    if path.file_name().is_none() {
        bail!("{flag} {}: not a file name", path.display());
    }
    if path.is_dir() {
        bail!("{flag} {}: is a folder; give a file name", path.display());
    }
    let dir = folder_of(path);
    if !dir.is_dir() {
        bail!("{flag} {}: the folder {} does not exist", path.display(), dir.display());
    }
    let probe = dir.join(format!(".scratchnet-write-check-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(e) => bail!("{flag} {}: cannot create files in {}: {e}", path.display(), dir.display()),
    }
    if path.exists() {
        let meta = std::fs::metadata(path)?;
        if meta.permissions().readonly() {
            bail!("{flag} {}: the file exists and is read-only", path.display());
        }
    }
    Ok(())
}

/// The folder a path's file lives in ("." for a bare file name).
pub fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_flag_and_what_is_wrong() {
        let e = check_writable("--out", Path::new("/nonexistent/dir/m.safetensors")).unwrap_err().to_string();
        assert!(e.contains("--out /nonexistent/dir/m.safetensors") && e.contains("does not exist"), "{e}");
        let dir = std::env::temp_dir();
        let e = check_writable("--plot", &dir).unwrap_err().to_string();
        assert!(e.contains("is a folder"), "{e}");
        check_writable("--metrics", &dir.join("scratchnet-out-test.jsonl")).unwrap();
    }
}
