//! Running the `scratchnet` binary in tests.
#![allow(dead_code)]

use std::process::Command;
use std::sync::OnceLock;

use assert_cmd::cargo::CommandCargoExt;

pub fn cmd() -> Command {
    let mut c = Command::cargo_bin("scratchnet").unwrap();
    c.env_remove("SCRATCHNET_DATA");
    // Mesa's Vulkan drivers print "error: XDG_RUNTIME_DIR is invalid or not set ..." on every start
    // without one (a container, a root shell); the tests count the tool's own error lines.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
        c.env("XDG_RUNTIME_DIR", DIR.get_or_init(|| tempfile::tempdir().unwrap()).path());
    }
    c
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(c: &mut Command) -> Run {
    let out = c.output().unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!r.stderr.contains("panicked") && !r.stderr.contains("RUST_BACKTRACE"), "panic: {}", r.stderr);
    r
}

pub fn ok(c: &mut Command) -> Run {
    let r = run(c);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    r
}

pub fn fails(c: &mut Command, needle: &str) -> Run {
    let r = run(c);
    assert_ne!(r.code, 0, "expected failure, got: {}", r.stdout);
    assert!(r.stderr.contains(needle), "expected '{needle}' in: {}", r.stderr);
    r
}

/// The weights of a model file, by tensor name.
pub fn tensors(path: &std::path::Path) -> Vec<(String, Vec<f32>)> {
    let m = scratchnet::model_file::load(path).unwrap();
    m.model.named_params().into_iter().map(|(n, t)| (n, t.data().to_vec())).collect()
}
