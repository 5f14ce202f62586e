//! Softmax and the fused softmax + cross-entropy loss, with the per-step loss and correct count
//! recorded where the steps run ([`StepStats`]).

use super::cpu;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// probs (n, k) = softmax(logits (n, k)).
pub fn softmax(logits: &Tensor, probs: &mut Tensor) -> Result<()> {
    #[cfg(feature = "gpu")]
    if !logits.is_host() {
        return on_gpu::softmax(logits, probs);
    }
    probs.resize(logits.shape());
    cpu::softmax::softmax(logits.data(), logits.row_len(), probs.data_mut());
    Ok(())
}

/// Mean softmax cross-entropy over the batch; writes ŷ to `probs` and (ŷ - y)/n to `dlogits`.
pub fn softmax_cross_entropy(
    logits: &Tensor,
    labels: &[u32],
    smoothing: f32,
    probs: &mut Tensor,
    dlogits: &mut Tensor,
) -> Result<f32> {
    check_labels(logits, labels)?;
    let k = logits.row_len();
    #[cfg(feature = "gpu")]
    if !logits.is_host() {
        return on_gpu::softmax_cross_entropy(logits, labels, smoothing, probs, dlogits);
    }
    probs.resize(logits.shape());
    dlogits.resize(logits.shape());
    Ok(cpu::softmax::cross_entropy(logits.data(), labels, k, smoothing, probs.data_mut(), dlogits.data_mut()))
}

/// The loss and correct count of training steps, recorded where the steps run and read back in
/// batches ([`StepStats::take`]): on a GPU a read waits for all the work recorded before it, so
/// reading each step's loss would stall the device at every step.
#[derive(Default)]
pub struct StepStats {
    /// Steps recorded and not yet taken: their (loss, correct) on the host.
    host: Vec<(f32, u32)>,
    #[cfg(feature = "gpu")]
    device: Option<on_gpu::DeviceStats>,
}

impl StepStats {
    /// Steps a GPU records before they must be taken.
    pub const CAPACITY: usize = 256;

    /// Steps recorded and not yet taken.
    pub fn pending(&self) -> usize {
        #[cfg(feature = "gpu")]
        if let Some(d) = &self.device {
            return d.recorded;
        }
        self.host.len()
    }

    /// (mean loss, correct predictions) of each step recorded since the last call, in order.
    pub fn take(&mut self) -> Result<Vec<(f32, u32)>> {
        #[cfg(feature = "gpu")]
        if let Some(d) = &mut self.device {
            return d.take();
        }
        Ok(std::mem::take(&mut self.host))
    }

    /// [`StepStats::take`], awaiting a GPU's read-back (in a browser).
    pub async fn take_async(&mut self) -> Result<Vec<(f32, u32)>> {
        #[cfg(feature = "gpu")]
        if let Some(d) = &mut self.device {
            return d.take_async().await;
        }
        Ok(std::mem::take(&mut self.host))
    }
}

/// [`softmax_cross_entropy`] that records the step's mean loss and correct count (first maximum of
/// ŷ equal to the label) in `stats` instead of returning them.
pub fn softmax_cross_entropy_recorded(
    logits: &Tensor,
    labels: &[u32],
    smoothing: f32,
    probs: &mut Tensor,
    dlogits: &mut Tensor,
    stats: &mut StepStats,
) -> Result<()> {
    #[cfg(feature = "gpu")]
    if !logits.is_host() {
        check_labels(logits, labels)?;
        return on_gpu::softmax_cross_entropy_recorded(logits, labels, smoothing, probs, dlogits, stats);
    }
    let loss = softmax_cross_entropy(logits, labels, smoothing, probs, dlogits)?;
    let k = logits.row_len();
    let correct = cpu::softmax::correct(probs.data(), k, labels);
    stats.host.push((loss, correct as u32));
    Ok(())
}

fn check_labels(logits: &Tensor, labels: &[u32]) -> Result<()> {
    let (n, k) = (logits.rows(), logits.row_len());
    if labels.len() != n {
        return Err(Error::shape("softmax_cross_entropy", logits.shape(), &[labels.len()]));
    }
    if let Some(&bad) = labels.iter().find(|&&y| y as usize >= k) {
        return Err(Error::arg("softmax_cross_entropy", format!("label {bad} outside the {k} classes")));
    }
    Ok(())
}

/// The GPU side: each operand's device buffer (every operand on the GPU of the first), outputs
/// shaped there, handed to the kernels of [`crate::ops::gpu`].
#[cfg(feature = "gpu")]
mod on_gpu {
    use super::StepStats;
    use crate::error::{Error, Result};
    use crate::ops::device::{on, output};
    use crate::ops::gpu::{self, GpuBuffer};
    use crate::tensor::Tensor;

    pub fn softmax(logits: &Tensor, probs: &mut Tensor) -> Result<()> {
        let lb = on("softmax", logits)?;
        let pb = output(probs, logits.shape(), &lb)?;
        gpu::softmax(&lb, logits.rows(), logits.row_len(), &pb)
    }

    /// The mean loss is read back: the caller needs it now.
    pub fn softmax_cross_entropy(
        logits: &Tensor,
        labels: &[u32],
        smoothing: f32,
        probs: &mut Tensor,
        dlogits: &mut Tensor,
    ) -> Result<f32> {
        let lb = on("softmax_cross_entropy", logits)?;
        let gpu = lb.gpu().clone();
        let pb = output(probs, logits.shape(), &lb)?;
        let db = output(dlogits, logits.shape(), &lb)?;
        let labels_b = gpu.upload_u32(labels)?;
        let (loss, correct) = (gpu.zeros(1)?, gpu.upload_u32(&[0])?);
        gpu::softmax_cross_entropy(
            &lb,
            &labels_b,
            logits.rows(),
            logits.row_len(),
            smoothing,
            &pb,
            &db,
            &loss,
            &correct,
            0,
        )?;
        Ok(gpu.download(&loss)?[0])
    }

    /// Per-step loss and correct count slots on the device, and the labels' buffer.
    pub struct DeviceStats {
        loss: GpuBuffer,
        correct: GpuBuffer,
        labels: GpuBuffer,
        pub recorded: usize,
    }

    impl DeviceStats {
        pub fn take(&mut self) -> Result<Vec<(f32, u32)>> {
            let n = std::mem::take(&mut self.recorded);
            if n == 0 {
                return Ok(Vec::new());
            }
            let gpu = self.loss.gpu();
            let loss = gpu.download_range(&self.loss, 0..n)?;
            let correct = gpu.download_u32(&self.correct)?;
            Ok(loss.into_iter().zip(correct).collect())
        }

        pub async fn take_async(&mut self) -> Result<Vec<(f32, u32)>> {
            let n = std::mem::take(&mut self.recorded);
            if n == 0 {
                return Ok(Vec::new());
            }
            let gpu = self.loss.gpu();
            let loss = gpu.download_range_async(&self.loss, 0..n).await?;
            let correct = gpu.download_u32_async(&self.correct).await?;
            Ok(loss.into_iter().zip(correct).collect())
        }
    }

    pub fn softmax_cross_entropy_recorded(
        logits: &Tensor,
        labels: &[u32],
        smoothing: f32,
        probs: &mut Tensor,
        dlogits: &mut Tensor,
        stats: &mut StepStats,
    ) -> Result<()> {
        let lb = on("softmax_cross_entropy", logits)?;
        let gpu = lb.gpu().clone();
        let fits = matches!(&stats.device, Some(d) if d.labels.len() >= labels.len() && d.loss.gpu().same(&gpu));
        if !fits {
            if stats.device.as_ref().is_some_and(|d| d.recorded > 0) {
                return Err(Error::arg("softmax_cross_entropy", "recorded steps not taken before the batch grew"));
            }
            stats.device = Some(DeviceStats {
                loss: gpu.zeros(StepStats::CAPACITY)?,
                correct: gpu.upload_u32(&[0; StepStats::CAPACITY])?,
                labels: gpu.upload_u32(&vec![0; labels.len().max(1)])?,
                recorded: 0,
            });
        }
        let d = stats.device.as_mut().expect("made above");
        if d.recorded >= StepStats::CAPACITY {
            return Err(Error::arg("softmax_cross_entropy", "step statistics full: take them first"));
        }
        gpu.write_u32(&d.labels, labels)?;
        let pb = output(probs, logits.shape(), &lb)?;
        let db = output(dlogits, logits.shape(), &lb)?;
        let (rows, k) = (logits.rows(), logits.row_len());
        gpu::softmax_cross_entropy(&lb, &d.labels, rows, k, smoothing, &pb, &db, &d.loss, &d.correct, d.recorded)?;
        d.recorded += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn softmax_cross_entropy_value_and_gradient() {
        // logits [0, ln 3] -> p = [1/4, 3/4]; label 1 -> loss = -ln(3/4).
        let logits = Tensor::from_vec(&[1, 2], vec![0.0, 3f32.ln()]).unwrap();
        let (mut p, mut d) = (Tensor::default(), Tensor::default());
        let loss = softmax_cross_entropy(&logits, &[1], 0.0, &mut p, &mut d).unwrap();
        assert!((loss - -(0.75f32.ln())).abs() < 1e-6);
        assert!(
            (p.data()[0] - 0.25).abs() < 1e-6 && (d.data()[0] - 0.25).abs() < 1e-6 && (d.data()[1] + 0.25).abs() < 1e-6
        );

        let mut rng = Rng::new(10);
        for (n, k, smoothing) in [(1, 3, 0.0), (5, 10, 0.0), (4, 10, 0.1)] {
            let z = Tensor::randn(&[n, k], 2.0, &mut rng);
            let labels: Vec<u32> = (0..n).map(|_| rng.below(k) as u32).collect();
            softmax_cross_entropy(&z, &labels, smoothing, &mut p, &mut d).unwrap();
            for i in 0..z.len() {
                let eps = 1e-3;
                let at = |delta: f32| {
                    let mut zp = z.clone();
                    zp.data_mut()[i] += delta;
                    softmax_cross_entropy(&zp, &labels, smoothing, &mut Tensor::default(), &mut Tensor::default())
                        .unwrap() as f64
                };
                let numeric = (at(eps) - at(-eps)) / (2.0 * eps as f64);
                assert!((d.data()[i] as f64 - numeric).abs() < 1e-3, "{} vs {numeric}", d.data()[i]);
            }
        }
        assert!(softmax_cross_entropy(&logits, &[2], 0.0, &mut p, &mut d).is_err());
    }
}
