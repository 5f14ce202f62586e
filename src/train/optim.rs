//! Optimizers and learning-rate schedules, kept apart from the layers: an optimizer sees only
//! (parameter, gradient) pairs through [`Sequential::visit_params_mut`].
//!
//! Weight decay / L2 applies to weights, not biases (nor batch norms' scales and shifts unless
//! `decay_norm`), in the standard form g += λ·θ. The original's
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
    /// SGD without momentum or weight decay: θ -= lr·∇θ and nothing else.
    pub fn is_plain_sgd(&self) -> bool {
        matches!(*self, OptimizerConfig::Sgd { momentum, weight_decay, .. } if momentum == 0.0 && weight_decay == 0.0)
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
    /// The same shape updated at every step, not every epoch (for short schedules, where a
    /// per-epoch staircase wastes the last epoch at lr 0): linear warm-up from 0 over `warmup`
    /// epochs, then cosine down to 0 at the last step.
    OneCycle {
        warmup: usize,
    },
}

impl Schedule {
    /// The learning rate at step `batch` of `batches` in `epoch`: per-step schedules change
    /// within an epoch, the others hold [`Schedule::lr`] for the whole epoch.
    pub fn lr_at(&self, base: f32, epoch: usize, epochs: usize, batch: usize, batches: usize) -> f32 {
        match *self {
            Schedule::OneCycle { warmup } => {
                let at = epoch as f64 + batch as f64 / batches.max(1) as f64;
                let (w, end) = (warmup as f64, epochs as f64);
                let f = if at < w {
                    // The first step already moves: (batch + 1) of the warm-up's steps.
                    (at + 1.0 / batches.max(1) as f64) / w
                } else {
                    0.5 * (1.0 + (std::f64::consts::PI * ((at - w) / (end - w).max(1e-9)).min(1.0)).cos())
                };
                (base as f64 * f) as f32
            }
            _ => self.lr(base, epoch, epochs),
        }
    }

    /// The learning rate of `epoch` (at its first step, for per-step schedules).
    pub fn lr(&self, base: f32, epoch: usize, epochs: usize) -> f32 {
        match *self {
            Schedule::OneCycle { .. } => self.lr_at(base, epoch, epochs, 0, usize::MAX),
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
    /// `slots[s][i]`: slot s (see [`OptimizerConfig::slot_names`]) of parameter i.
    pub slots: Vec<Vec<Tensor>>,
    /// Updates taken so far (Adam's bias correction needs it).
    pub steps: u64,
    /// Whether weight decay applies to normalisation layers' scales and shifts too.
    pub decay_norm: bool,
}

impl Optimizer {
    pub fn new(config: OptimizerConfig) -> Self {
        let slots = vec![Vec::new(); config.slot_names().len()];
        Optimizer { config, slots, steps: 0, decay_norm: false }
    }

    /// One update of every parameter from its gradient, at learning rate `lr`.
    pub fn step(&mut self, model: &mut Sequential, lr: f32) -> Result<()> {
        self.steps += 1;
        let (config, steps, slots, decay_norm) = (&self.config, self.steps, &mut self.slots, self.decay_norm);
        let mut result = Ok(());
        model.visit_params_mut(&mut |i, p| {
            for slot in slots.iter_mut() {
                if slot.len() == i {
                    match Tensor::zeros_on(p.value.shape(), &p.value.device()) {
                        Ok(t) => slot.push(t),
                        Err(e) => {
                            result = Err(e);
                            return;
                        }
                    }
                }
            }
            let decay = |wd: f32| if p.decay || (p.norm && decay_norm) { wd } else { 0.0 };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LayerSpec, ModelSpec};

    /// A 1-input, 2-output linear model: parameters w = [w0, w1] (decayed) and b = [b0, b1].
    fn tiny() -> Sequential {
        let spec = ModelSpec {
            input: [1, 1, 1],
            layers: vec![LayerSpec::Flatten, LayerSpec::Linear { in_features: 1, out_features: 2 }],
        };
        let mut m = Sequential::new(spec, 0).unwrap();
        m.set_params(vec![Tensor::from_vec(&[2, 1], vec![1.0, -2.0]).unwrap(), Tensor::zeros(&[2])]).unwrap();
        m
    }

    fn set_grads(m: &mut Sequential, gw: [f32; 2], gb: [f32; 2]) {
        m.visit_params_mut(&mut |i, p| p.grad.data_mut().copy_from_slice(if i == 0 { &gw } else { &gb }));
    }

    fn weights(m: &Sequential) -> Vec<f32> {
        m.named_params()[0].1.data().to_vec()
    }

    #[test]
    fn sgd_momentum_and_l2_match_hand_computation() {
        let mut m = tiny();
        let mut opt =
            Optimizer::new(OptimizerConfig::Sgd { lr: 0.1, momentum: 0.9, nesterov: false, weight_decay: 0.5 });
        // step 1: g = 0.2 + 0.5·1 = 0.7; v = -0.07; w = 0.93.  w1: g = -0.4 + 0.5·-2 = -1.4; v = 0.14; w = -1.86
        set_grads(&mut m, [0.2, -0.4], [1.0, 1.0]);
        opt.step(&mut m, 0.1).unwrap();
        let w = weights(&m);
        assert!((w[0] - 0.93).abs() < 1e-6 && (w[1] + 1.86).abs() < 1e-6, "{w:?}");
        // Biases get no decay: b = -0.1.
        assert!((m.named_params()[1].1.data()[0] + 0.1).abs() < 1e-6);
        // step 2 at lr 0.05: g = 0.2 + 0.465 = 0.665; v = 0.9·-0.07 - 0.05·0.665 = -0.09625; w = 0.83375
        opt.step(&mut m, 0.05).unwrap();
        assert!((weights(&m)[0] - 0.83375).abs() < 1e-6, "{:?}", weights(&m));
    }

    #[test]
    fn nesterov_step_matches_hand_computation() {
        let mut m = tiny();
        let mut opt =
            Optimizer::new(OptimizerConfig::Sgd { lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.0 });
        set_grads(&mut m, [1.0, 0.0], [0.0, 0.0]);
        // v = -0.1; θ += 0.9·v - 0.1·g = -0.09 - 0.1 → 0.81. Then v = -0.09 - 0.1 = -0.19; θ += -0.171 - 0.1 → 0.539.
        opt.step(&mut m, 0.1).unwrap();
        assert!((weights(&m)[0] - 0.81).abs() < 1e-6, "{:?}", weights(&m));
        opt.step(&mut m, 0.1).unwrap();
        assert!((weights(&m)[0] - 0.539).abs() < 1e-6, "{:?}", weights(&m));
    }

    #[test]
    fn decaying_velocity_is_flushed_before_it_becomes_subnormal() {
        let mut m = tiny();
        let mut opt =
            Optimizer::new(OptimizerConfig::Sgd { lr: 0.1, momentum: 0.5, nesterov: false, weight_decay: 0.0 });
        set_grads(&mut m, [1.0, 1.0], [0.0, 0.0]);
        opt.step(&mut m, 0.1).unwrap();
        set_grads(&mut m, [0.0, 0.0], [0.0, 0.0]);
        for _ in 0..200 {
            opt.step(&mut m, 0.1).unwrap();
        }
        // 0.1·0.5^200 would be ~6e-62: far below f32's normal range, so it must be exactly 0.
        assert!(opt.slots[0][0].data().iter().all(|&v| v == 0.0 || v.abs() >= f32::MIN_POSITIVE));
        assert_eq!(opt.slots[0][0].data(), &[0.0, 0.0]);
    }

    #[test]
    fn plain_sgd_and_adam_steps() {
        let mut m = tiny();
        let mut opt =
            Optimizer::new(OptimizerConfig::Sgd { lr: 0.1, momentum: 0.0, nesterov: false, weight_decay: 0.0 });
        set_grads(&mut m, [1.0, 2.0], [0.0, 0.0]);
        opt.step(&mut m, 0.1).unwrap();
        assert_eq!(weights(&m), vec![0.9, -2.2]);

        let mut m = tiny();
        let mut opt = Optimizer::new(OptimizerConfig::adam(0.01, 0.0));
        set_grads(&mut m, [0.5, -3.0], [0.0, 0.0]);
        opt.step(&mut m, 0.01).unwrap();
        // First Adam step moves each weight by lr·sign(g) (bias-corrected m/sqrt(v) = ±1).
        let w = weights(&m);
        assert!((w[0] - 0.99).abs() < 1e-5 && (w[1] + 1.99).abs() < 1e-5, "{w:?}");
    }

    #[test]
    fn schedules() {
        let inv = Schedule::InverseTime { decay: 0.001 };
        assert_eq!(inv.lr(0.005, 0, 40), 0.005);
        assert!((inv.lr(0.005, 10, 40) - 0.005 / 1.01).abs() < 1e-9);
        assert_eq!(Schedule::Step { every: 10, gamma: 0.1 }.lr(1.0, 25, 40), 0.010000001);
        let cos = Schedule::Cosine { warmup: 1, min_lr: 0.0 };
        assert_eq!(cos.lr(0.1, 0, 11), 0.05);
        assert!((cos.lr(0.1, 1, 11) - 0.1).abs() < 1e-7);
        assert!(cos.lr(0.1, 10, 11).abs() < 1e-7);

        // One-cycle: per step; 2 epochs of 4 steps, 1 of warm-up.
        let one = Schedule::OneCycle { warmup: 1 };
        let lrs: Vec<f32> =
            (0..2).flat_map(|e| (0..4).map(move |b| (e, b))).map(|(e, b)| one.lr_at(1.0, e, 2, b, 4)).collect();
        let cosine = |t: f32| 0.5 * (1.0 + (std::f32::consts::PI * t).cos());
        let want = [0.25, 0.5, 0.75, 1.0, 1.0, cosine(0.25), cosine(0.5), cosine(0.75)];
        for (a, b) in lrs.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{lrs:?}");
        }
        assert_eq!(one.lr(1.0, 1, 2), 1.0);
        assert_eq!(cos.lr_at(0.1, 1, 11, 3, 4), cos.lr(0.1, 1, 11), "per-epoch schedules hold for the epoch");
    }
}
