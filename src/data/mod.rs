//! Datasets: IDX and Kaggle CSV parsers (from bytes, so they work in a browser too), the in-memory
//! `Dataset`, discovery of named datasets on disk, and users' own pictures.

pub mod csv;
mod dataset;
#[cfg(feature = "fs")]
pub mod discover;
pub mod gz;
pub mod idx;
pub mod picture;
pub mod resample;

pub use dataset::{DIGIT_CLASSES, Dataset, DatasetKind, FASHION_CLASSES, InputNorm, Jitter, Splits};
