#![no_main]
//! Any bytes, raw or gzip: the IDX parsers return a value or an error, never panic, and never
//! allocate what a header merely claims. `idx::read` (what the loaders use) inflates gzip only as
//! far as the header declares; `maybe_inflate` then `parse` is the unbounded path.
use libfuzzer_sys::fuzz_target;
use scratchnet::data::{gz, idx};

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = idx::read(data, "fuzz") {
        assert_eq!(Some(a.data.len()), a.dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)));
    }
    if let Ok(l) = idx::parse_labels(data, "fuzz", 10) {
        assert!(l.iter().all(|&l| l < 10));
    }
    if let Ok((px, h, w)) = idx::parse_images(data, "fuzz") {
        assert!(h > 0 && w > 0 && px.len() % (h * w) == 0);
    }
    if let Ok(bytes) = gz::maybe_inflate(data, "fuzz") {
        let _ = idx::parse(&bytes, "fuzz");
    }
});
