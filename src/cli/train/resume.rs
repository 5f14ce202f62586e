//! `train --resume`: the checkpoint fixes the run. A flag equal to the recorded setting is
//! accepted, an omitted one takes the recorded value, a different one is refused, so that rerunning
//! one's command with `--resume` appended, or `train --resume CKPT` alone, continues the same run.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use scratchnet::checkpoint::{self, Checkpoint, RunSettings};
use scratchnet::model::ModelSpec;
use scratchnet::model_file::{self, ModelInfo};
use scratchnet::train::{OptimizerConfig, Schedule, TrainConfig, Trainer, preset};

use super::args::{TrainArgs, optimizer_name, resolve_model, schedule_name};

pub struct Resumed {
    pub trainer: Trainer,
    pub info: ModelInfo,
    pub run: RunSettings,
    /// Whether the checkpoint recorded its run settings (older ones did not).
    pub recorded: bool,
}

/// Opens the checkpoint and checks `a`'s flags against it.
pub fn open(ckpt: &Path, a: &TrainArgs) -> Result<Resumed> {
    if !ckpt.exists() {
        bail!(
            "--resume {}: no such checkpoint (training writes one every N epochs with --checkpoint-every N, \
             and when Ctrl-C stops it)",
            ckpt.display()
        );
    }
    let loaded = model_file::load(ckpt)?;
    let Checkpoint { mut trainer, info, run } = checkpoint::decode(loaded, &ckpt.display().to_string())?;
    let recorded = run.is_some();
    let run = run.unwrap_or_else(|| unrecorded(&info, ckpt));
    check_model(a, &run, &info.spec)?;
    check_recipe(a, &trainer.config)?;
    if recorded {
        let all = "all training images".to_string();
        same("--limit", a.limit.map(|n| n.to_string()), run.limit.map_or(all, |n| n.to_string()))?;
    }
    if let Some(e) = a.epochs {
        anyhow::ensure!(
            e >= trainer.state.epoch,
            "--epochs {e}: the checkpoint has already trained {} epochs",
            trainer.state.epoch
        );
        trainer.config.epochs = e;
    }
    Ok(Resumed { trainer, info, run, recorded })
}

/// The settings of a checkpoint written before they were recorded: its name and data set.
fn unrecorded(info: &ModelInfo, ckpt: &Path) -> RunSettings {
    let preset = info.training.as_ref().and_then(|r| r.preset.clone());
    let stem = ckpt.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or("model".into());
    let name = preset.clone().unwrap_or_else(|| stem.strip_suffix(".ckpt").unwrap_or(&stem).to_string());
    RunSettings { name, preset, dataset: info.dataset.clone(), ..Default::default() }
}

/// Where a resumed run writes its model by default: beside the checkpoint, without `.ckpt`.
pub fn default_out(ckpt: &Path) -> PathBuf {
    let stem = ckpt.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or("model".into());
    ckpt.with_file_name(format!("{}.safetensors", stem.strip_suffix(".ckpt").unwrap_or(&stem)))
}

/// Refuses `flag` given with a value other than the recorded one.
fn same<T: PartialEq + Display>(flag: &str, given: Option<T>, recorded: T) -> Result<()> {
    match given {
        Some(g) if g != recorded => bail!(
            "{flag} {g} differs from the checkpoint's {recorded}; a resumed run keeps its settings \
             (start a new run to change them)"
        ),
        _ => Ok(()),
    }
}

fn check_model(a: &TrainArgs, run: &RunSettings, spec: &ModelSpec) -> Result<()> {
    let Some(m) = &a.model else { return Ok(()) };
    let recorded = || match &run.preset {
        Some(p) => format!("preset {p}"),
        None => format!("network '{}' (a spec file)", run.name),
    };
    if preset(m).is_some() {
        if run.preset.as_deref() != Some(m.as_str()) {
            bail!("--model {m} differs from the checkpoint's {}; a resumed run keeps its network", recorded());
        }
        return Ok(());
    }
    let choice = resolve_model(m)?;
    if &choice.spec != spec {
        bail!("--model {m}: its network differs from the checkpoint's {}", recorded());
    }
    Ok(())
}

fn check_recipe(a: &TrainArgs, c: &TrainConfig) -> Result<()> {
    same("--batch-size", a.batch_size, c.batch_size)?;
    same("--lr", a.lr, c.optimizer.lr())?;
    same("--optimizer", a.optimizer.as_deref(), optimizer_name(&c.optimizer))?;
    match c.optimizer {
        OptimizerConfig::Sgd { momentum, weight_decay, .. } => {
            same("--momentum", a.momentum, momentum)?;
            same("--l2", a.l2, weight_decay)?;
        }
        OptimizerConfig::Adam { weight_decay, .. } => {
            if let Some(m) = a.momentum {
                bail!("--momentum {m}: the checkpoint's optimizer, {}, has none", optimizer_name(&c.optimizer));
            }
            same("--l2", a.l2, weight_decay)?;
        }
    }
    same("--schedule", a.schedule.as_deref(), schedule_name(&c.schedule))?;
    let decay = match c.schedule {
        Schedule::InverseTime { decay } => decay,
        _ => 0.0,
    };
    same("--decay", a.decay, decay)?;
    match c.schedule {
        Schedule::Cosine { warmup, .. } | Schedule::OneCycle { warmup } => same("--warmup", a.warmup, warmup)?,
        _ => {
            if let Some(w) = a.warmup {
                bail!("--warmup {w}: the checkpoint's schedule is {}, without warm-up", schedule_name(&c.schedule));
            }
        }
    }
    same("--seed", a.seed, c.seed)?;
    same("--label-smoothing", a.label_smoothing, c.label_smoothing)?;
    same("--validation", a.validation, c.validation)?;
    same("--augment-shift", a.augment_shift, c.augment.max_shift)?;
    same("--erase", a.erase, c.augment.erase)?;
    if a.hflip && !c.augment.hflip {
        bail!("--hflip: the checkpoint's run does not mirror its images; a resumed run keeps its settings");
    }
    if a.decay_norm && !c.decay_norm {
        bail!(
            "--decay-norm: the checkpoint's run does not decay batch norms' scales and shifts; a resumed run keeps \
             its settings"
        );
    }
    Ok(())
}
