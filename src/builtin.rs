//! The models shipped inside the library: for clothing the best Fashion-MNIST CNN in `models/`
//! (`cnn-best`), for digits the MNIST CNN, each trained as its metadata records. The command line
//! uses them when no `--model` is given, the Python package as `scratchnet.builtin()`.

use crate::data::DatasetKind;
use crate::error::Result;
use crate::model_file::{self, Loaded};

/// A model built into the library.
pub struct Builtin {
    /// Where it comes from, as shown to users.
    pub name: &'static str,
    pub bytes: &'static [u8],
}

pub const FASHION_MNIST: Builtin = Builtin {
    name: "built-in models/fashion-mnist-cnn-best.safetensors",
    bytes: include_bytes!("../models/fashion-mnist-cnn-best.safetensors"),
};

pub const MNIST: Builtin =
    Builtin { name: "built-in models/mnist-cnn.safetensors", bytes: include_bytes!("../models/mnist-cnn.safetensors") };

/// The built-in model for a dataset (Fashion-MNIST's when none is named).
pub fn builtin(kind: Option<DatasetKind>) -> &'static Builtin {
    match kind {
        Some(DatasetKind::Mnist) => &MNIST,
        Some(DatasetKind::FashionMnist) | None => &FASHION_MNIST,
    }
}

/// The built-in model for a dataset, decoded.
pub fn load(kind: Option<DatasetKind>) -> Result<Loaded> {
    let b = builtin(kind);
    model_file::from_bytes(b.bytes, b.name)
}
