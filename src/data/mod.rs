//! Datasets: IDX and Kaggle CSV parsers (from bytes, so they work in a browser too), the in-memory
//! `Dataset`, discovery of named datasets on disk, and users' own pictures.

pub mod csv;
mod dataset;
#[cfg(feature = "fs")]
pub mod discover;
pub mod gz;
pub mod idx;
#[cfg(feature = "images")]
pub mod picture;

pub use dataset::{DIGIT_CLASSES, Dataset, DatasetKind, FASHION_CLASSES, Jitter, Splits};
