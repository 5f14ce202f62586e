#![no_main]
//! Any bytes, raw or gzip: the IDX parsers return a value or an error, never panic, and never
//! allocate what a header merely claims.
use libfuzzer_sys::fuzz_target;
use scratchnet::data::{gz, idx};

fuzz_target!(|data: &[u8]| {
    if let Ok(bytes) = gz::maybe_inflate(data, "fuzz") {
        if let Ok(a) = idx::parse(&bytes, "fuzz") {
            assert_eq!(a.data.len(), a.dims.iter().product::<usize>());
        }
        let _ = idx::parse_labels(&bytes, "fuzz", 10);
        let _ = idx::parse_images(&bytes, "fuzz");
    }
});
