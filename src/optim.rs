//! Optimizers and learning-rate schedules, kept apart from the layers: an optimizer sees only
//! (parameter, gradient) pairs through [`Sequential::visit_params_mut`].
//!
//! Weight decay / L2 applies to weights, not biases, in the standard form g += λ·θ. The original's
//! L2 (λ added to the batch-summed gradient) is λ/B in this form; the `mlp-dropout-l2` preset does so.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::Sequential;
use crate::ops::{self, AdamStep, SgdStep};
use crate::tensor::Tensor;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// v = μ·v - lr·(g + λ·θ); θ += v (the original's form). Nesterov: θ += μ·v - lr·g.
    Sgd { lr: f32, momentum: f32, nesterov: bool, weight_decay: f32 },
    /// Adam; `decoupled` makes it AdamW (θ -= lr·λ·θ instead of adding λ·θ to g).
    Adam { lr: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32, decoupled: bool },
}

impl OptimizerConfig {
    pub fn adam(lr: f32, weight_decay: f32) -> Self {
        OptimizerConfig::Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay, decoupled: true }
    }
    pub fn lr(&self) -> f32 {
        match *self {
            OptimizerConfig::Sgd { lr, .. } | OptimizerConfig::Adam { lr, .. } => lr,
        }
    }
    /// Names of the per-parameter state tensors this optimizer keeps.
    pub fn slot_names(&self) -> &'static [&'static str] {
        match self {
            OptimizerConfig::Sgd { momentum, .. } if *momentum == 0.0 => &[],
            OptimizerConfig::Sgd { .. } => &["momentum"],
            OptimizerConfig::Adam { .. } => &["exp_avg", "exp_avg_sq"],
        }
    }
}

/// Learning rate as a function of the epoch (0-based), stepped once per epoch like the original.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Schedule {
    Constant,
    /// lr / (1 + decay·epoch), the original's.
    InverseTime {
        decay: f32,
    },
    /// lr · gamma^(epoch / every).
    Step {
        every: usize,
        gamma: f32,
    },
    /// Linear warm-up over `warmup` epochs, then cosine from lr down to `min_lr` at the last epoch.
    Cosine {
        warmup: usize,
        min_lr: f32,
    },
}

impl Schedule {
    pub fn lr(&self, base: f32, epoch: usize, epochs: usize) -> f32 {
        match *self {
            Schedule::Constant => base,
            Schedule::InverseTime { decay } => base / (1.0 + decay * epoch as f32),
            Schedule::Step { every, gamma } => base * gamma.powi((epoch / every.max(1)) as i32),
            Schedule::Cosine { warmup, min_lr } => {
                if epoch < warmup {
                    return base * (epoch + 1) as f32 / (warmup + 1) as f32;
                }
                let span = epochs.saturating_sub(warmup).max(2) - 1;
                let t = ((epoch - warmup) as f32 / span as f32).min(1.0);
                min_lr + 0.5 * (base - min_lr) * (1.0 + (std::f32::consts::PI * t).cos())
            }
        }
    }
}

/// Optimizer state: one tensor per parameter per slot, created on the first step.
#[derive(Clone, Debug)]
pub struct Optimizer {
    pub config: OptimizerConfig,
    /// slots[s][i]: slot s (see [`OptimizerConfig::slot_names`]) of parameter i.
    pub slots: Vec<Vec<Tensor>>,
    /// Updates taken so far (Adam's bias correction needs it).
    pub steps: u64,
}

impl Optimizer {
    pub fn new(config: OptimizerConfig) -> Self {
        let slots = vec![Vec::new(); config.slot_names().len()];
        Optimizer { config, slots, steps: 0 }
    }

    /// One update of every parameter from its accumulated gradient, at learning rate `lr`.
    pub fn step(&mut self, model: &mut Sequential, lr: f32) -> Result<()> {
        self.steps += 1;
        let (config, steps, slots) = (&self.config, self.steps, &mut self.slots);
        let mut result = Ok(());
        model.visit_params_mut(&mut |i, p| {
            for slot in slots.iter_mut() {
                if slot.len() == i {
                    slot.push(Tensor::zeros(p.value.shape()));
                }
            }
            let decay = |wd: f32| if p.decay { wd } else { 0.0 };
            let r = match *config {
                OptimizerConfig::Sgd { momentum, nesterov, weight_decay, .. } => {
                    let h = SgdStep { lr, momentum, weight_decay: decay(weight_decay), nesterov };
                    let v = slots.first_mut().map(|s| &mut s[i]);
                    ops::sgd_step(p.value, p.grad, v, &h)
                }
                OptimizerConfig::Adam { beta1, beta2, eps, weight_decay, decoupled, .. } => {
                    let h =
                        AdamStep { lr, beta1, beta2, eps, weight_decay: decay(weight_decay), decoupled, step: steps };
                    let (m, v) = slots.split_at_mut(1);
                    ops::adam_step(p.value, p.grad, &mut m[0][i], &mut v[0][i], &h)
                }
            };
            if result.is_ok() {
                result = r;
            }
        });
        result
    }
}
