//! The models shipped inside the binary, used by `evaluate`, `predict`, `inspect` and `export`
//! when no `--model` is given: for clothing the best Fashion-MNIST CNN in `models/` (`cnn-best`),
//! for digits the MNIST CNN, each trained as its metadata records. Fashion-MNIST is the default.

use std::path::Path;

use anyhow::Result;
use scratchnet::data::DatasetKind;
use scratchnet::model_file::{self, Loaded};

/// A model built into the binary.
pub struct Builtin {
    /// Where it comes from, as shown to users.
    pub name: &'static str,
    pub bytes: &'static [u8],
}

pub const FASHION_MNIST: Builtin = Builtin {
    name: "built-in models/fashion-mnist-cnn-best.safetensors",
    bytes: include_bytes!("../../models/fashion-mnist-cnn-best.safetensors"),
};

pub const MNIST: Builtin = Builtin {
    name: "built-in models/mnist-cnn.safetensors",
    bytes: include_bytes!("../../models/mnist-cnn.safetensors"),
};

/// The built-in model for a dataset (Fashion-MNIST's when none is named).
pub fn builtin(kind: Option<DatasetKind>) -> &'static Builtin {
    match kind {
        Some(DatasetKind::Mnist) => &MNIST,
        Some(DatasetKind::FashionMnist) | None => &FASHION_MNIST,
    }
}

/// Loads `path`, or the built-in model for `kind` when there is none; returns it with a name for
/// messages.
pub fn load_or_builtin(path: Option<&Path>, kind: Option<DatasetKind>) -> Result<(Loaded, String)> {
    match path {
        Some(p) => Ok((model_file::load(p)?, p.display().to_string())),
        None => {
            let b = builtin(kind);
            Ok((model_file::from_bytes(b.bytes, b.name)?, b.name.to_string()))
        }
    }
}

/// `--dataset NAME` of `predict`, `inspect` and `export`, which only choose a built-in model.
pub fn kind_of(name: Option<&str>) -> Result<Option<DatasetKind>> {
    name.map(|n| {
        DatasetKind::from_name(n).ok_or_else(|| anyhow::anyhow!("--dataset {n}: expected mnist or fashion-mnist"))
    })
    .transpose()
}
