//! How GPU tests behave without an adapter, shared by the library's GPU kernel tests and
//! `tests/gpu.rs` (included there by path): each such test returns early and counts itself, and
//! the binary ends with one line on stderr saying why and how many were skipped
//! (`18 GPU tests SKIPPED (GPU: no GPU adapter found: ...)`), instead of passing in silence. With
//! `SCRATCHNET_REQUIRE_GPU=1` (CI sets it) a missing adapter fails the test instead.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::sync::{Mutex, Once};

/// The skipped tests, by name (the harness runs each test on a thread named after it, so a test
/// asking twice counts once), and why.
static SKIPPED: Mutex<(BTreeSet<String>, String)> = Mutex::new((BTreeSet::new(), String::new()));

/// The adapter, or None after counting the calling test as skipped; panics instead when
/// `SCRATCHNET_REQUIRE_GPU=1`.
pub fn or_skip<T, E: Display>(adapter: Result<T, E>) -> Option<T> {
    let e = match adapter {
        Ok(g) => return Some(g),
        Err(e) => e,
    };
    if std::env::var("SCRATCHNET_REQUIRE_GPU").is_ok_and(|v| v == "1") {
        panic!("SCRATCHNET_REQUIRE_GPU=1 but no GPU adapter: {e}");
    }
    let test = std::thread::current().name().unwrap_or("(unnamed)").to_string();
    {
        let mut skipped = SKIPPED.lock().unwrap_or_else(|p| p.into_inner());
        skipped.0.insert(test);
        if skipped.1.is_empty() {
            skipped.1 = e.to_string();
        }
    }
    static REPORT: Once = Once::new();
    REPORT.call_once(|| {
        unsafe extern "C" {
            fn atexit(f: extern "C" fn()) -> std::ffi::c_int;
        }
        // SAFETY: `atexit` is the C library's (linked into every Rust program on the platforms
        // with a GPU backend) and takes a function without arguments that the process calls once
        // when it exits; `report` only locks a static and writes to stderr.
        if unsafe { atexit(report) } != 0 {
            report();
        }
    });
    None
}

/// The line, once the harness has run every test (at exit: it prints nothing of its own after).
extern "C" fn report() {
    use std::io::Write;
    let skipped = SKIPPED.lock().unwrap_or_else(|p| p.into_inner());
    let n = skipped.0.len();
    let _ = writeln!(
        std::io::stderr(),
        "{n} GPU test{} SKIPPED ({}); SCRATCHNET_REQUIRE_GPU=1 makes a missing adapter a failure",
        if n == 1 { "" } else { "s" },
        skipped.1
    );
}
