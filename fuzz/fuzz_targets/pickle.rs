#![no_main]
//! Any bytes as the original project's pickled network: a network or an error, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = scratchnet::import::read_original(data, "fuzz", [1, 6, 6]);
});
