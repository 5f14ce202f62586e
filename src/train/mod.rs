//! Training: the loop ([`Trainer`]), evaluation, optimizers and schedules ([`optim`]), and the
//! recipes ([`TrainConfig`], the presets of [`recipe`]).
//!
//! Training sits above the model: it runs a [`crate::model::Sequential`] through [`crate::ops`]
//! and never reaches below them. Checkpoints ([`crate::checkpoint`]) sit above both this module and
//! [`crate::model_file`], whose files record the [`TrainConfig`] a model was trained with.

mod evaluate;
pub mod optim;
pub mod recipe;
mod trainer;

pub use crate::ops::argmax_rows;
pub use evaluate::{EVAL_BATCH, EvalOptions, Evaluation, evaluate, evaluate_async};
pub use optim::{Optimizer, OptimizerConfig, Schedule};
pub use recipe::{Augment, PRESET_NAMES, Preset, TrainConfig, preset};
pub use trainer::{EpochStats, Progress, TrainState, Trainer};
