//! The models shipped inside the binary ([`scratchnet::builtin`]), used by `evaluate`, `predict`,
//! `inspect` and `export` when no `--model` is given. Fashion-MNIST's is the default.

use std::path::Path;

use anyhow::Result;
use scratchnet::data::DatasetKind;
use scratchnet::model_file::{self, Loaded};

pub use scratchnet::builtin::builtin;

/// Loads `path`, or the built-in model for `kind` when there is none; returns it with a name for
/// messages.
pub fn load_or_builtin(path: Option<&Path>, kind: Option<DatasetKind>) -> Result<(Loaded, String)> {
    match path {
        Some(p) => Ok((model_file::load(p)?, p.display().to_string())),
        None => Ok((scratchnet::builtin::load(kind)?, builtin(kind).name.to_string())),
    }
}

/// `--dataset NAME` of `predict`, `inspect` and `export`, which only choose a built-in model.
pub fn kind_of(name: Option<&str>) -> Result<Option<DatasetKind>> {
    name.map(|n| {
        DatasetKind::from_name(n).ok_or_else(|| anyhow::anyhow!("--dataset {n}: expected mnist or fashion-mnist"))
    })
    .transpose()
}
