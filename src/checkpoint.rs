//! Checkpoints: a model file plus the optimizer state (tensors `optimizer.<slot>.<param>`) and the
//! trainer's [`TrainState`] and config (metadata `checkpoint`), enough to resume bit-for-bit.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::TrainConfig;
use crate::model_file::{self, Loaded, ModelInfo};
use crate::optim::Optimizer;
use crate::tensor::Tensor;
use crate::train::{TrainState, Trainer};

#[derive(Serialize, Deserialize)]
struct CheckpointMeta {
    config: TrainConfig,
    state: TrainState,
    optimizer_steps: u64,
}

fn slot_tensor_name(slot: &str, param: &str) -> String {
    format!("optimizer.{slot}.{param}")
}

pub fn to_bytes(trainer: &Trainer, info: &ModelInfo) -> Result<Vec<u8>> {
    let names: Vec<String> = trainer.model.named_params().into_iter().map(|(n, _)| n).collect();
    let opt = &trainer.optimizer;
    let mut extra: Vec<(String, &Tensor)> = Vec::new();
    for (slot_name, slot) in opt.config.slot_names().iter().zip(&opt.slots) {
        for (param, t) in names.iter().zip(slot) {
            extra.push((slot_tensor_name(slot_name, param), t));
        }
    }
    let meta =
        CheckpointMeta { config: trainer.config.clone(), state: trainer.state.clone(), optimizer_steps: opt.steps };
    let meta = serde_json::to_string(&meta).expect("plain data serialises");
    model_file::to_bytes(&trainer.model, info, &extra, Some(meta))
}

/// Rebuilds the trainer from a loaded checkpoint file.
pub fn restore(loaded: Loaded, source: &str) -> Result<(Trainer, ModelInfo)> {
    let Loaded { model, info, mut extra_tensors, checkpoint } = loaded;
    let text = checkpoint.ok_or_else(|| {
        Error::model(source, "is a model file, not a checkpoint (no training state); use it with evaluate/predict")
    })?;
    let meta: CheckpointMeta = serde_json::from_str(&text)
        .map_err(|e| Error::model(source, format!("checkpoint metadata is invalid: {e}")))?;
    let names: Vec<(String, Vec<usize>)> =
        model.named_params().into_iter().map(|(n, t)| (n, t.shape().to_vec())).collect();
    let mut optimizer = Optimizer::new(meta.config.optimizer.clone());
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
    Ok((trainer, info))
}
