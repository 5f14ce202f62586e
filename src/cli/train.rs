//! `scratchnet train`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use scratchnet::checkpoint;
use scratchnet::data::{Dataset, discover};
use scratchnet::model::presets::{PRESET_NAMES, TrainConfig, preset};
use scratchnet::model::{ModelSpec, Sequential};
use scratchnet::model_file::{self, InputNorm, ModelInfo, TrainingRecord};
use scratchnet::optim::{OptimizerConfig, Schedule};
use scratchnet::train::{EVAL_BATCH, EpochStats, Trainer, evaluate_tta};

use super::{DataArgs, percent};

#[derive(Args)]
pub struct TrainArgs {
    /// Preset (mlp-sgd, mlp-sgd-momentum, mlp, mlp-dropout, mlp-dropout-l2, cnn, cnn-plus) or a spec.json file
    #[arg(long)]
    pub model: Option<String>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Train up to this epoch (default: the preset's)
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
    /// Learning-rate schedule, stepped once per epoch (cosine: from --lr down to 0 at the last epoch)
    #[arg(long, value_parser = ["constant", "inverse-time", "cosine"])]
    pub schedule: Option<String>,
    /// Epochs of linear learning-rate warm-up before the cosine schedule
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
    /// Where to write the trained model (default: <model>.safetensors)
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Append one JSON object per epoch to this file
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Draw loss and accuracy curves to this PNG
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Write a checkpoint (<out>.ckpt.safetensors) every N epochs
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<usize>,
    /// Continue from a checkpoint file
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
    /// How the model predicts, recorded in its file and used for every evaluation (hflip: each
    /// image averaged with its mirror image). May be set when resuming, also on a finished checkpoint
    #[arg(long, value_parser = scratchnet::model::Tta::NAMES)]
    pub tta: Option<String>,
}

/// Training stopped by Ctrl-C; the message says where the checkpoint is.
#[derive(Debug)]
pub struct Interrupted(pub String);
impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Interrupted {}

/// The default training recipe for a spec.json network.
fn default_config() -> TrainConfig {
    TrainConfig {
        epochs: 10,
        batch_size: 64,
        optimizer: OptimizerConfig::Sgd { lr: 0.01, momentum: 0.9, nesterov: false, weight_decay: 0.0 },
        schedule: Schedule::Constant,
        label_smoothing: 0.0,
        seed: 0,
        validation: 0,
        augment: Default::default(),
    }
}

/// Applies command-line overrides to a preset's recipe.
fn apply_overrides(mut c: TrainConfig, a: &TrainArgs) -> Result<TrainConfig> {
    if let Some(e) = a.epochs {
        anyhow::ensure!(e >= 1, "--epochs must be at least 1");
        c.epochs = e;
    }
    if let Some(b) = a.batch_size {
        anyhow::ensure!(b >= 1, "--batch-size must be at least 1");
        c.batch_size = b;
    }
    if let Some(s) = a.seed {
        c.seed = s;
    }
    if let Some(v) = a.validation {
        c.validation = v;
    }
    if let Some(s) = a.augment_shift {
        anyhow::ensure!(s <= 8, "--augment-shift must be at most 8 pixels");
        c.augment.max_shift = s;
    }
    if a.hflip {
        c.augment.hflip = true;
    }
    if let Some(s) = a.label_smoothing {
        anyhow::ensure!((0.0..1.0).contains(&s), "--label-smoothing must be in [0, 1)");
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
                anyhow::ensure!((0.0..1.0).contains(&v), "--momentum must be in [0, 1)");
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
    anyhow::ensure!(c.optimizer.lr() > 0.0 && c.optimizer.lr().is_finite(), "--lr must be a positive number");
    if let Some(d) = a.decay {
        anyhow::ensure!(d >= 0.0, "--decay must not be negative");
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
        _ => {}
    }
    if let Some(w) = a.warmup {
        match &mut c.schedule {
            Schedule::Cosine { warmup, .. } => *warmup = w,
            _ => anyhow::bail!("--warmup applies to the cosine schedule (--schedule cosine)"),
        }
    }
    Ok(c)
}

/// (name, spec, recipe) of `--model`.
fn resolve_model(arg: &str) -> Result<(String, Option<String>, ModelSpec, TrainConfig)> {
    if let Some(p) = preset(arg) {
        return Ok((p.name.to_string(), Some(p.name.to_string()), p.spec, p.train));
    }
    let path = Path::new(arg);
    if path.extension().is_some_and(|e| e == "json") || path.is_file() {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading spec {}", path.display()))?;
        let spec = ModelSpec::from_json(&text).with_context(|| format!("in {}", path.display()))?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or("model".into());
        return Ok((name, None, spec, default_config()));
    }
    bail!("unknown model '{arg}': expected a preset ({}) or a spec .json file", PRESET_NAMES.join(", "))
}

pub fn checkpoint_path(out: &Path) -> PathBuf {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or("model".into());
    let stem = stem.strip_suffix(".ckpt").unwrap_or(&stem).to_string();
    out.with_file_name(format!("{stem}.ckpt.safetensors"))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{cpu}, {cores} cores")
}

/// UTC date and time, ISO 8601, from the system clock (days-to-civil, no date crate needed).
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

fn epoch_line(s: &EpochStats, total: usize) -> String {
    let test = s.test_accuracy.map_or("-".to_string(), percent);
    let val = s.validation_accuracy.map_or(String::new(), |v| format!("  val {}", percent(v)));
    format!(
        "epoch {:>3}/{total}  lr {:.6}  loss {:.4}  train {}{val}  test {}  {:.1}s  {:.0} img/s",
        s.epoch,
        s.lr,
        s.train_loss,
        percent(s.train_accuracy),
        test,
        s.seconds,
        s.images_per_second
    )
}

/// What a model or checkpoint file records about its training so far.
struct Record<'a> {
    preset: Option<String>,
    command: String,
    train_examples: usize,
    started: Instant,
    /// Wall time of earlier runs of the same training (before a resume).
    prior_seconds: f64,
    dataset: &'a str,
}

impl Record<'_> {
    fn at(&self, trainer: &Trainer) -> TrainingRecord {
        let last = trainer.state.history.last();
        TrainingRecord {
            preset: self.preset.clone(),
            command: self.command.clone(),
            config: trainer.config.clone(),
            epochs: trainer.state.epoch,
            dataset: self.dataset.to_string(),
            train_examples: self.train_examples,
            final_train_accuracy: last.map(|s| s.train_accuracy),
            final_test_accuracy: last.and_then(|s| s.test_accuracy),
            final_validation_accuracy: last.and_then(|s| s.validation_accuracy),
            wall_seconds: self.prior_seconds + self.started.elapsed().as_secs_f64(),
            threads: rayon::current_num_threads(),
            machine: machine(),
            date: now_utc(),
        }
    }
}

fn save_checkpoint(trainer: &Trainer, info: &ModelInfo, record: &Record, path: &Path) -> Result<()> {
    let info = ModelInfo { training: Some(record.at(trainer)), ..info.clone() };
    let bytes = checkpoint::to_bytes(trainer, &info)?;
    model_file::write_atomic(path, &bytes)?;
    Ok(())
}

/// The test and validation accuracy of the model after an epoch, predicting as `tta` says.
fn evaluate_into(
    stats: &mut EpochStats,
    trainer: &mut Trainer,
    test: Option<&Dataset>,
    validation: Option<&Dataset>,
    tta: scratchnet::model::Tta,
) -> Result<()> {
    if let Some(test) = test {
        stats.test_accuracy = Some(evaluate_tta(&mut trainer.model, test, EVAL_BATCH, tta)?.accuracy);
    }
    if let Some(val) = validation {
        stats.validation_accuracy = Some(evaluate_tta(&mut trainer.model, val, EVAL_BATCH, tta)?.accuracy);
    }
    Ok(())
}

pub fn run(a: TrainArgs) -> Result<()> {
    super::init_threads(a.threads)?;
    super::set_im2col(a.im2col);
    let started = Instant::now();
    // First thing, so a Ctrl-C during data loading is also caught (training then stops at once).
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst)).context("installing the Ctrl-C handler")?;
    }
    let (mut trainer, mut info, name, preset_name) = match &a.resume {
        Some(ckpt) => {
            for (flag, set) in [
                ("--model", a.model.is_some()),
                ("--batch-size", a.batch_size.is_some()),
                ("--lr", a.lr.is_some()),
                ("--momentum", a.momentum.is_some()),
                ("--decay", a.decay.is_some()),
                ("--schedule", a.schedule.is_some()),
                ("--warmup", a.warmup.is_some()),
                ("--l2", a.l2.is_some()),
                ("--optimizer", a.optimizer.is_some()),
                ("--seed", a.seed.is_some()),
                ("--label-smoothing", a.label_smoothing.is_some()),
                ("--validation", a.validation.is_some()),
                ("--augment-shift", a.augment_shift.is_some()),
                ("--hflip", a.hflip),
            ] {
                anyhow::ensure!(!set, "{flag} cannot be changed when resuming; the checkpoint fixes it");
            }
            let loaded = model_file::load(ckpt)?;
            let (mut t, info) = checkpoint::restore(loaded, &ckpt.display().to_string())?;
            if let Some(e) = a.epochs {
                anyhow::ensure!(
                    e > t.state.epoch,
                    "--epochs {e}: the checkpoint has already trained {} epochs",
                    t.state.epoch
                );
                t.config.epochs = e;
            }
            let preset = info.training.as_ref().and_then(|r| r.preset.clone());
            let stem = ckpt.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or("model".into());
            let name = stem.strip_suffix(".ckpt").unwrap_or(&stem).to_string();
            eprintln!("resuming {} at epoch {} batch {}", ckpt.display(), t.state.epoch + 1, t.state.batch);
            (t, info, name, preset)
        }
        None => {
            let Some(m) = &a.model else {
                bail!("--model is required (a preset: {}; or a spec .json)", PRESET_NAMES.join(", "))
            };
            let (name, preset_name, spec, config) = resolve_model(m)?;
            let config = apply_overrides(config, &a)?;
            let model = Sequential::new(spec.clone(), config.seed)?;
            let info = ModelInfo {
                spec,
                classes: vec![],
                dataset: String::new(),
                input: InputNorm::default(),
                training: None,
                tta: Default::default(),
            };
            (Trainer::new(model, config), info, name, preset_name)
        }
    };
    let resumed_tta = info.tta;
    info.tta = super::tta_or(a.tta.as_deref(), info.tta);
    let dataset_arg = a.data.dataset.clone().or_else(|| (!info.dataset.is_empty()).then(|| info.dataset.clone()));
    let dataset_arg = dataset_arg.unwrap_or_else(|| "fashion-mnist".to_string());
    let splits = discover::load(&dataset_arg, a.data.data_dir.as_deref())?;
    let mut train: Dataset = splits.train()?.clone();
    let mut validation = None;
    if trainer.config.validation > 0 {
        let n = trainer.config.validation;
        anyhow::ensure!(
            n >= 1 && n < train.len(),
            "--validation must be between 1 and {} (the training set)",
            train.len() - 1
        );
        let (rest, val) = train.split_validation(n, trainer.config.seed);
        train = rest;
        validation = Some(val);
    }
    if let Some(n) = a.limit {
        anyhow::ensure!(n >= 1, "--limit must be at least 1");
        train = train.take(n);
    }
    let test = splits.test.as_ref();
    super::ensure_fits(trainer.model.spec(), &train, &splits.origin)?;
    info.classes = train.classes.clone();
    info.dataset = splits.kind.name().to_string();

    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("{name}.safetensors")));
    let ckpt_path = checkpoint_path(&out);
    let total_epochs = trainer.config.epochs;
    let show_bar = !a.quiet && std::io::stderr().is_terminal();
    let mut metrics = match &a.metrics {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening {}", p.display()))?,
        ),
        None => None,
    };
    let dataset_name = info.dataset.clone();
    let record = Record {
        preset: preset_name,
        // The program as users type it, not the path it happened to run from.
        command: std::iter::once("scratchnet".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
        train_examples: train.len(),
        started,
        prior_seconds: info.training.as_ref().map_or(0.0, |r| r.wall_seconds),
        dataset: &dataset_name,
    };
    eprintln!(
        "training {name} ({} parameters) on {} ({} images), {} threads",
        trainer.model.spec().num_params(),
        splits.origin,
        train.len(),
        rayon::current_num_threads()
    );

    let first_epoch = trainer.state.epoch;
    while trainer.state.epoch < total_epochs {
        let bar = show_bar.then(|| {
            let b = indicatif::ProgressBar::new(trainer.batches_per_epoch(&train) as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "epoch {msg} [{bar:30}] {pos}/{len} batches, {elapsed} elapsed, eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b.set_message(format!("{}/{total_epochs}", trainer.state.epoch + 1));
            b.set_position(trainer.state.batch as u64);
            b
        });
        let outcome = trainer.run_epoch(&train, &mut |done, _| {
            if let Some(b) = &bar {
                b.set_position(done as u64);
            }
            !stop.load(Ordering::SeqCst)
        });
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        let Some(mut stats) = (match outcome {
            Ok(s) => s,
            Err(e) => return Err(anyhow::Error::new(e).context("no model was written")),
        }) else {
            save_checkpoint(&trainer, &info, &record, &ckpt_path)?;
            return Err(Interrupted(format!(
                "interrupted at epoch {} batch {}; checkpoint written to {} (continue with: scratchnet train --resume {})",
                trainer.state.epoch + 1,
                trainer.state.batch,
                ckpt_path.display(),
                ckpt_path.display()
            ))
            .into());
        };
        evaluate_into(&mut stats, &mut trainer, test, validation.as_ref(), info.tta)?;
        println!("{}", epoch_line(&stats, total_epochs));
        if let Some(f) = &mut metrics {
            writeln!(f, "{}", serde_json::to_string(&stats)?)?;
        }
        trainer.state.history.push(stats);
        if a.checkpoint_every.is_some_and(|n| n > 0 && trainer.state.epoch % n == 0) {
            save_checkpoint(&trainer, &info, &record, &ckpt_path)?;
        }
        if stop.load(Ordering::SeqCst) && trainer.state.epoch < total_epochs {
            save_checkpoint(&trainer, &info, &record, &ckpt_path)?;
            return Err(Interrupted(format!(
                "interrupted after epoch {}; checkpoint written to {}",
                trainer.state.epoch,
                ckpt_path.display()
            ))
            .into());
        }
    }

    // A finished checkpoint saved with another --tta: its last evaluation no longer describes the
    // model as it will predict, so measure again.
    if trainer.state.epoch == first_epoch
        && info.tta != resumed_tta
        && let Some(mut last) = trainer.state.history.pop()
    {
        evaluate_into(&mut last, &mut trainer, test, validation.as_ref(), info.tta)?;
        eprintln!("evaluated with --tta {}: {}", info.tta.name(), epoch_line(&last, total_epochs));
        trainer.state.history.push(last);
    }
    info.training = Some(record.at(&trainer));
    let bytes = model_file::to_bytes(&trainer.model, &info, &[], None)?;
    model_file::write_atomic(&out, &bytes)?;
    if let Some(p) = &a.plot {
        super::plot::curves(&trainer.state.history, &name, p)?;
        eprintln!("curves written to {}", p.display());
    }
    eprintln!("model written to {}", out.display());
    Ok(())
}
