//! What a trained model records about how it was made, and the per-epoch line.

use std::time::Instant;

use scratchnet::model_file::TrainingRecord;
use scratchnet::train::{EpochStats, TrainConfig, Trainer};

use crate::cli::percent;

pub use scratchnet::provenance::{machine, now_utc};

/// "1 thread", "2 threads".
pub fn plural(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

pub fn epoch_line(s: &EpochStats, total: usize) -> String {
    let test = match (s.test_accuracy, s.test_loss) {
        (Some(a), Some(l)) => format!("  test {} loss {l:.4}", percent(a)),
        (Some(a), None) => format!("  test {}", percent(a)),
        _ => "  test -".to_string(),
    };
    let val = match (s.validation_accuracy, s.validation_loss) {
        (Some(a), Some(l)) => format!("  val {} loss {l:.4}", percent(a)),
        (Some(a), None) => format!("  val {}", percent(a)),
        _ => String::new(),
    };
    format!(
        "epoch {:>3}/{total}  lr {:.6}  loss {:.4}  train {}{val}{test}  {:.1}s  {:.0} img/s",
        s.epoch,
        s.lr,
        s.train_loss,
        percent(s.train_accuracy),
        s.seconds,
        s.images_per_second
    )
}

/// What a model or checkpoint file records about its training so far.
pub struct Record {
    pub preset: Option<String>,
    pub command: String,
    pub train_examples: usize,
    pub started: Instant,
    /// Wall time of earlier runs of the same training (before a resume).
    pub prior_seconds: f64,
    pub dataset: String,
}

impl Record {
    pub fn at(&self, trainer: &Trainer) -> TrainingRecord {
        let last = trainer.state.history.last();
        TrainingRecord {
            preset: self.preset.clone(),
            command: self.command.clone(),
            config: trainer.config.clone(),
            epochs: trainer.state.epoch,
            dataset: self.dataset.clone(),
            train_examples: self.train_examples,
            final_train_accuracy: last.map(|s| s.train_accuracy),
            final_test_accuracy: last.and_then(|s| s.test_accuracy),
            final_validation_accuracy: last.and_then(|s| s.validation_accuracy),
            wall_seconds: self.prior_seconds + self.started.elapsed().as_secs_f64(),
            training_seconds: Some(trainer.state.history.iter().map(|s| s.seconds).sum()),
            threads: rayon::current_num_threads(),
            machine: machine(),
            date: now_utc(),
        }
    }
}

/// The first line a run appends to `--metrics`: where a run starts, and with what settings.
pub fn metrics_header(record: &Record, name: &str, config: &TrainConfig, first_epoch: usize) -> serde_json::Value {
    serde_json::json!({
        "run": {
            "name": name,
            "preset": record.preset,
            "command": record.command,
            "date": now_utc(),
            "dataset": record.dataset,
            "train_examples": record.train_examples,
            "config": config,
            "resumed_after_epoch": (first_epoch > 0).then_some(first_epoch),
        }
    })
}
