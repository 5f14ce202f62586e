//! A stack of layers built from a [`ModelSpec`], owning every activation and gradient buffer so a
//! training step allocates nothing once the batch size is steady.

use super::spec::{LayerSpec, ModelSpec};
use super::tta::Tta;
use crate::error::{Error, Result};
use crate::layers::{
    AvgPool2d, BatchNorm, Conv2d, Ctx, Dense, Dropout, Flatten, GlobalAvgPool, Layer, LeakyRelu, MaxPool2d, ParamMut,
    PassThrough,
};
use crate::ops::{self, Conv2dGeom, Pool2dGeom};
use crate::rng::Rng;
use crate::tensor::{Device, Tensor};

/// Random stream used for weight initialisation (see [`Rng::stream`]).
pub const STREAM_INIT: u64 = 1;

pub struct Sequential {
    spec: ModelSpec,
    layers: Vec<Box<dyn Layer>>,
    /// acts[0] is the input batch; acts[i + 1] the output of layer i (acts[L]: the logits).
    acts: Vec<Tensor>,
    /// grads[i] = dL/dacts[i].
    grads: Vec<Tensor>,
    probs: Tensor,
    /// The first view's probabilities while test-time augmentation runs the second.
    view_probs: Tensor,
    /// fused[i]: layer i applies the leaky ReLU of layer i + 1 itself (writing acts[i + 2]; layer
    /// i + 1 is skipped and acts[i + 1], grads[i + 1] stay empty).
    fused: Vec<bool>,
    /// pooled[i]: in evaluation, layer i also applies the max-pool that follows it (and its fused
    /// activation), writing that layer's output; the pooling layer is skipped.
    pooled: Vec<bool>,
    /// The first layer with parameters: back-propagation stops there, since nothing before it
    /// learns (the MLP's first dense layer follows a flatten, and its input gradient was a quarter
    /// of a training step's multiply-adds).
    first_learner: usize,
    /// Where parameters and buffers live.
    device: Device,
    /// The input batch in host memory when the model is on a GPU, and whether forward has yet to
    /// upload it (it was handed out by [`Sequential::input_mut`] since).
    host_input: Tensor,
    input_pending: bool,
    /// A training pass moved the input batch into acts[1] through a first-layer flatten (the
    /// MLP's: a copy of the batch was 3% of its step); acts[0] holds acts[1]'s old buffer until
    /// [`Sequential::restore_input`] swaps them back.
    input_moved: bool,
    stats: ops::StepStats,
}

impl Sequential {
    /// A freshly initialised network (He-normal weights, zero biases) from `seed`.
    pub fn new(spec: ModelSpec, seed: u64) -> Result<Self> {
        let shapes = spec.shapes()?;
        let mut rng = Rng::stream(seed, STREAM_INIT);
        let layers = spec
            .layers
            .iter()
            .zip(&shapes)
            .map(|(l, inp)| -> Box<dyn Layer> {
                match *l {
                    LayerSpec::Conv2d { in_channels, out_channels, kernel_size, stride, padding } => {
                        Box::new(Conv2d::new(
                            Conv2dGeom {
                                c: in_channels,
                                h: inp[1],
                                w: inp[2],
                                f: out_channels,
                                k: kernel_size,
                                stride,
                                pad: padding,
                            },
                            &mut rng,
                        ))
                    }
                    LayerSpec::MaxPool2d { kernel_size, stride } => Box::new(MaxPool2d::new(Pool2dGeom {
                        h: inp[1],
                        w: inp[2],
                        k: kernel_size,
                        stride: stride.unwrap_or(kernel_size),
                    })),
                    LayerSpec::Dropout { p } => Box::new(Dropout::new(p)),
                    LayerSpec::Flatten => Box::new(Flatten),
                    LayerSpec::Linear { in_features, out_features } => {
                        Box::new(Dense::new(in_features, out_features, &mut rng))
                    }
                    LayerSpec::LeakyRelu { negative_slope } => Box::new(LeakyRelu { slope: negative_slope }),
                    LayerSpec::Relu => Box::new(LeakyRelu { slope: 0.0 }),
                    LayerSpec::BatchNorm2d { num_features, eps, momentum }
                    | LayerSpec::BatchNorm1d { num_features, eps, momentum } => {
                        Box::new(BatchNorm::new(num_features, eps, momentum))
                    }
                    LayerSpec::AvgPool2d { kernel_size, stride } => Box::new(AvgPool2d::new(Pool2dGeom {
                        h: inp[1],
                        w: inp[2],
                        k: kernel_size,
                        stride: stride.unwrap_or(kernel_size),
                    })),
                    LayerSpec::AdaptiveAvgPool2d { .. } => Box::new(GlobalAvgPool),
                }
            })
            .collect::<Vec<_>>();
        let n = layers.len();
        let first_learner = layers.iter().position(|l| !l.params().is_empty()).unwrap_or(n);
        let mut model = Sequential {
            spec,
            layers,
            first_learner,
            acts: vec![Tensor::default(); n + 1],
            grads: vec![Tensor::default(); n + 1],
            probs: Tensor::default(),
            view_probs: Tensor::default(),
            fused: vec![false; n],
            pooled: vec![false; n],
            device: Device::Cpu,
            host_input: Tensor::default(),
            input_pending: false,
            input_moved: false,
            stats: ops::StepStats::default(),
        };
        model.set_fusion(true);
        Ok(model)
    }

    /// Lets layers absorb the leaky ReLU that follows them, and in evaluation the max-pool after
    /// that (on by default; the results are the same bit for bit, off is the reference it is tested
    /// against).
    pub fn set_fusion(&mut self, on: bool) {
        let n = self.layers.len();
        for i in 0..n {
            let slope = match self.spec.layers.get(i + 1) {
                Some(LayerSpec::LeakyRelu { negative_slope }) => Some(*negative_slope),
                Some(LayerSpec::Relu) => Some(0.0),
                _ => None,
            };
            // A layer absorbed into its predecessor cannot absorb the next one.
            let free = i == 0 || !self.fused[i - 1];
            let asked = slope.filter(|_| on && free);
            self.fused[i] = self.layers[i].fuse_leaky_relu(asked) && asked.is_some();
            let pool = match self.spec.layers.get(i + 1 + self.fused[i] as usize) {
                Some(LayerSpec::MaxPool2d { kernel_size, stride }) => {
                    Some((*kernel_size, stride.unwrap_or(*kernel_size)))
                }
                _ => None,
            };
            let asked = pool.filter(|_| on && free);
            self.pooled[i] = self.layers[i].fuse_max_pool(asked) && asked.is_some();
        }
        for t in self.acts.iter_mut().chain(self.grads.iter_mut()) {
            *t = Tensor::default();
        }
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    pub fn num_classes(&self) -> usize {
        self.spec.num_classes().expect("validated in new")
    }

    /// The input buffer, shaped (n, c, h, w), in host memory, for the caller to fill before
    /// [`Sequential::forward`].
    pub fn input_mut(&mut self, n: usize) -> &mut Tensor {
        self.restore_input();
        let [c, h, w] = self.spec.input;
        let input = if self.device.is_cpu() { &mut self.acts[0] } else { &mut self.host_input };
        input.resize(&[n, c, h, w]);
        self.input_pending = true;
        input
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Moves parameters and their gradients to `device`; buffers are made there as they are next
    /// needed.
    pub fn to_device(&mut self, device: &Device) -> Result<()> {
        let mut result = Ok(());
        self.visit_params_mut(&mut |_, p| {
            if result.is_ok() {
                result = p.value.move_to(device).and_then(|_| p.grad.move_to(device));
            }
        });
        result?;
        let mut result = Ok(());
        for layer in &mut self.layers {
            layer.visit_buffers_mut(&mut |name, t| {
                // The step counter stays in host memory: it is counted, not computed.
                if result.is_ok() && name != crate::model::spec::BATCH_COUNT {
                    result = t.move_to(device);
                }
            });
        }
        result?;
        self.device = device.clone();
        for t in self.acts.iter_mut().chain(self.grads.iter_mut()) {
            *t = Tensor::default();
        }
        self.probs = Tensor::default();
        self.view_probs = Tensor::default();
        self.input_pending = false;
        self.stats = ops::StepStats::default();
        Ok(())
    }

    /// How many rows of the last probabilities ([`Sequential::probs`]) pick `labels`' class.
    pub fn correct(&self, labels: &[u32]) -> Result<usize> {
        let k = self.probs.row_len();
        let read;
        let probs = match self.probs.host() {
            Some(p) => p,
            None => {
                read = self.probs.to_vec()?;
                &read
            }
        };
        Ok(crate::ops::argmax_rows(probs, k).zip(labels).filter(|(p, y)| *p == **y as usize).count())
    }

    /// Runs the input buffer through every layer; returns the logits (n, classes).
    pub fn forward(&mut self, train: bool, rng: &mut Rng) -> Result<&Tensor> {
        if !self.device.is_cpu() && self.input_pending {
            self.acts[0].prepare(self.host_input.shape(), &self.device)?;
            self.acts[0].copy_from_host(self.host_input.data())?;
            self.input_pending = false;
        }
        self.restore_input();
        let mut ctx = Ctx { train, rng };
        let mut i = 0;
        while i < self.layers.len() {
            let skip = self.fused[i] as usize + (!train && self.pooled[i]) as usize;
            let (done, rest) = self.acts.split_at_mut(i + 1);
            // In evaluation nothing reads a layer's input again (backward does not run), so a
            // layer that only hands it on gets the buffer itself. Never the model's input buffer,
            // which callers read again (test-time augmentation mirrors it in place), except for a
            // flatten in training before the first learner, which backward never reaches: the
            // batch is moved back before anything else reads it.
            let pass = if skip > 0 {
                None
            } else if i == 0 {
                let moves = train && self.first_learner > 0;
                self.layers[0].eval_passes_through().filter(|&how| moves && how == PassThrough::Flatten)
            } else if train {
                None
            } else {
                self.layers[i].eval_passes_through()
            };
            self.input_moved |= i == 0 && pass.is_some();
            match pass {
                Some(how) => {
                    std::mem::swap(&mut done[i], &mut rest[0]);
                    if how == PassThrough::Flatten {
                        let n = rest[0].shape().first().copied().unwrap_or(0);
                        let rest_len = rest[0].len().checked_div(n).unwrap_or(0);
                        rest[0].reshape(&[n, rest_len])?;
                    }
                }
                None => self.layers[i].forward(&done[i], &mut rest[skip], &mut ctx)?,
            }
            i += 1 + skip;
        }
        Ok(self.acts.last().unwrap())
    }

    /// Puts the input batch back into acts[0] after a training pass moved it on.
    fn restore_input(&mut self) {
        if std::mem::take(&mut self.input_moved) {
            self.acts.swap(0, 1);
            // The flatten made (n, c·h·w) of (n, c, h, w): the same values.
            let [c, h, w] = self.spec.input;
            let n = self.acts[0].shape().first().copied().unwrap_or(0);
            self.acts[0].reshape(&[n, c, h, w]).expect("a flatten keeps the length");
        }
    }

    /// Softmax cross-entropy of the last forward pass's logits, then back-propagation through all
    /// layers, writing the parameter gradients. Returns the mean loss.
    pub fn backward(&mut self, labels: &[u32], label_smoothing: f32) -> Result<f32> {
        self.backprop(labels, label_smoothing, None)
    }

    /// Whether every layer can apply plain SGD during back-propagation ([`Sequential::backward_sgd`]).
    pub fn fuses_sgd(&self) -> bool {
        self.layers.iter().all(|l| l.fuses_sgd())
    }

    /// Like [`Sequential::backward`], but applies plain SGD (θ -= lr·dL/dθ) to every parameter as
    /// back-propagation reaches it, leaving the gradient buffers untouched. Needs
    /// [`Sequential::fuses_sgd`].
    pub fn backward_sgd(&mut self, labels: &[u32], label_smoothing: f32, lr: f32) -> Result<f32> {
        if !self.fuses_sgd() {
            return Err(Error::InvalidArgument {
                op: "backward_sgd",
                msg: "a layer cannot apply SGD during back-propagation".into(),
            });
        }
        self.backprop(labels, label_smoothing, Some(lr))
    }

    /// [`Sequential::backward`] (or [`Sequential::backward_sgd`] with `sgd_lr`) that records the
    /// step's loss and correct count for [`Sequential::take_stats`] instead of returning them, so
    /// that a GPU need not stop at each step.
    pub fn backward_recorded(&mut self, labels: &[u32], label_smoothing: f32, sgd_lr: Option<f32>) -> Result<()> {
        if sgd_lr.is_some() && !self.fuses_sgd() {
            return Err(Error::arg("backward_recorded", "a layer cannot apply SGD during back-propagation"));
        }
        let last = self.layers.len();
        ops::softmax_cross_entropy_recorded(
            &self.acts[last],
            labels,
            label_smoothing,
            &mut self.probs,
            &mut self.grads[last],
            &mut self.stats,
        )?;
        self.backprop_layers(sgd_lr)
    }

    /// Records the mean cross-entropy (and correct count) of the last forward pass's logits for
    /// [`Sequential::take_stats`], without back-propagating; the probabilities are in
    /// [`Sequential::probs`].
    pub fn record_loss(&mut self, labels: &[u32]) -> Result<()> {
        let last = self.layers.len();
        ops::softmax_cross_entropy_recorded(
            &self.acts[last],
            labels,
            0.0,
            &mut self.probs,
            &mut self.grads[last],
            &mut self.stats,
        )
    }

    /// (mean loss, correct count) of each step recorded by [`Sequential::backward_recorded`] since
    /// the last call.
    pub fn take_stats(&mut self) -> Result<Vec<(f32, u32)>> {
        self.stats.take()
    }

    /// [`Sequential::take_stats`], awaiting a GPU's read-back (in a browser).
    pub async fn take_stats_async(&mut self) -> Result<Vec<(f32, u32)>> {
        self.stats.take_async().await
    }

    fn backprop(&mut self, labels: &[u32], label_smoothing: f32, sgd_lr: Option<f32>) -> Result<f32> {
        let last = self.layers.len();
        let loss = ops::softmax_cross_entropy(
            &self.acts[last],
            labels,
            label_smoothing,
            &mut self.probs,
            &mut self.grads[last],
        )?;
        self.backprop_layers(sgd_lr)?;
        Ok(loss)
    }

    fn backprop_layers(&mut self, sgd_lr: Option<f32>) -> Result<()> {
        let last = self.layers.len();
        for i in (self.first_learner..last).rev() {
            if i > 0 && self.fused[i - 1] {
                continue;
            }
            let skip = self.fused[i] as usize;
            let (before, after) = self.grads.split_at_mut(i + 1);
            let dx = if i > self.first_learner { Some(&mut before[i]) } else { None };
            let (x, y, dy) = (&self.acts[i], &self.acts[i + 1 + skip], &after[skip]);
            match sgd_lr {
                Some(lr) => self.layers[i].backward_sgd(x, y, dy, dx, lr)?,
                None => self.layers[i].backward(x, y, dy, dx)?,
            }
        }
        Ok(())
    }

    /// Mean cross-entropy of the last forward pass's logits, without back-propagating.
    pub fn loss(&mut self, labels: &[u32]) -> Result<f32> {
        let last = self.layers.len();
        ops::softmax_cross_entropy(&self.acts[last], labels, 0.0, &mut self.probs, &mut self.grads[last])
    }

    /// Class probabilities from the last forward pass (after [`Sequential::backward`] or
    /// [`Sequential::predict`]).
    pub fn probs(&self) -> &Tensor {
        &self.probs
    }

    /// Evaluation-mode class probabilities (n, classes) for x (n, c, h, w).
    pub fn predict(&mut self, x: &Tensor) -> Result<&Tensor> {
        self.predict_tta(x, Tta::None)
    }

    /// [`Sequential::predict`] averaged over the views `tta` names.
    pub fn predict_tta(&mut self, x: &Tensor, tta: Tta) -> Result<&Tensor> {
        let [c, h, w] = self.spec.input;
        if x.shape().len() != 4 || x.shape()[1..] != [c, h, w] {
            return Err(Error::shape("predict", x.shape(), &[x.rows(), c, h, w]));
        }
        let values = x.to_vec()?;
        self.input_mut(x.rows()).data_mut().copy_from_slice(&values);
        self.infer(tta)
    }

    /// Evaluation-mode class probabilities of the input buffer (filled through
    /// [`Sequential::input_mut`]), averaged over the views `tta` names. The input buffer holds the
    /// same images afterwards.
    pub fn infer(&mut self, tta: Tta) -> Result<&Tensor> {
        let mut rng = Rng::new(0);
        self.forward(false, &mut rng)?;
        ops::softmax(self.acts.last().unwrap(), &mut self.probs)?;
        if tta == Tta::HFlip {
            std::mem::swap(&mut self.probs, &mut self.view_probs);
            ops::flip_width(&mut self.acts[0])?;
            let second = self.forward(false, &mut rng).map(|_| ());
            ops::flip_width(&mut self.acts[0])?;
            second?;
            ops::softmax(self.acts.last().unwrap(), &mut self.probs)?;
            ops::average_into(&mut self.probs, &self.view_probs)?;
        }
        Ok(&self.probs)
    }

    /// Calls `f(index, param)` for every parameter in state_dict order.
    pub fn visit_params_mut(&mut self, f: &mut dyn FnMut(usize, ParamMut<'_>)) {
        let mut k = 0;
        for layer in &mut self.layers {
            layer.visit_params_mut(&mut |p| {
                f(k, p);
                k += 1;
            });
        }
    }

    /// (state_dict name, value) of every parameter, e.g. ("layers.0.weight", [32, 1, 3, 3]).
    pub fn named_params(&self) -> Vec<(String, &Tensor)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| l.params().into_iter().map(move |(n, t)| (format!("layers.{i}.{n}"), t)))
            .collect()
    }

    /// (state_dict name, value) of everything a model file holds: each layer's parameters, then
    /// its buffers (a batch norm's running statistics and step counter), in PyTorch's order.
    pub fn named_state(&self) -> Vec<(String, &Tensor)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| {
                l.params().into_iter().chain(l.buffers()).map(move |(n, t)| (format!("layers.{i}.{n}"), t))
            })
            .collect()
    }

    /// Replaces parameters and buffers, in [`Sequential::named_state`] order ([`ModelSpec::state_shapes`]).
    pub fn set_state(&mut self, values: Vec<Tensor>) -> Result<()> {
        let expected = self.spec.state_shapes();
        if values.len() != expected.len() {
            return Err(Error::arg("set_state", format!("{} tensors for {} entries", values.len(), expected.len())));
        }
        let (mut params, mut buffers) = (Vec::new(), Vec::new());
        let mut k = 0;
        for l in &self.spec.layers {
            let (np, nb) = (l.param_shapes().len(), l.buffer_shapes().len());
            params.extend(values[k..k + np].iter().cloned());
            buffers.extend(values[k + np..k + np + nb].iter().cloned());
            k += np + nb;
        }
        for ((name, shape), v) in expected.iter().zip(&values) {
            if v.shape() != shape.as_slice() {
                return Err(Error::arg(
                    "set_state",
                    format!("{name}: expected shape {shape:?}, found {:?}", v.shape()),
                ));
            }
        }
        self.set_params(params)?;
        let device = self.device.clone();
        buffers.reverse();
        let mut result = Ok(());
        for layer in &mut self.layers {
            layer.visit_buffers_mut(&mut |name, t| {
                let mut v = buffers.pop().expect("counted above");
                if name != crate::model::spec::BATCH_COUNT
                    && let Err(e) = v.move_to(&device)
                {
                    result = Err(e);
                }
                *t = v;
            });
        }
        result
    }

    /// Replaces parameter values in state_dict order; shapes must match the spec exactly.
    pub fn set_params(&mut self, mut values: Vec<Tensor>) -> Result<()> {
        let expected = self.spec.param_shapes();
        if values.len() != expected.len() {
            return Err(Error::arg(
                "set_params",
                format!("{} tensors for {} parameters", values.len(), expected.len()),
            ));
        }
        for ((name, shape), v) in expected.iter().zip(&values) {
            if v.shape() != shape.as_slice() {
                return Err(Error::arg(
                    "set_params",
                    format!("{name}: expected shape {shape:?}, found {:?}", v.shape()),
                ));
            }
        }
        for v in &mut values {
            v.move_to(&self.device)?;
        }
        values.reverse();
        self.visit_params_mut(&mut |_, p| *p.value = values.pop().unwrap());
        Ok(())
    }

    pub fn params_finite(&self) -> bool {
        self.named_state().iter().all(|(_, t)| t.all_finite())
    }

    /// [`Sequential::params_finite`], awaiting a GPU's read-backs (in a browser).
    pub async fn params_finite_async(&self) -> bool {
        for (_, t) in self.named_state() {
            if !t.all_finite_async().await {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::presets::mlp_spec;

    /// Back-propagation stops at the first layer with parameters: the MLP's first dense layer
    /// follows a flatten, so no gradient reaches the input, and every parameter still gets one.
    #[test]
    fn backward_computes_no_input_gradient_before_the_first_learner() {
        let mut model = Sequential::new(mlp_spec(0.0), 3).unwrap();
        let mut rng = Rng::new(4);
        let x: Vec<f32> = (0..2 * 784).map(|_| rng.uniform()).collect();
        model.input_mut(2).data_mut().copy_from_slice(&x);
        model.forward(true, &mut rng).unwrap();
        model.backward(&[3, 7], 0.0).unwrap();
        assert_eq!(model.first_learner, 1);
        assert!(model.grads[..2].iter().all(|g| g.data().is_empty()), "an input gradient was computed");
        model.visit_params_mut(&mut |_, p| {
            assert!(
                p.grad.len() == p.value.len() && p.grad.data().iter().any(|&g| g != 0.0),
                "{} has no gradient",
                p.name
            );
        });
    }

    /// In evaluation the CNNs' 2x2 max-pools run inside the convolution before them (after its
    /// fused activation in `cnn`, straight after it in `cnn-fast`), and not without fusion.
    /// (tests/engine.rs checks that the predictions are the same bit for bit.)
    #[test]
    fn max_pools_are_fused_into_the_convolutions_before_them() {
        use crate::model::presets::{cnn_fast_spec, cnn_spec};
        for (spec, want) in [(cnn_spec(), [2, 6]), (cnn_fast_spec(), [3, 7])] {
            let mut model = Sequential::new(spec, 0).unwrap();
            let pooled: Vec<usize> = (0..model.layers.len()).filter(|&i| model.pooled[i]).collect();
            assert_eq!(pooled, want);
            model.set_fusion(false);
            assert!(!model.pooled.iter().any(|&p| p));
        }
    }

    /// A training pass moves the batch through the MLP's flatten instead of copying it; whoever
    /// reads the input next (another pass, test-time augmentation, `input_mut`) finds it whole.
    #[test]
    fn a_training_pass_leaves_the_input_batch_to_the_next_reader() {
        let mut model = Sequential::new(mlp_spec(0.0), 3).unwrap();
        let mut rng = Rng::new(5);
        let x: Vec<f32> = (0..3 * 784).map(|_| rng.uniform()).collect();
        model.input_mut(3).data_mut().copy_from_slice(&x);
        let logits = model.forward(true, &mut rng).unwrap().data().to_vec();
        assert!(model.input_moved, "the flatten copied the batch");
        model.backward(&[1, 2, 3], 0.0).unwrap();
        // No dropout and no optimizer step: evaluation must give the same logits.
        assert_eq!(model.forward(false, &mut rng).unwrap().data(), &logits[..], "the input was not restored");
        model.forward(true, &mut rng).unwrap();
        assert_eq!(model.input_mut(3).data(), &x[..]);
    }
}
