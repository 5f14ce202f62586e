//! How a network is trained: [`TrainConfig`] (the recipe: epochs, batch, optimizer, schedule,
//! augmentation), and the presets, each a network of [`crate::model::presets`] with the original
//! project's hyper-parameters (or a later recipe's) as defaults.

use serde::{Deserialize, Serialize};

use super::optim::{OptimizerConfig, Schedule};
use crate::model::ModelSpec;
use crate::model::presets::{cnn_fast_spec, cnn_spec, mlp_spec};

/// How a network is trained: everything a preset fixes and the command line may override.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerConfig,
    pub schedule: Schedule,
    #[serde(default)]
    pub label_smoothing: f32,
    pub seed: u64,
    /// Training images held out (chosen by the seed) for validation; 0 for none.
    #[serde(default)]
    pub validation: usize,
    /// Random shifts / flips of training images (none in the original's recipes).
    #[serde(default)]
    pub augment: Augment,
    /// Weight decay on batch norms' scales and shifts too (off: PyTorch users exclude them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub decay_norm: bool,
}

/// Data augmentation: each training image, each time it is used, is shifted by up to `max_shift`
/// pixels in x and y (uniform), with `hflip` mirrored left-right with probability 1/2, and with
/// probability `erase` has a random rectangle set to 0 (random erasing, Zhong et al. 2017, as
/// torchvision's `RandomErasing`: 2-33% of the image, aspect ratio 0.3-3.3, log-uniform).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    pub max_shift: usize,
    pub hflip: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub erase: f32,
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

impl Augment {
    pub fn is_active(&self) -> bool {
        self.max_shift > 0 || self.hflip || self.erase > 0.0
    }
}

pub struct Preset {
    pub name: &'static str,
    pub summary: &'static str,
    pub spec: ModelSpec,
    pub train: TrainConfig,
}

pub const PRESET_NAMES: [&str; 9] =
    ["mlp-sgd", "mlp-sgd-momentum", "mlp", "mlp-dropout", "mlp-dropout-l2", "cnn", "cnn-plus", "cnn-fast", "cnn-best"];

fn sgd(lr: f32, momentum: f32, weight_decay: f32) -> OptimizerConfig {
    OptimizerConfig::Sgd { lr, momentum, nesterov: false, weight_decay }
}

/// The recipe of a network given by its spec alone (no preset; `train --model spec.json`, Python's
/// `Model.from_spec`): 10 epochs of batch 64, SGD with lr 0.01 and momentum 0.9, seed 0.
pub fn spec_default() -> TrainConfig {
    TrainConfig {
        epochs: 10,
        batch_size: 64,
        optimizer: sgd(0.01, 0.9, 0.0),
        schedule: Schedule::Constant,
        label_smoothing: 0.0,
        seed: 0,
        validation: 0,
        augment: Augment::default(),
        decay_norm: false,
    }
}

pub fn preset(name: &str) -> Option<Preset> {
    let cfg = |epochs, batch_size, optimizer, schedule| TrainConfig {
        epochs,
        batch_size,
        optimizer,
        schedule,
        label_smoothing: 0.0,
        seed: 0,
        validation: 0,
        augment: Augment::default(),
        decay_norm: false,
    };
    let p = match name {
        "mlp-sgd" => Preset {
            name: "mlp-sgd",
            summary: "MLP 784-128-64-10, per-sample SGD, lr 0.001",
            spec: mlp_spec(0.0),
            train: cfg(100, 1, sgd(0.001, 0.0, 0.0), Schedule::Constant),
        },
        "mlp-sgd-momentum" => Preset {
            name: "mlp-sgd-momentum",
            summary: "MLP 784-128-64-10, per-sample SGD with momentum 0.9, lr 0.001",
            spec: mlp_spec(0.0),
            train: cfg(100, 1, sgd(0.001, 0.9, 0.0), Schedule::Constant),
        },
        "mlp" => Preset {
            name: "mlp",
            summary: "MLP 784-128-64-10, mini-batch 64, momentum 0.9, lr 0.001",
            spec: mlp_spec(0.0),
            train: cfg(100, 64, sgd(0.001, 0.9, 0.0), Schedule::Constant),
        },
        "mlp-dropout" => Preset {
            name: "mlp-dropout",
            summary: "MLP + dropout 0.2, mini-batch 64, momentum 0.9, lr 0.01, decay 0.0005",
            spec: mlp_spec(0.2),
            train: cfg(100, 64, sgd(0.01, 0.9, 0.0), Schedule::InverseTime { decay: 0.0005 }),
        },
        // The original adds λ·W to the batch-summed gradient before dividing by the batch size,
        // so its per-step decay is λ/B: λ = 0.001, B = 64 gives weight_decay 0.001/64.
        "mlp-dropout-l2" => Preset {
            name: "mlp-dropout-l2",
            summary: "MLP + dropout 0.2 + L2 0.001 (as the original: 0.001/64 per step), lr 0.01, decay 0.0005",
            spec: mlp_spec(0.2),
            train: cfg(100, 64, sgd(0.01, 0.9, 0.001 / 64.0), Schedule::InverseTime { decay: 0.0005 }),
        },
        "cnn" => Preset {
            name: "cnn",
            summary: "CNN conv32-conv64-pool-conv128-pool-dense512, batch 64, momentum 0.9, lr 0.005, decay 0.001",
            spec: cnn_spec(),
            train: cfg(40, 64, sgd(0.005, 0.9, 0.0), Schedule::InverseTime { decay: 0.001 }),
        },
        // Same network, a recipe of the last decade chosen on a validation split (docs/RESULTS.md):
        // AdamW, warm-up then cosine decay, label smoothing, and left-right flips (mirrored clothing
        // is the same class).
        "cnn-plus" => Preset {
            name: "cnn-plus",
            summary: "the cnn network, 60 epochs; AdamW lr 0.001 wd 0.05, warm-up + cosine, label smoothing 0.1, flips",
            spec: cnn_spec(),
            train: TrainConfig {
                label_smoothing: 0.1,
                augment: Augment { max_shift: 0, hflip: true, erase: 0.0 },
                ..cfg(60, 64, OptimizerConfig::adam(0.001, 0.05), Schedule::Cosine { warmup: 1, min_lr: 0.0 })
            },
        },
        // Made to beat the original's accuracy in minutes on two cores, chosen on the validation
        // split (docs/RESULTS.md): batch norm, a one-cycle schedule updated at every step, flips.
        "cnn-fast" => Preset {
            name: "cnn-fast",
            summary: "CNN with batch norm, 10 epochs of batch 128; AdamW lr 0.006 wd 0.05, one-cycle, label smoothing 0.1, flips",
            spec: cnn_fast_spec(),
            train: TrainConfig {
                label_smoothing: 0.1,
                augment: Augment { max_shift: 0, hflip: true, erase: 0.0 },
                ..cfg(10, 128, OptimizerConfig::adam(0.006, 0.05), Schedule::OneCycle { warmup: 1 })
            },
        },
        // `cnn-fast` for longer, with shifts and random erasing against the over-fitting of longer
        // schedules; chosen on the validation split (docs/RESULTS.md).
        "cnn-best" => Preset {
            name: "cnn-best",
            summary: "the cnn-fast network and recipe for 40 epochs, with 1-pixel shifts and random erasing 0.5",
            spec: cnn_fast_spec(),
            train: TrainConfig {
                label_smoothing: 0.1,
                augment: Augment { max_shift: 1, hflip: true, erase: 0.5 },
                ..cfg(40, 128, OptimizerConfig::adam(0.006, 0.05), Schedule::OneCycle { warmup: 1 })
            },
        },
        _ => return None,
    };
    Some(p)
}
