//! Evaluation: accuracy, mean loss and a confusion matrix of a model on a dataset, in batches.

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, InputNorm};
use crate::error::Result;
use crate::model::{Sequential, Tta};
use crate::ops::argmax_rows;
use crate::rng::Rng;

/// Accuracy, mean loss and confusion counts of a model on a dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub accuracy: f64,
    pub loss: f64,
    /// Accuracy of each true class.
    pub per_class: Vec<f64>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
}

/// Batch size for evaluation. Larger batches are no faster here (convolutions run image by image)
/// and every activation buffer grows with the batch: 256 cost the CNN ~230 MB more than 64.
pub const EVAL_BATCH: usize = 64;

/// How [`evaluate`] runs: batch size, test-time views, and the pixels-to-inputs normalisation.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalOptions {
    /// Images per forward pass ([`EVAL_BATCH`] by default).
    pub batch_size: usize,
    /// Views whose predictions are averaged; with views the loss is the mean cross-entropy of the
    /// averaged probabilities.
    pub tta: Tta,
    /// Pixel·scale + offset: a model file's normalisation (imported models may have another than
    /// the default x/255).
    pub input: InputNorm,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions { batch_size: EVAL_BATCH, tta: Tta::None, input: InputNorm::default() }
    }
}

/// Evaluates `model` on `data` in evaluation mode (no dropout):
/// `evaluate(&mut model, &test, &EvalOptions::default())`.
pub fn evaluate(model: &mut Sequential, data: &Dataset, options: &EvalOptions) -> Result<Evaluation> {
    let EvalOptions { batch_size, tta, ref input } = *options;
    let batch_size = batch_size.max(1);
    let macs = model.spec().forward_macs() * batch_size;
    let device = model.device().clone();
    crate::ops::run_batches(&device, macs, || crate::tensor::ready(evaluate_core(model, data, batch_size, tta, input)))
}

/// [`evaluate`] for a browser, where a GPU's results are read back by awaiting, not waiting: the
/// same code (the blocking [`evaluate`] runs it through [`crate::tensor::ready`]), on the
/// calling thread.
pub async fn evaluate_async(model: &mut Sequential, data: &Dataset, options: &EvalOptions) -> Result<Evaluation> {
    let EvalOptions { batch_size, tta, ref input } = *options;
    evaluate_core(model, data, batch_size.max(1), tta, input).await
}

async fn evaluate_core(
    model: &mut Sequential,
    data: &Dataset,
    batch_size: usize,
    tta: Tta,
    input: &InputNorm,
) -> Result<Evaluation> {
    let k = model.num_classes();
    let mut confusion = vec![vec![0u64; k]; k];
    let mut labels = Vec::new();
    let mut loss_sum = 0.0;
    let idx: Vec<u32> = (0..data.len() as u32).collect();
    let mut rng = Rng::new(0);
    // On a GPU the batches' losses stay on the device until a few hundred are recorded: one read
    // per batch (its probabilities) instead of two.
    let deferred = !model.device().is_cpu();
    let mut sizes = Vec::new();
    async fn absorb(model: &mut Sequential, sizes: &mut Vec<usize>) -> Result<f64> {
        let stats = model.take_stats_async().await?;
        let sum = stats.iter().zip(sizes.iter()).map(|((loss, _), &n)| *loss as f64 * n as f64).sum();
        sizes.clear();
        Ok(sum)
    }
    for chunk in idx.chunks(batch_size) {
        data.fill_batch_normalised(chunk, model.input_mut(chunk.len()), &mut labels, input.scale, input.offset);
        let probs = if tta == Tta::None {
            model.forward(false, &mut rng)?;
            if deferred {
                model.record_loss(&labels)?;
                sizes.push(chunk.len());
                if sizes.len() >= crate::ops::StepStats::CAPACITY / 2 {
                    loss_sum += absorb(model, &mut sizes).await?;
                }
            } else {
                loss_sum += model.loss(&labels)? as f64 * chunk.len() as f64;
            }
            model.probs().to_vec_async().await?
        } else {
            let probs = model.infer(tta)?.to_vec_async().await?;
            // Probabilities, not logits, are what was averaged: clamp before the log.
            loss_sum -=
                probs.chunks(k).zip(&labels).map(|(row, &y)| (row[y as usize].max(1e-30) as f64).ln()).sum::<f64>();
            probs
        };
        for (p, &y) in argmax_rows(&probs, k).zip(&labels) {
            confusion[y as usize][p] += 1;
        }
    }
    if !sizes.is_empty() {
        loss_sum += absorb(model, &mut sizes).await?;
    }
    let n = data.len().max(1) as f64;
    let correct: u64 = (0..k).map(|i| confusion[i][i]).sum();
    let per_class =
        confusion.iter().enumerate().map(|(i, row)| row[i] as f64 / row.iter().sum::<u64>().max(1) as f64).collect();
    Ok(Evaluation { accuracy: correct as f64 / n, loss: loss_sum / n, per_class, confusion })
}
