//! The training loop: shuffled mini-batches, forward, loss, backward, optimizer step. The loop's
//! whole state is [`TrainState`], so a checkpoint taken between any two batches resumes to exactly
//! the weights of an uninterrupted run.

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Jitter};
use crate::error::{Error, Result};
use crate::model::Sequential;
use crate::rng::Rng;

use super::optim::Optimizer;
use super::recipe::TrainConfig;

// std's clock panics on wasm32-unknown-unknown; web-time reads the browser's there.
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
use std::time::Instant;
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use web_time::Instant;

/// Random streams of one seed (initialisation is `model::sequential::STREAM_INIT`).
const STREAM_SHUFFLE: u64 = 2;
const STREAM_DROPOUT: u64 = 3;
const STREAM_AUGMENT: u64 = 4;

/// Steps a GPU runs between reads of their losses.
const TAKE_EVERY: usize = 50;

/// One finished epoch, as printed and written to `--metrics`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based.
    pub epoch: usize,
    pub lr: f32,
    pub train_loss: f64,
    /// Running accuracy over the epoch's batches (dropout active), as a fraction.
    pub train_accuracy: f64,
    pub test_accuracy: Option<f64>,
    /// Mean cross-entropy on the test set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_loss: Option<f64>,
    /// Accuracy on the validation split held out of the training set (`--validation`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_loss: Option<f64>,
    /// The training pass alone, without evaluation.
    pub seconds: f64,
    pub images_per_second: f64,
}

/// Where training stands: enough to continue bit-for-bit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// Next batch within the current epoch (0 at an epoch boundary).
    pub batch: usize,
    pub dropout_rng: Rng,
    pub loss_sum: f64,
    pub correct: u64,
    pub seen: u64,
    pub seconds: f64,
    pub history: Vec<EpochStats>,
}

/// Where an epoch stands after a batch, for progress displays.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Batches done in this epoch, 1-based.
    pub batch: usize,
    pub batches: usize,
    /// Running mean loss and accuracy over the epoch's batches so far.
    pub loss: f64,
    pub accuracy: f64,
}

pub struct Trainer {
    pub model: Sequential,
    pub optimizer: Optimizer,
    pub config: TrainConfig,
    pub state: TrainState,
    order: Vec<u32>,
    labels: Vec<u32>,
    jitter: Vec<Jitter>,
    /// Batch sizes of the steps whose statistics a GPU still holds.
    pending: Vec<usize>,
}

impl Trainer {
    pub fn new(model: Sequential, config: TrainConfig) -> Self {
        let state = TrainState {
            epoch: 0,
            batch: 0,
            dropout_rng: Rng::stream(config.seed, STREAM_DROPOUT),
            loss_sum: 0.0,
            correct: 0,
            seen: 0,
            seconds: 0.0,
            history: Vec::new(),
        };
        let mut optimizer = Optimizer::new(config.optimizer.clone());
        optimizer.decay_norm = config.decay_norm;
        Trainer {
            optimizer,
            model,
            config,
            state,
            order: Vec::new(),
            labels: Vec::new(),
            jitter: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// Moves the model's parameters and the optimizer's state to `device`.
    pub fn to_device(&mut self, device: &crate::tensor::Device) -> Result<()> {
        self.model.to_device(device)?;
        for t in self.optimizer.slots.iter_mut().flatten() {
            t.move_to(device)?;
        }
        Ok(())
    }

    /// Learning rate of the current epoch (at its first step, for per-step schedules).
    pub fn lr(&self) -> f32 {
        self.config.schedule.lr(self.config.optimizer.lr(), self.state.epoch, self.config.epochs)
    }

    /// Shifts and flips for the current batch, drawn from (seed, epoch, batch) alone, so that
    /// resuming needs no augmentation state.
    fn draw_jitter(&mut self, n: usize, hw: (usize, usize)) {
        let a = &self.config.augment;
        let key = self.config.seed.wrapping_add(((self.state.epoch as u64) << 32) | self.state.batch as u64);
        let mut rng = Rng::stream(key, STREAM_AUGMENT);
        let span = 2 * a.max_shift + 1;
        self.jitter.clear();
        for _ in 0..n {
            let dx = rng.below(span) as i32 - a.max_shift as i32;
            let dy = rng.below(span) as i32 - a.max_shift as i32;
            let flip = a.hflip && rng.below(2) == 1;
            // Drawn only when asked, so recipes without erasing keep their streams.
            let erase = if a.erase > 0.0 && rng.uniform() < a.erase { erase_box(&mut rng, hw) } else { None };
            self.jitter.push(Jitter { dx, dy, flip, erase });
        }
    }

    /// Adds the recorded steps' losses and correct counts to the epoch's; a loss that is not
    /// finite stops training, naming its batch.
    async fn absorb(&mut self, lr: f32) -> Result<()> {
        let stats = self.model.take_stats_async().await?;
        let first = self.state.batch - self.pending.len();
        for (i, ((loss, correct), &n)) in stats.into_iter().zip(&self.pending).enumerate() {
            if !loss.is_finite() {
                return Err(Error::Diverged { epoch: self.state.epoch + 1, batch: first + i + 1, loss, lr });
            }
            self.state.loss_sum += loss as f64 * n as f64;
            self.state.correct += correct as u64;
            self.state.seen += n as u64;
        }
        self.pending.clear();
        Ok(())
    }

    pub fn batches_per_epoch(&self, data: &Dataset) -> usize {
        data.len().div_ceil(self.config.batch_size)
    }

    /// Trains the rest of the current epoch. `on_batch(done, total)` runs after every batch and
    /// returns false to stop early (Ctrl-C): then this returns Ok(None) with the state mid-epoch.
    pub fn run_epoch(
        &mut self,
        data: &Dataset,
        on_batch: &mut (dyn FnMut(usize, usize) -> bool + Send),
    ) -> Result<Option<EpochStats>> {
        self.run_epoch_with(data, &mut |p| on_batch(p.batch, p.batches))
    }

    /// [`Trainer::run_epoch`] with the running loss and accuracy passed to `on_batch`.
    pub fn run_epoch_with(
        &mut self,
        data: &Dataset,
        on_batch: &mut (dyn FnMut(&Progress) -> bool + Send),
    ) -> Result<Option<EpochStats>> {
        let macs = self.model.spec().forward_macs() * self.config.batch_size;
        let device = self.model.device().clone();
        crate::ops::run_batches(&device, macs, || crate::tensor::ready(self.run_epoch_async(data, on_batch)))
    }

    /// [`Trainer::run_epoch_with`] for a browser, where a GPU's losses and parameters are read
    /// back by awaiting, not waiting: the same loop (the blocking calls run it through
    /// [`crate::tensor::ready`]), on the calling thread.
    pub async fn run_epoch_async(
        &mut self,
        data: &Dataset,
        on_batch: &mut (dyn FnMut(&Progress) -> bool + Send),
    ) -> Result<Option<EpochStats>> {
        if data.is_empty() {
            return Err(Error::Data("the training set is empty".into()));
        }
        let bs = self.config.batch_size.max(1);
        let total = self.batches_per_epoch(data);
        // Each epoch's order comes from (seed, epoch) alone, so resuming needs no shuffle state.
        self.order.clear();
        self.order.extend(0..data.len() as u32);
        Rng::stream(self.config.seed.wrapping_add(self.state.epoch as u64), STREAM_SHUFFLE).shuffle(&mut self.order);
        let smoothing = self.config.label_smoothing;
        // Plain SGD needs no optimizer state: the layers apply it as they back-propagate.
        let fused = self.config.optimizer.is_plain_sgd() && self.model.fuses_sgd();
        // On a GPU the steps' losses are read back every few steps, not at each one.
        let deferred = !self.model.device().is_cpu();
        while self.state.batch < total {
            let start = Instant::now();
            let lr = self.config.schedule.lr_at(
                self.config.optimizer.lr(),
                self.state.epoch,
                self.config.epochs,
                self.state.batch,
                total,
            );
            let range = self.state.batch * bs..((self.state.batch + 1) * bs).min(data.len());
            if self.config.augment.is_active() {
                self.draw_jitter(range.len(), (data.height, data.width));
            }
            let idx = &self.order[range];
            if self.config.augment.is_active() {
                data.fill_batch_jittered(idx, &self.jitter, self.model.input_mut(idx.len()), &mut self.labels);
            } else {
                data.fill_batch(idx, self.model.input_mut(idx.len()), &mut self.labels);
            }
            self.model.forward(true, &mut self.state.dropout_rng)?;
            if deferred {
                self.model.backward_recorded(&self.labels, smoothing, fused.then_some(lr))?;
                if fused {
                    self.optimizer.steps += 1;
                } else {
                    self.optimizer.step(&mut self.model, lr)?;
                }
                crate::ops::submit(self.model.device())?;
                self.pending.push(idx.len());
                self.state.batch += 1;
                let stop = self.state.batch == total || self.pending.len() >= TAKE_EVERY;
                if stop {
                    self.absorb(lr).await?;
                }
                self.state.seconds += start.elapsed().as_secs_f64();
                let st = &self.state;
                let seen = st.seen.max(1) as f64;
                let progress = Progress {
                    batch: st.batch,
                    batches: total,
                    loss: st.loss_sum / seen,
                    accuracy: st.correct as f64 / seen,
                };
                if !on_batch(&progress) && self.state.batch < total {
                    let start = Instant::now();
                    self.absorb(lr).await?;
                    self.state.seconds += start.elapsed().as_secs_f64();
                    return Ok(None);
                }
                continue;
            }
            let loss = if fused {
                self.optimizer.steps += 1;
                self.model.backward_sgd(&self.labels, smoothing, lr)?
            } else {
                self.model.backward(&self.labels, smoothing)?
            };
            if !loss.is_finite() {
                return Err(Error::Diverged { epoch: self.state.epoch + 1, batch: self.state.batch + 1, loss, lr });
            }
            if !fused {
                self.optimizer.step(&mut self.model, lr)?;
            }
            let correct = self.model.correct(&self.labels)?;
            let st = &mut self.state;
            st.loss_sum += loss as f64 * idx.len() as f64;
            st.correct += correct as u64;
            st.seen += idx.len() as u64;
            st.batch += 1;
            st.seconds += start.elapsed().as_secs_f64();
            let progress = Progress {
                batch: st.batch,
                batches: total,
                loss: st.loss_sum / st.seen as f64,
                accuracy: st.correct as f64 / st.seen as f64,
            };
            if !on_batch(&progress) && st.batch < total {
                return Ok(None);
            }
        }
        // The epoch's last step's rate (per-step schedules change within an epoch).
        let lr = self.config.schedule.lr_at(
            self.config.optimizer.lr(),
            self.state.epoch,
            self.config.epochs,
            total.saturating_sub(1),
            total,
        );
        if !self.model.params_finite_async().await {
            return Err(Error::Diverged { epoch: self.state.epoch + 1, batch: total, loss: f32::NAN, lr });
        }
        let st = &mut self.state;
        let stats = EpochStats {
            epoch: st.epoch + 1,
            lr,
            train_loss: st.loss_sum / st.seen as f64,
            train_accuracy: st.correct as f64 / st.seen as f64,
            test_accuracy: None,
            test_loss: None,
            validation_accuracy: None,
            validation_loss: None,
            seconds: st.seconds,
            images_per_second: st.seen as f64 / st.seconds.max(1e-9),
        };
        st.epoch += 1;
        st.batch = 0;
        st.loss_sum = 0.0;
        st.correct = 0;
        st.seen = 0;
        st.seconds = 0.0;
        Ok(Some(stats))
    }
}

/// A random-erasing rectangle (top, left, height, width) inside an h x w image, as torchvision's
/// `RandomErasing` draws it: area 2-33% of the image, aspect ratio log-uniform in 0.3-3.3, up to
/// ten tries for one that fits (None when none does).
fn erase_box(rng: &mut Rng, (h, w): (usize, usize)) -> Option<[usize; 4]> {
    let area = (h * w) as f32;
    for _ in 0..10 {
        let target = area * (0.02 + 0.31 * rng.uniform());
        let ratio = ((0.3f32).ln() + ((3.3f32).ln() - (0.3f32).ln()) * rng.uniform()).exp();
        let eh = (target * ratio).sqrt().round() as usize;
        let ew = (target / ratio).sqrt().round() as usize;
        if (1..h).contains(&eh) && (1..w).contains(&ew) {
            return Some([rng.below(h - eh + 1), rng.below(w - ew + 1), eh, ew]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rectangles fit the image, cover 2-33% of it (up to rounding) and vary in shape and place.
    #[test]
    fn erase_boxes_fit_and_cover_what_torchvision_draws() {
        let mut rng = Rng::new(5);
        let boxes: Vec<[usize; 4]> = (0..2000).filter_map(|_| erase_box(&mut rng, (28, 28))).collect();
        assert!(boxes.len() > 1900, "{} of 2000 drew a box", boxes.len());
        let mut total = 0.0;
        for &[top, left, eh, ew] in &boxes {
            assert!(top + eh <= 28 && left + ew <= 28 && eh >= 1 && ew >= 1, "{top} {left} {eh} {ew}");
            let frac = (eh * ew) as f64 / 784.0;
            assert!((0.01..0.40).contains(&frac), "{eh}x{ew}");
            total += frac;
        }
        let mean = total / boxes.len() as f64;
        assert!((0.14..0.20).contains(&mean), "mean area {mean}");
        assert!(boxes.iter().any(|b| b[2] > 2 * b[3]) && boxes.iter().any(|b| b[3] > 2 * b[2]));
        assert!(boxes.iter().any(|b| b[0] == 0) && boxes.iter().any(|b| b[1] + b[3] == 28));
        assert_eq!(erase_box(&mut rng, (1, 1)), None, "no rectangle fits a 1x1 image");
    }
}
