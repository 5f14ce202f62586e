//! scratchnet: multi-layer perceptrons and a CNN with hand-written forward and backward passes.
//!
//! A network is a [`model::ModelSpec`] (a layer list, PyTorch's names) built into a
//! [`model::Sequential`]; a [`train::Trainer`] runs shuffled mini-batches through it with a
//! [`train::Optimizer`]; [`model_file`] reads and writes `.safetensors` files PyTorch can load.
//!
//! ```
//! use scratchnet::data::Dataset;
//! use scratchnet::model::{LayerSpec, ModelSpec, Sequential};
//! use scratchnet::train::{EvalOptions, OptimizerConfig, Schedule, TrainConfig, Trainer, evaluate};
//!
//! // 4x4 images: class 1 is bright on the left half, class 0 on the right half.
//! let (mut images, mut labels) = (Vec::new(), Vec::new());
//! for i in 0..200u32 {
//!     let left = i % 2 == 1;
//!     images.extend((0..16).map(|p| if (p % 4 < 2) == left { 200 } else { (i * 7 % 50) as u8 }));
//!     labels.push(left as u8);
//! }
//! let data = Dataset::new(images, labels, 4, 4, vec!["right".into(), "left".into()])?;
//!
//! let spec = ModelSpec {
//!     input: [1, 4, 4],
//!     layers: vec![LayerSpec::Flatten, LayerSpec::Linear { in_features: 16, out_features: 2 }],
//! };
//! let config = TrainConfig {
//!     epochs: 3,
//!     batch_size: 16,
//!     optimizer: OptimizerConfig::Sgd { lr: 0.1, momentum: 0.9, nesterov: false, weight_decay: 0.0 },
//!     schedule: Schedule::Constant,
//!     label_smoothing: 0.0,
//!     seed: 0,
//!     validation: 0,
//!     augment: Default::default(),
//!     decay_norm: false,
//! };
//! let mut trainer = Trainer::new(Sequential::new(spec, config.seed)?, config);
//! while trainer.state.epoch < trainer.config.epochs {
//!     trainer.run_epoch(&data, &mut |_batch, _of| true)?;
//! }
//! assert!(evaluate(&mut trainer.model, &data, &EvalOptions::default())?.accuracy > 0.95);
//! # Ok::<(), scratchnet::Error>(())
//! ```

pub mod builtin;
pub mod checkpoint;
pub mod classify;
pub mod data;
pub mod error;
mod half;
pub mod import;
pub mod layers;
pub mod model;
pub mod model_file;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod ops;
pub mod provenance;
pub mod rng;
pub mod tensor;
pub mod train;

/// The optimizers, at their former path: [`train::optim`].
pub use train::optim;

pub use error::{Error, Result};
pub use rng::Rng;
pub use tensor::Tensor;
