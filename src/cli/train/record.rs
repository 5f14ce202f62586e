//! What a trained model records about how it was made, and the per-epoch line.

use std::time::Instant;

use scratchnet::model_file::TrainingRecord;
use scratchnet::train::{EpochStats, TrainConfig, Trainer};

use crate::cli::percent;

pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{cpu}, {}", plural(cores, "core"))
}

/// "1 thread", "2 threads".
pub fn plural(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
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
