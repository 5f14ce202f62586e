//! Checkpoints: a model file plus the optimizer state (tensors `optimizer.<slot>.<param>`), the
//! trainer's [`TrainState`] and config, and the [`RunSettings`] beyond the recipe (metadata
//! `checkpoint`): enough to resume bit-for-bit, and to tell a resumed run's flags from the run's own.

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, DatasetKind};
use crate::error::{Error, Result};
use crate::model_file::{self, Loaded, ModelInfo};
use crate::tensor::Tensor;
use crate::train::{Optimizer, TrainConfig, TrainState, Trainer};

#[derive(Serialize, Deserialize)]
struct CheckpointMeta {
    config: TrainConfig,
    state: TrainState,
    optimizer_steps: u64,
    /// Absent in checkpoints written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run: Option<RunSettings>,
}

/// What determines a run besides its recipe ([`TrainConfig`]) and network: recorded in every
/// checkpoint, so that `train --resume` alone continues the same run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// The run's name: its preset's, or the spec file's stem.
    pub name: String,
    pub preset: Option<String>,
    /// `--dataset` as given (a name or a folder), and `--data-dir`.
    pub dataset: String,
    pub data_dir: Option<String>,
    /// The training set, before the validation split and the limit.
    pub data: Option<DataIdentity>,
    /// Trains on the first `limit` training images.
    pub limit: Option<usize>,
    pub checkpoint_every: Option<usize>,
}

/// Which training images a run used: enough to notice another data set, or other files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataIdentity {
    /// `mnist` or `fashion-mnist`.
    pub kind: String,
    pub images: usize,
    pub height: usize,
    pub width: usize,
    /// FNV-1a (64 bits, hex) of the labels, then the pixels.
    pub fingerprint: String,
}

impl DataIdentity {
    pub fn of(kind: DatasetKind, data: &Dataset) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in data.labels.iter().chain(&data.images) {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        DataIdentity {
            kind: kind.name().to_string(),
            images: data.len(),
            height: data.height,
            width: data.width,
            fingerprint: format!("{h:016x}"),
        }
    }
}

impl std::fmt::Display for DataIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} training images of {}x{}, fingerprint {})",
            self.kind, self.images, self.height, self.width, self.fingerprint
        )
    }
}

/// A checkpoint file, decoded.
pub struct Checkpoint {
    pub trainer: Trainer,
    pub info: ModelInfo,
    /// None in checkpoints written before run settings were recorded.
    pub run: Option<RunSettings>,
}

fn slot_tensor_name(slot: &str, param: &str) -> String {
    format!("optimizer.{slot}.{param}")
}

/// A checkpoint without [`RunSettings`]; see [`to_bytes_with_run`].
pub fn to_bytes(trainer: &Trainer, info: &ModelInfo) -> Result<Vec<u8>> {
    encode(trainer, info, None)
}

pub fn to_bytes_with_run(trainer: &Trainer, info: &ModelInfo, run: &RunSettings) -> Result<Vec<u8>> {
    encode(trainer, info, Some(run.clone()))
}

fn encode(trainer: &Trainer, info: &ModelInfo, run: Option<RunSettings>) -> Result<Vec<u8>> {
    let names: Vec<String> = trainer.model.named_params().into_iter().map(|(n, _)| n).collect();
    let opt = &trainer.optimizer;
    let mut extra: Vec<(String, &Tensor)> = Vec::new();
    for (slot_name, slot) in opt.config.slot_names().iter().zip(&opt.slots) {
        for (param, t) in names.iter().zip(slot) {
            extra.push((slot_tensor_name(slot_name, param), t));
        }
    }
    let meta = CheckpointMeta {
        config: trainer.config.clone(),
        state: trainer.state.clone(),
        optimizer_steps: opt.steps,
        run,
    };
    let meta = serde_json::to_string(&meta).expect("plain data serialises");
    model_file::to_bytes(&trainer.model, info, &extra, Some(meta))
}

/// Rebuilds the trainer from a loaded checkpoint file.
pub fn restore(loaded: Loaded, source: &str) -> Result<(Trainer, ModelInfo)> {
    decode(loaded, source).map(|c| (c.trainer, c.info))
}

/// Rebuilds the trainer and the run's settings from a loaded checkpoint file.
pub fn decode(loaded: Loaded, source: &str) -> Result<Checkpoint> {
    let Loaded { model, info, mut extra_tensors, checkpoint, .. } = loaded;
    let text = checkpoint.ok_or_else(|| {
        Error::model(source, "is a model file, not a checkpoint (no training state); use it with evaluate/predict")
    })?;
    let meta: CheckpointMeta = serde_json::from_str(&text)
        .map_err(|e| Error::model(source, format!("checkpoint metadata is invalid: {e}")))?;
    let names: Vec<(String, Vec<usize>)> =
        model.named_params().into_iter().map(|(n, t)| (n, t.shape().to_vec())).collect();
    let mut optimizer = Optimizer::new(meta.config.optimizer.clone());
    optimizer.decay_norm = meta.config.decay_norm;
    optimizer.steps = meta.optimizer_steps;
    if optimizer.steps > 0 {
        for (slot_name, slot) in meta.config.optimizer.slot_names().iter().zip(&mut optimizer.slots) {
            for (param, shape) in &names {
                let key = slot_tensor_name(slot_name, param);
                let t = extra_tensors
                    .remove(&key)
                    .ok_or_else(|| Error::model(source, format!("tensor {key} is missing")))?;
                if t.shape() != shape.as_slice() {
                    return Err(Error::model(
                        source,
                        format!("tensor {key}: expected shape {shape:?}, found {:?}", t.shape()),
                    ));
                }
                slot.push(t);
            }
        }
    }
    let mut trainer = Trainer::new(model, meta.config);
    trainer.optimizer = optimizer;
    trainer.state = meta.state;
    Ok(Checkpoint { trainer, info, run: meta.run })
}
