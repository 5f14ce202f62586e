#![no_main]
//! Any bytes as a model file: a model or an error, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = scratchnet::model_file::from_bytes(data, "fuzz");
});
