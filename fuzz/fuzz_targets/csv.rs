#![no_main]
//! Any bytes as a Kaggle CSV: a value with consistent sizes or an error, never a panic.
use libfuzzer_sys::fuzz_target;
use scratchnet::data::csv;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = csv::parse(data, "fuzz", 10) {
        assert_eq!(c.pixels.len(), c.labels.len() * c.pixels_per_row);
        assert!(c.labels.iter().all(|&l| l < 10));
    }
});
