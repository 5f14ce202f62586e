//! `scratchnet train`: flags ([`args`]), resuming ([`resume`]), provenance ([`record`]), and the
//! run itself here.

pub(crate) mod args;
pub(crate) mod record;
mod resume;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use scratchnet::checkpoint::{self, DataIdentity, RunSettings};
use scratchnet::data::{Dataset, DatasetKind, discover};
use scratchnet::model::Sequential;
use scratchnet::model_file::{self, InputNorm, ModelInfo};
use scratchnet::train::{EpochStats, EvalOptions, PRESET_NAMES, Trainer, evaluate};

pub use args::TrainArgs;
pub use record::plural;
use record::{Record, epoch_line, metrics_header};

use crate::cli::out::{self, errln, outln};

/// Training stopped by Ctrl-C; the message says where the checkpoint is.
#[derive(Debug)]
pub struct Interrupted(pub String);
impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Interrupted {}

pub fn checkpoint_path(out: &Path) -> PathBuf {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or("model".into());
    let stem = stem.strip_suffix(".ckpt").unwrap_or(&stem).to_string();
    out.with_file_name(format!("{stem}.ckpt.safetensors"))
}

fn save_checkpoint(trainer: &Trainer, info: &ModelInfo, record: &Record, run: &RunSettings, path: &Path) -> Result<()> {
    model_file::write_atomic(path, &checkpoint_bytes(trainer, info, record, run)?)?;
    Ok(())
}

fn checkpoint_bytes(trainer: &Trainer, info: &ModelInfo, record: &Record, run: &RunSettings) -> Result<Vec<u8>> {
    let info = ModelInfo { training: Some(record.at(trainer)), ..info.clone() };
    Ok(checkpoint::to_bytes_with_run(trainer, &info, run)?)
}

/// A spinner on stderr while the epoch's evaluations run (only where a progress bar is shown).
fn spinner(show: bool, msg: String) -> Option<indicatif::ProgressBar> {
    show.then(|| {
        let s = indicatif::ProgressBar::new_spinner();
        s.set_message(msg);
        s.enable_steady_tick(Duration::from_millis(120));
        s
    })
}

/// The test and validation accuracy and loss of the model after an epoch, predicting as `tta` says.
fn evaluate_into(
    stats: &mut EpochStats,
    trainer: &mut Trainer,
    test: Option<&Dataset>,
    validation: Option<&Dataset>,
    tta: scratchnet::model::Tta,
) -> Result<()> {
    if let Some(test) = test {
        let ev = evaluate(&mut trainer.model, test, &EvalOptions { tta, ..EvalOptions::default() })?;
        stats.test_accuracy = Some(ev.accuracy);
        stats.test_loss = Some(ev.loss);
    }
    if let Some(val) = validation {
        let ev = evaluate(&mut trainer.model, val, &EvalOptions { tta, ..EvalOptions::default() })?;
        stats.validation_accuracy = Some(ev.accuracy);
        stats.validation_loss = Some(ev.loss);
    }
    Ok(())
}

/// The trainer and everything the run records, new or from a checkpoint.
struct Setup {
    trainer: Trainer,
    info: ModelInfo,
    run: RunSettings,
    out: PathBuf,
}

fn setup(a: &TrainArgs) -> Result<Setup> {
    if let Some(ckpt) = &a.resume {
        let r = resume::open(ckpt, a)?;
        let mut run = r.run;
        if !r.recorded {
            run.limit = a.limit;
        }
        run.checkpoint_every = a.checkpoint_every.or(run.checkpoint_every);
        let out = a.out.clone().unwrap_or_else(|| resume::default_out(ckpt));
        errln!("resuming {} at epoch {} batch {}", ckpt.display(), r.trainer.state.epoch + 1, r.trainer.state.batch);
        return Ok(Setup { trainer: r.trainer, info: r.info, run, out });
    }
    let Some(m) = &a.model else {
        bail!("--model is required (a preset: {}; or a spec .json)", PRESET_NAMES.join(", "))
    };
    let choice = args::resolve_model(m)?;
    let config = args::apply_overrides(choice.config, a)?;
    args::check_decay_norm(a, &choice.spec)?;
    let model = Sequential::new(choice.spec.clone(), config.seed)?;
    let info = ModelInfo {
        spec: choice.spec,
        classes: vec![],
        dataset: String::new(),
        input: InputNorm::default(),
        training: None,
        tta: Default::default(),
    };
    let run = RunSettings {
        name: choice.name.clone(),
        preset: choice.preset,
        dataset: a.data.dataset.clone().unwrap_or_else(|| "fashion-mnist".to_string()),
        data_dir: a.data.data_dir.as_ref().map(|d| d.display().to_string()),
        data: None,
        limit: a.limit,
        checkpoint_every: a.checkpoint_every,
    };
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("{}.safetensors", choice.name)));
    Ok(Setup { trainer: Trainer::new(model, config), info, run, out })
}

/// A mirrored digit is another shape (or none): on MNIST a preset's left-right flips are turned off,
/// saying so, and asking for them (`--hflip`, `--tta hflip`) is warned about.
fn mirrors_for_digits(trainer: &mut Trainer, info: &mut ModelInfo, a: &TrainArgs, run: &RunSettings) {
    let fresh = a.resume.is_none();
    if a.hflip {
        errln!("warning: --hflip on digits: a mirrored digit is not the same digit, and accuracy drops");
    } else if fresh && trainer.config.augment.hflip {
        trainer.config.augment.hflip = false;
        errln!(
            "{}: left-right flips are off on digits (a mirrored digit is not the same digit); --hflip turns them on",
            run.name
        );
    }
    if a.tta.is_some() && info.tta != scratchnet::model::Tta::None {
        errln!("warning: --tta {} on digits: a mirrored digit is not the same digit", info.tta.name());
    }
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
    args::check_ranges(&a)?;
    let Setup { mut trainer, mut info, mut run, out } = setup(&a)?;
    super::ensure_batch_fits(trainer.model.spec(), trainer.config.batch_size, true)?;
    let device = super::device::pick(a.device.as_deref())?;

    // Every output is checked before any work, so a mistyped path costs nothing.
    let ckpt_path = checkpoint_path(&out);
    out::check_writable("--out", &out)?;
    out::check_writable("the checkpoint", &ckpt_path)?;
    if let Some(p) = &a.metrics {
        out::check_writable("--metrics", p)?;
    }
    if let Some(p) = &a.plot {
        out::check_writable("--plot", p)?;
    }

    let resumed_tta = info.tta;
    info.tta = super::tta_or(a.tta.as_deref(), info.tta);
    if a.data.dataset.is_some() {
        run.data_dir = a.data.data_dir.as_ref().map(|d| d.display().to_string());
        run.dataset = a.data.dataset.clone().unwrap_or_default();
    } else if let Some(d) = &a.data.data_dir {
        run.data_dir = Some(d.display().to_string());
    }
    let splits = discover::load(&run.dataset, run.data_dir.as_deref().map(Path::new))?;
    let mut train: Dataset = splits.train()?.clone();
    let identity = DataIdentity::of(splits.kind, &train);
    if let Some(recorded) = &run.data
        && *recorded != identity
    {
        bail!(
            "--dataset {}: {} holds {identity}, but the checkpoint's run trained on {recorded}; a resumed run \
             keeps its data",
            run.dataset,
            splits.origin
        );
    }
    run.data = Some(identity);
    if splits.kind == DatasetKind::Mnist {
        mirrors_for_digits(&mut trainer, &mut info, &a, &run);
    }
    let mut validation = None;
    if trainer.config.validation > 0 {
        let n = trainer.config.validation;
        anyhow::ensure!(
            n < train.len(),
            "--validation must be between 1 and {} (the training set)",
            train.len().saturating_sub(1)
        );
        let (rest, val) = train.split_validation(n, trainer.config.seed);
        train = rest;
        validation = Some(val);
    }
    if let Some(n) = run.limit {
        train = train.take(n);
    }
    let test = splits.test.as_ref();
    super::ensure_fits(trainer.model.spec(), &train, &splits.origin)?;
    let has_batch_norm = trainer.model.spec().layers.iter().any(|l| !l.buffer_shapes().is_empty());
    let bs = trainer.config.batch_size;
    // Refused before any work: a batch of one image would stop the run at its last batch.
    anyhow::ensure!(
        !has_batch_norm || (bs > 1 && train.len() % bs != 1),
        "batch norm needs at least 2 images in every training batch; with {} training images and --batch-size {bs} \
         {}: choose another --batch-size",
        train.len(),
        if bs == 1 { "every batch has 1".to_string() } else { "the last batch has 1".to_string() }
    );
    info.classes = train.classes.clone();
    info.dataset = splits.kind.name().to_string();

    let total_epochs = trainer.config.epochs;
    let show_bar = !a.quiet && std::io::stderr().is_terminal();
    let record = Record {
        preset: run.preset.clone(),
        // The program as users type it, not the path it happened to run from.
        command: std::iter::once("scratchnet".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
        train_examples: train.len(),
        started,
        prior_seconds: info.training.as_ref().map_or(0.0, |r| r.wall_seconds),
        dataset: info.dataset.clone(),
    };
    trainer.to_device(&device)?;
    let first_epoch = trainer.state.epoch;
    // The epoch of the checkpoint this run last wrote, for the message if a later epoch fails.
    let mut checkpointed: Option<usize> = None;
    // On a GPU, the run as of the last epoch this run finished, in host memory: a GPU that fails
    // (a lost device, no memory) may not give its values back, so its checkpoint is written from here.
    let on_gpu = !device.is_cpu();
    let mut snapshot: Option<(usize, Vec<u8>)> = None;
    let mut metrics = match &a.metrics {
        Some(p) => {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening --metrics {}", p.display()))?;
            writeln!(f, "{}", metrics_header(&record, &run.name, &trainer.config, first_epoch))
                .with_context(|| format!("writing --metrics {}", p.display()))?;
            Some((f, p))
        }
        None => None,
    };
    let compute = match device {
        scratchnet::tensor::Device::Cpu => plural(rayon::current_num_threads(), "thread"),
        scratchnet::tensor::Device::Gpu(_) => "on the GPU".to_string(),
    };
    errln!(
        "training {} ({} parameters) on {} ({} images), {compute}",
        run.name,
        trainer.model.spec().num_params(),
        splits.origin,
        train.len(),
    );

    while trainer.state.epoch < total_epochs {
        let epoch_msg = format!("{}/{total_epochs}", trainer.state.epoch + 1);
        let bar = show_bar.then(|| {
            let b = indicatif::ProgressBar::new(trainer.batches_per_epoch(&train) as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} batches{msg}, {elapsed} elapsed, eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b.set_prefix(epoch_msg.clone());
            b.set_position(trainer.state.batch as u64);
            b
        });
        let outcome = trainer.run_epoch_with(&train, &mut |p| {
            if let Some(b) = &bar {
                b.set_position(p.batch as u64);
                // A few hundred updates per epoch are plenty for the eye.
                if p.batch % p.batches.div_ceil(200).max(1) == 0 || p.batch == p.batches {
                    b.set_message(format!(", loss {:.4} acc {}", p.loss, super::percent(p.accuracy)));
                }
            }
            !stop.load(Ordering::SeqCst)
        });
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        let Some(mut stats) = (match outcome {
            Ok(s) => s,
            Err(e) => {
                let kept = match (&e, &snapshot) {
                    (scratchnet::Error::Gpu(_), Some((n, bytes))) => {
                        match model_file::write_atomic(&ckpt_path, bytes) {
                            Ok(()) => format!(
                                "; the run after epoch {n} is written to {} (continue with: scratchnet train --resume {})",
                                ckpt_path.display(),
                                ckpt_path.display()
                            ),
                            Err(w) => format!("; writing the last epoch's checkpoint failed too: {w}"),
                        }
                    }
                    _ => match checkpointed {
                        Some(n) => format!("; {} holds the run after epoch {n}", ckpt_path.display()),
                        None => String::new(),
                    },
                };
                return Err(anyhow::Error::new(e).context(format!("no model was written{kept}")));
            }
        }) else {
            save_checkpoint(&trainer, &info, &record, &run, &ckpt_path)?;
            let at = format!("at epoch {} batch {}", trainer.state.epoch + 1, trainer.state.batch);
            return Err(interrupted(&trainer, &run, a.plot.as_deref(), &at, &ckpt_path));
        };
        let what = if validation.is_some() { "the test and validation sets" } else { "the test set" };
        let spin = spinner(
            show_bar && (test.is_some() || validation.is_some()),
            format!("epoch {epoch_msg}: evaluating on {what}"),
        );
        evaluate_into(&mut stats, &mut trainer, test, validation.as_ref(), info.tta)?;
        if let Some(s) = spin {
            s.finish_and_clear();
        }
        outln!("{}", epoch_line(&stats, total_epochs));
        if let Some((f, p)) = &mut metrics {
            writeln!(f, "{}", serde_json::to_string(&stats)?)
                .with_context(|| format!("writing --metrics {}", p.display()))?;
        }
        trainer.state.history.push(stats);
        if on_gpu {
            snapshot = Some((trainer.state.epoch, checkpoint_bytes(&trainer, &info, &record, &run)?));
        }
        if run.checkpoint_every.is_some_and(|n| n > 0 && trainer.state.epoch % n == 0) {
            save_checkpoint(&trainer, &info, &record, &run, &ckpt_path)?;
            checkpointed = Some(trainer.state.epoch);
        }
        if stop.load(Ordering::SeqCst) && trainer.state.epoch < total_epochs {
            save_checkpoint(&trainer, &info, &record, &run, &ckpt_path)?;
            let at = format!("after epoch {}", trainer.state.epoch);
            return Err(interrupted(&trainer, &run, a.plot.as_deref(), &at, &ckpt_path));
        }
    }

    // A finished checkpoint saved with another --tta: its last evaluation no longer describes the
    // model as it will predict, so measure again.
    if trainer.state.epoch == first_epoch
        && info.tta != resumed_tta
        && let Some(mut last) = trainer.state.history.pop()
    {
        evaluate_into(&mut last, &mut trainer, test, validation.as_ref(), info.tta)?;
        errln!("evaluated with --tta {}: {}", info.tta.name(), epoch_line(&last, total_epochs));
        trainer.state.history.push(last);
    }
    info.training = Some(record.at(&trainer));
    let bytes = model_file::to_bytes(&trainer.model, &info, &[], None)?;
    model_file::write_atomic(&out, &bytes)?;
    if let Some(p) = &a.plot {
        super::plot::curves(&trainer.state.history, &run.name, p)?;
        errln!("curves written to {}", p.display());
    }
    errln!("model written to {}", out.display());
    Ok(())
}

/// The error that ends an interrupted run (`at` says where), after drawing the curves of the
/// epochs done.
fn interrupted(trainer: &Trainer, run: &RunSettings, plot: Option<&Path>, at: &str, ckpt: &Path) -> anyhow::Error {
    if let Some(p) = plot
        && !trainer.state.history.is_empty()
    {
        match super::plot::curves(&trainer.state.history, &run.name, p) {
            Ok(()) => errln!("curves of the epochs done written to {}", p.display()),
            Err(e) => errln!("warning: {e:#}"),
        }
    }
    let ckpt = ckpt.display();
    Interrupted(format!(
        "interrupted {at}; checkpoint written to {ckpt} (continue with: scratchnet train --resume {ckpt})"
    ))
    .into()
}
