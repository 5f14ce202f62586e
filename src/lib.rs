//! scratchnet: multi-layer perceptrons and a CNN with hand-written forward and backward passes.

pub mod error;
pub mod ops;
pub mod rng;
pub mod tensor;

pub use error::{Error, Result};
pub use rng::Rng;
pub use tensor::Tensor;
pub mod checkpoint;
pub mod data;
pub mod layers;
pub mod model;
pub mod model_file;
pub mod optim;
pub mod train;
