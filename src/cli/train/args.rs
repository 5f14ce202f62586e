//! `train`'s flags, and how they turn a preset's recipe into the run's.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use scratchnet::model::ModelSpec;
use scratchnet::train::{OptimizerConfig, PRESET_NAMES, Schedule, TrainConfig, preset};

use crate::cli::DataArgs;

#[derive(Args)]
pub struct TrainArgs {
    /// Preset (mlp-sgd, mlp-sgd-momentum, mlp, mlp-dropout, mlp-dropout-l2, cnn, cnn-plus, cnn-fast, cnn-best) or a spec.json file
    #[arg(long)]
    pub model: Option<String>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Train up to this epoch (default: the preset's). With --resume it may differ from the
    /// checkpoint's total (not below the epochs done), e.g. to continue a finished run: a schedule
    /// that depends on the total (cosine) is then recomputed for the new total from the next epoch
    /// on, so the run no longer matches one trained with that total from the start
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Base learning rate
    #[arg(long)]
    pub lr: Option<f32>,
    /// Momentum (SGD)
    #[arg(long)]
    pub momentum: Option<f32>,
    /// Inverse-time decay per epoch: lr / (1 + decay·epoch)
    #[arg(long)]
    pub decay: Option<f32>,
    /// Learning-rate schedule, stepped once per epoch (cosine: from --lr down to 0 at the last
    /// epoch), or one-cycle: warm-up then cosine to 0, updated at every step
    #[arg(long, value_parser = ["constant", "inverse-time", "cosine", "one-cycle"])]
    pub schedule: Option<String>,
    /// Epochs of linear learning-rate warm-up before the cosine (or one-cycle) schedule
    #[arg(long, value_name = "N")]
    pub warmup: Option<usize>,
    /// L2 / weight decay on weights, standard form g += l2·w (the original's λ is l2·batch size)
    #[arg(long)]
    pub l2: Option<f32>,
    #[arg(long, value_parser = ["sgd", "adam", "adamw"])]
    pub optimizer: Option<String>,
    /// Augmentation: shift training images by up to N pixels (random, each time they are used)
    #[arg(long, value_name = "N")]
    pub augment_shift: Option<usize>,
    /// Augmentation: mirror training images left-right at random (for clothing, not digits)
    #[arg(long)]
    pub hflip: bool,
    /// Augmentation: with probability P, set a random rectangle of a training image to 0
    /// (random erasing: 2-33% of the image, aspect ratio 0.3-3.3)
    #[arg(long, value_name = "P")]
    pub erase: Option<f32>,
    /// Weight decay (--l2) on batch norms' scales and shifts too (by default they are not decayed,
    /// as PyTorch recipes usually exclude them)
    #[arg(long)]
    pub decay_norm: bool,
    /// Label smoothing of the cross-entropy targets
    #[arg(long)]
    pub label_smoothing: Option<f32>,
    /// Seed for initialisation, shuffling and dropout
    #[arg(long)]
    pub seed: Option<u64>,
    /// Worker threads (default: all cores); results are identical for any thread count
    #[arg(long)]
    pub threads: Option<usize>,
    /// Compute every convolution by im2col + GEMM, the original's algorithm (slower; the reference)
    #[arg(long)]
    pub im2col: bool,
    /// Where to write the trained model (default: <model>.safetensors; when resuming, the
    /// checkpoint's name without .ckpt)
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Append to this file a JSON line with the run's settings, then one per epoch
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Draw loss and accuracy curves to this PNG
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Write a checkpoint (<out>.ckpt.safetensors) every N epochs
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<usize>,
    /// Continue the run of this checkpoint. Its settings (network, data, --limit, --validation,
    /// recipe, seed) carry on: flags may repeat them but not change them
    #[arg(long, value_name = "CKPT")]
    pub resume: Option<PathBuf>,
    /// Train on the first N training images only
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Hold out N training images (chosen by the seed) as a validation set, reported each epoch
    #[arg(long, value_name = "N")]
    pub validation: Option<usize>,
    /// No progress bar
    #[arg(long)]
    pub quiet: bool,
    /// Where to compute: cpu (default), gpu, or auto (a real GPU if there is one). The per-sample
    /// presets (mlp-sgd, mlp-sgd-momentum) are slower on a GPU than on the CPU
    #[arg(long, value_parser = ["cpu", "gpu", "auto"])]
    pub device: Option<String>,
    /// How the model predicts, recorded in its file and used for every evaluation (hflip: each
    /// image averaged with its mirror image). May be set when resuming, also on a finished checkpoint
    #[arg(long, value_parser = scratchnet::model::Tta::NAMES)]
    pub tta: Option<String>,
}

/// The default training recipe for a spec.json network.
pub fn default_config() -> TrainConfig {
    scratchnet::train::recipe::spec_default()
}

/// Checks the values of numeric flags that no recipe could accept.
pub fn check_ranges(a: &TrainArgs) -> Result<()> {
    let positive = |flag: &str, v: Option<usize>| match v {
        Some(0) => bail!("{flag} must be at least 1"),
        _ => Ok(()),
    };
    positive("--epochs", a.epochs)?;
    positive("--batch-size", a.batch_size)?;
    positive("--limit", a.limit)?;
    positive("--checkpoint-every", a.checkpoint_every)?;
    if let Some(v) = a.lr {
        anyhow::ensure!(v > 0.0 && v.is_finite(), "--lr must be a positive number, not {v}");
    }
    if let Some(v) = a.momentum {
        anyhow::ensure!((0.0..1.0).contains(&v), "--momentum must be in [0, 1), not {v}");
    }
    if let Some(v) = a.decay {
        anyhow::ensure!(v >= 0.0 && v.is_finite(), "--decay must not be negative, not {v}");
    }
    if let Some(v) = a.l2 {
        anyhow::ensure!(v >= 0.0 && v.is_finite(), "--l2 must not be negative, not {v}");
    }
    if let Some(v) = a.label_smoothing {
        anyhow::ensure!((0.0..1.0).contains(&v), "--label-smoothing must be in [0, 1), not {v}");
    }
    if let Some(s) = a.augment_shift {
        anyhow::ensure!(s <= 8, "--augment-shift must be at most 8 pixels, not {s}");
    }
    if let Some(p) = a.erase {
        anyhow::ensure!((0.0..=1.0).contains(&p), "--erase must be a probability in [0, 1], not {p}");
    }
    Ok(())
}

/// Applies command-line overrides to a preset's recipe.
pub fn apply_overrides(mut c: TrainConfig, a: &TrainArgs) -> Result<TrainConfig> {
    check_ranges(a)?;
    if let Some(e) = a.epochs {
        c.epochs = e;
    }
    if let Some(b) = a.batch_size {
        c.batch_size = b;
    }
    if let Some(s) = a.seed {
        c.seed = s;
    }
    if let Some(v) = a.validation {
        c.validation = v;
    }
    if let Some(s) = a.augment_shift {
        c.augment.max_shift = s;
    }
    if a.hflip {
        c.augment.hflip = true;
    }
    if let Some(p) = a.erase {
        c.augment.erase = p;
    }
    if let Some(s) = a.label_smoothing {
        c.label_smoothing = s;
    }
    if let Some(o) = &a.optimizer {
        let (lr, wd) = match c.optimizer {
            OptimizerConfig::Sgd { lr, weight_decay, .. } | OptimizerConfig::Adam { lr, weight_decay, .. } => {
                (lr, weight_decay)
            }
        };
        c.optimizer = match o.as_str() {
            "sgd" => OptimizerConfig::Sgd { lr, momentum: 0.9, nesterov: false, weight_decay: wd },
            "adam" => {
                OptimizerConfig::Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: wd, decoupled: false }
            }
            _ => OptimizerConfig::adam(lr, wd),
        };
    }
    match &mut c.optimizer {
        OptimizerConfig::Sgd { lr, momentum, weight_decay, .. } => {
            if let Some(v) = a.lr {
                *lr = v;
            }
            if let Some(v) = a.momentum {
                *momentum = v;
            }
            if let Some(v) = a.l2 {
                *weight_decay = v;
            }
        }
        OptimizerConfig::Adam { lr, weight_decay, .. } => {
            if let Some(v) = a.lr {
                *lr = v;
            }
            anyhow::ensure!(a.momentum.is_none(), "--momentum applies to SGD only");
            if let Some(v) = a.l2 {
                *weight_decay = v;
            }
        }
    }
    if a.decay_norm {
        let wd = match c.optimizer {
            OptimizerConfig::Sgd { weight_decay, .. } | OptimizerConfig::Adam { weight_decay, .. } => weight_decay,
        };
        anyhow::ensure!(
            wd > 0.0,
            "--decay-norm applies the weight decay to batch norms' scales and shifts too, and this recipe has none \
             (add --l2 X)"
        );
        c.decay_norm = true;
    }
    if let Some(d) = a.decay {
        c.schedule = if d == 0.0 { Schedule::Constant } else { Schedule::InverseTime { decay: d } };
    }
    match a.schedule.as_deref() {
        Some("constant") => {
            anyhow::ensure!(a.decay.is_none(), "--decay needs --schedule inverse-time");
            c.schedule = Schedule::Constant;
        }
        Some("inverse-time") if a.decay.is_none() => {
            anyhow::bail!("--schedule inverse-time needs --decay")
        }
        Some("cosine") => {
            anyhow::ensure!(a.decay.is_none(), "--decay applies to --schedule inverse-time only");
            c.schedule = Schedule::Cosine { warmup: 0, min_lr: 0.0 };
        }
        Some("one-cycle") => {
            anyhow::ensure!(a.decay.is_none(), "--decay applies to --schedule inverse-time only");
            c.schedule = Schedule::OneCycle { warmup: 0 };
        }
        _ => {}
    }
    if let Some(w) = a.warmup {
        match &mut c.schedule {
            Schedule::Cosine { warmup, .. } | Schedule::OneCycle { warmup } => *warmup = w,
            _ => anyhow::bail!("--warmup applies to the cosine and one-cycle schedules (--schedule cosine|one-cycle)"),
        }
    }
    Ok(c)
}

/// Refuses `--decay-norm` for a network without batch norms, where it would change nothing.
pub fn check_decay_norm(a: &TrainArgs, spec: &ModelSpec) -> Result<()> {
    if a.decay_norm && spec.layers.iter().all(|l| l.buffer_shapes().is_empty()) {
        bail!(
            "--decay-norm: the network has no batch norms (batch_norm2d, batch_norm1d) whose scales and shifts it would decay"
        );
    }
    Ok(())
}

/// What `--model` names.
pub struct ModelChoice {
    /// The preset's name or the spec file's stem.
    pub name: String,
    pub preset: Option<String>,
    pub spec: ModelSpec,
    pub config: TrainConfig,
}

pub fn resolve_model(arg: &str) -> Result<ModelChoice> {
    if let Some(p) = preset(arg) {
        return Ok(ModelChoice {
            name: p.name.to_string(),
            preset: Some(p.name.to_string()),
            spec: p.spec,
            config: p.train,
        });
    }
    let path = Path::new(arg);
    if path.extension().is_some_and(|e| e == "json") || path.is_file() {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading spec {}", path.display()))?;
        let spec = ModelSpec::from_json(&text).with_context(|| format!("in {}", path.display()))?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or("model".into());
        return Ok(ModelChoice { name, preset: None, spec, config: default_config() });
    }
    bail!("unknown model '{arg}': expected a preset ({}) or a spec .json file", PRESET_NAMES.join(", "))
}

/// The name `--optimizer` gives the optimizer of a recipe.
pub fn optimizer_name(o: &OptimizerConfig) -> &'static str {
    match o {
        OptimizerConfig::Sgd { .. } => "sgd",
        OptimizerConfig::Adam { decoupled: false, .. } => "adam",
        OptimizerConfig::Adam { decoupled: true, .. } => "adamw",
    }
}

/// The name `--schedule` gives a schedule.
pub fn schedule_name(s: &Schedule) -> &'static str {
    match s {
        Schedule::Constant => "constant",
        Schedule::InverseTime { .. } => "inverse-time",
        Schedule::Step { .. } => "step",
        Schedule::Cosine { .. } => "cosine",
        Schedule::OneCycle { .. } => "one-cycle",
    }
}
