//! The model shipped inside the binary, used by `evaluate`, `predict` and `inspect` when no
//! `--model` is given: the best Fashion-MNIST CNN in `models/` (`cnn-best`), trained as its
//! metadata records.

use std::path::Path;

use anyhow::Result;
use scratchnet::model_file::{self, Loaded};

/// Where the built-in model comes from, as shown to users.
pub const NAME: &str = "built-in models/fashion-mnist-cnn-best.safetensors";

pub static BYTES: &[u8] = include_bytes!("../../models/fashion-mnist-cnn-best.safetensors");

/// Loads `path`, or the built-in model when there is none; returns it with a name for messages.
pub fn load_or_builtin(path: Option<&Path>) -> Result<(Loaded, String)> {
    match path {
        Some(p) => Ok((model_file::load(p)?, p.display().to_string())),
        None => Ok((model_file::from_bytes(BYTES, NAME)?, NAME.to_string())),
    }
}
