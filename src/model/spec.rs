//! The architecture of a network as data: serialised into model files, read from `--model spec.json`.
//!
//! Layer names and fields follow PyTorch's modules, so a spec reads like the `nn.Sequential` it
//! maps to, and parameter names (`layers.<i>.weight`) match that module's `state_dict`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default)]
        padding: usize,
    },
    /// `stride` defaults to `kernel_size`, as in PyTorch.
    MaxPool2d {
        kernel_size: usize,
        #[serde(default)]
        stride: Option<usize>,
    },
    Dropout {
        p: f32,
    },
    Flatten,
    Linear {
        in_features: usize,
        out_features: usize,
    },
    LeakyRelu {
        #[serde(default = "default_slope")]
        negative_slope: f32,
    },
    Relu,
    /// Batch normalisation over (n, c, h, w): per channel over n, h and w.
    BatchNorm2d {
        num_features: usize,
        #[serde(default = "default_eps")]
        eps: f32,
        #[serde(default = "default_momentum")]
        momentum: f32,
    },
    /// Batch normalisation over (n, c): per feature over n.
    BatchNorm1d {
        num_features: usize,
        #[serde(default = "default_eps")]
        eps: f32,
        #[serde(default = "default_momentum")]
        momentum: f32,
    },
    /// `stride` defaults to `kernel_size`, as in PyTorch (no padding, floor).
    AvgPool2d {
        kernel_size: usize,
        #[serde(default)]
        stride: Option<usize>,
    },
    /// Only `output_size: 1`, global average pooling: (c, h, w) -> (c, 1, 1).
    AdaptiveAvgPool2d {
        output_size: usize,
    },
}

/// The most values a spec may ask of one tensor: an image's activation (or a convolution's padded
/// input or im2col matrix), one parameter, and all parameters together. 2^28 f32 is 1 GiB. Rust
/// aborts the process when an allocation fails, so a size beyond memory (a typo such as
/// `out_features: 10000000000`) must be refused here, naming the layer; the networks this library
/// trains on a CPU hold 10^5-10^7 values per tensor, and training keeps four copies of the
/// parameters (value, gradient, two Adam moments): 4 GiB at the cap.
pub const MAX_TENSOR_VALUES: usize = 1 << 28;

/// The number of values of `shape`, None when it overflows.
fn values(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// `shape`'s value count when within [`MAX_TENSOR_VALUES`], else why not.
fn within_cap(what: &str, shape: &[usize]) -> std::result::Result<usize, String> {
    match values(shape) {
        Some(n) if n <= MAX_TENSOR_VALUES => Ok(n),
        Some(n) => Err(format!(
            "{what} {shape:?} holds {n} values; the limit is {MAX_TENSOR_VALUES} (2^28, 1 GiB of f32) per tensor"
        )),
        None => Err(format!("{what} {shape:?} holds more values than a usize counts (the product overflows)")),
    }
}

fn one() -> usize {
    1
}
fn default_slope() -> f32 {
    0.01
}
fn default_eps() -> f32 {
    1e-5
}
fn default_momentum() -> f32 {
    0.1
}

pub use crate::layers::BATCH_COUNT;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Per-sample input shape (channels, height, width).
    pub input: [usize; 3],
    pub layers: Vec<LayerSpec>,
}

impl LayerSpec {
    /// The PyTorch module this layer corresponds to, for `inspect`.
    pub fn describe(&self) -> String {
        match self {
            LayerSpec::Conv2d { in_channels, out_channels, kernel_size, stride, padding } => {
                format!(
                    "Conv2d({in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride}, padding={padding})"
                )
            }
            LayerSpec::MaxPool2d { kernel_size, stride } => {
                format!("MaxPool2d(kernel_size={kernel_size}, stride={})", stride.unwrap_or(*kernel_size))
            }
            LayerSpec::Dropout { p } => format!("Dropout(p={p})"),
            LayerSpec::Flatten => "Flatten()".into(),
            LayerSpec::Linear { in_features, out_features } => format!("Linear({in_features}, {out_features})"),
            LayerSpec::LeakyRelu { negative_slope } => format!("LeakyReLU({negative_slope})"),
            LayerSpec::Relu => "ReLU()".into(),
            LayerSpec::BatchNorm2d { num_features, eps, momentum } => {
                format!("BatchNorm2d({num_features}, eps={eps}, momentum={momentum})")
            }
            LayerSpec::BatchNorm1d { num_features, eps, momentum } => {
                format!("BatchNorm1d({num_features}, eps={eps}, momentum={momentum})")
            }
            LayerSpec::AvgPool2d { kernel_size, stride } => {
                format!("AvgPool2d(kernel_size={kernel_size}, stride={})", stride.unwrap_or(*kernel_size))
            }
            LayerSpec::AdaptiveAvgPool2d { output_size } => format!("AdaptiveAvgPool2d({output_size})"),
        }
    }

    /// Per-sample output shape for a per-sample input shape, or why the two do not fit.
    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let bad = |msg: String| Err(Error::Spec(format!("{}: {msg}", self.describe())));
        match *self {
            LayerSpec::Conv2d { in_channels, out_channels, kernel_size: k, stride, padding } => {
                let &[c, h, w] = input else {
                    return bad(format!("needs a (channels, height, width) input, got {input:?}"));
                };
                if c != in_channels {
                    return bad(format!("input has {c} channels"));
                }
                if k == 0 || stride == 0 || out_channels == 0 {
                    return bad("kernel_size, stride and out_channels must be positive".into());
                }
                let padded = |d: usize| padding.checked_mul(2).and_then(|p| p.checked_add(d));
                let (Some(ph), Some(pw)) = (padded(h), padded(w)) else {
                    return bad(format!("padding {padding} overflows the padded input size"));
                };
                if ph < k || pw < k {
                    return bad(format!("kernel larger than the padded {h}x{w} input"));
                }
                Ok(vec![out_channels, (ph - k) / stride + 1, (pw - k) / stride + 1])
            }
            LayerSpec::MaxPool2d { kernel_size: k, stride } | LayerSpec::AvgPool2d { kernel_size: k, stride } => {
                let &[c, h, w] = input else {
                    return bad(format!("needs a (channels, height, width) input, got {input:?}"));
                };
                let s = stride.unwrap_or(k);
                if k == 0 || s == 0 || h < k || w < k {
                    return bad(format!("window does not fit the {h}x{w} input"));
                }
                Ok(vec![c, (h - k) / s + 1, (w - k) / s + 1])
            }
            LayerSpec::Dropout { p } => {
                if !(0.0..1.0).contains(&p) {
                    return bad("p must be in [0, 1)".into());
                }
                Ok(input.to_vec())
            }
            LayerSpec::Flatten => match values(input) {
                Some(n) => Ok(vec![n]),
                None => bad(format!("flattening {input:?} overflows")),
            },
            LayerSpec::Linear { in_features, out_features } => {
                if input != [in_features] {
                    return bad(format!("input has shape {input:?}; expected [{in_features}] (add a flatten layer?)"));
                }
                if out_features == 0 {
                    return bad("out_features must be positive".into());
                }
                Ok(vec![out_features])
            }
            LayerSpec::LeakyRelu { .. } | LayerSpec::Relu => Ok(input.to_vec()),
            LayerSpec::BatchNorm2d { num_features, eps, momentum } => {
                let &[c, _, _] = input else {
                    return bad(format!("needs a (channels, height, width) input, got {input:?} (BatchNorm1d?)"));
                };
                if c != num_features {
                    return bad(format!("input has {c} channels"));
                }
                norm_settings(eps, momentum).map_or(Ok(input.to_vec()), bad)
            }
            LayerSpec::BatchNorm1d { num_features, eps, momentum } => {
                if input != [num_features] {
                    return bad(format!(
                        "input has shape {input:?}; expected [{num_features}] (BatchNorm2d for images, or flatten first)"
                    ));
                }
                norm_settings(eps, momentum).map_or(Ok(input.to_vec()), bad)
            }
            LayerSpec::AdaptiveAvgPool2d { output_size } => {
                let &[c, _, _] = input else {
                    return bad(format!("needs a (channels, height, width) input, got {input:?}"));
                };
                if output_size != 1 {
                    return bad("only output_size 1 (global average pooling) is supported".into());
                }
                Ok(vec![c, 1, 1])
            }
        }
    }

    /// (name, shape) of each parameter, in state_dict order.
    pub fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        match *self {
            LayerSpec::Conv2d { in_channels, out_channels, kernel_size: k, .. } => {
                vec![("weight", vec![out_channels, in_channels, k, k]), ("bias", vec![out_channels])]
            }
            LayerSpec::Linear { in_features, out_features } => {
                vec![("weight", vec![out_features, in_features]), ("bias", vec![out_features])]
            }
            LayerSpec::BatchNorm2d { num_features: c, .. } | LayerSpec::BatchNorm1d { num_features: c, .. } => {
                vec![("weight", vec![c]), ("bias", vec![c])]
            }
            _ => vec![],
        }
    }

    /// (name, shape) of each buffer: state that is saved but not trained (a batch norm's running
    /// statistics and its step counter, shape [] like PyTorch's 0-dimensional tensor).
    pub fn buffer_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        match *self {
            LayerSpec::BatchNorm2d { num_features: c, .. } | LayerSpec::BatchNorm1d { num_features: c, .. } => {
                vec![("running_mean", vec![c]), ("running_var", vec![c]), (BATCH_COUNT, vec![])]
            }
            _ => vec![],
        }
    }
}

/// Why a batch norm's eps or momentum is unusable, if it is.
fn norm_settings(eps: f32, momentum: f32) -> Option<String> {
    if !(eps > 0.0 && eps.is_finite()) {
        return Some(format!("eps must be positive, not {eps}"));
    }
    if !(0.0..=1.0).contains(&momentum) {
        return Some(format!("momentum must be in [0, 1], not {momentum}"));
    }
    None
}

impl ModelSpec {
    /// Per-sample shapes: the input, then each layer's output. Fails with the first misfit.
    pub fn shapes(&self) -> Result<Vec<Vec<usize>>> {
        if self.input.contains(&0) {
            return Err(Error::Spec(format!("input shape {:?} has a zero dimension", self.input)));
        }
        within_cap("input", &self.input).map_err(Error::Spec)?;
        let mut shapes = vec![self.input.to_vec()];
        let mut total_params = 0usize;
        for (i, layer) in self.layers.iter().enumerate() {
            let named = |msg: String| Error::Spec(format!("layer {i}: {}: {msg}", layer.describe()));
            let next = layer.output_shape(shapes.last().unwrap()).map_err(|e| match e {
                Error::Spec(msg) => Error::Spec(format!("layer {i}: {msg}")),
                other => other,
            })?;
            // Sizes are checked before anything is allocated (Sequential::new allocates the
            // parameters, the first batch the activations).
            within_cap("output (per image)", &next).map_err(named)?;
            if let LayerSpec::Conv2d { in_channels: c, kernel_size: k, padding, .. } = *layer {
                let inp = shapes.last().unwrap();
                // output_shape checked that the padded sides fit a usize.
                let padded = [c, inp[1] + 2 * padding, inp[2] + 2 * padding];
                within_cap("padded input (per image)", &padded).map_err(named)?;
                within_cap("im2col matrix (per image)", &[c, k, k, next[1], next[2]]).map_err(named)?;
            }
            for (name, shape) in layer.param_shapes() {
                let n = within_cap(name, &shape).map_err(named)?;
                total_params = total_params.saturating_add(n);
                if total_params > MAX_TENSOR_VALUES {
                    return Err(named(format!(
                        "with its {name} the network has {total_params} parameters; the limit is \
                         {MAX_TENSOR_VALUES} (2^28, 1 GiB of f32) for the whole network"
                    )));
                }
            }
            shapes.push(next);
        }
        match shapes.last().map(Vec::as_slice) {
            Some(&[k]) if k >= 2 && !self.layers.is_empty() => Ok(shapes),
            other => Err(Error::Spec(format!(
                "the network must end in a vector of class scores (>= 2); it ends in {other:?}"
            ))),
        }
    }

    pub fn num_classes(&self) -> Result<usize> {
        Ok(self.shapes()?.last().unwrap()[0])
    }

    /// (state_dict name, shape) of every parameter.
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| l.param_shapes().into_iter().map(move |(n, s)| (format!("layers.{i}.{n}"), s)))
            .collect()
    }

    /// (state_dict name, shape) of everything a model file holds: each layer's parameters, then
    /// its buffers, layer by layer, in PyTorch's `state_dict` order.
    pub fn state_shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| {
                l.param_shapes().into_iter().chain(l.buffer_shapes()).map(move |(n, s)| (format!("layers.{i}.{n}"), s))
            })
            .collect()
    }

    /// Saturating: an unvalidated spec may describe more than a usize counts.
    pub fn num_params(&self) -> usize {
        self.param_shapes().iter().fold(0usize, |n, (_, s)| n.saturating_add(values(s).unwrap_or(usize::MAX)))
    }

    /// Multiply-adds of one image's forward pass (convolutions and linear layers); a backward
    /// pass takes about twice as many.
    pub fn forward_macs(&self) -> usize {
        let Ok(shapes) = self.shapes() else { return 0 };
        self.layers
            .iter()
            .zip(shapes.windows(2))
            .map(|(l, io)| match *l {
                // Within the caps shapes() checked, but the product of two capped sizes may
                // still pass 2^32 on 32-bit targets (wasm32).
                LayerSpec::Conv2d { in_channels, kernel_size: k, .. } => {
                    values(&[values(&io[1]).unwrap_or(usize::MAX), in_channels, k, k]).unwrap_or(usize::MAX)
                }
                LayerSpec::Linear { in_features, out_features } => in_features.saturating_mul(out_features),
                _ => 0,
            })
            .fold(0usize, usize::saturating_add)
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let spec: ModelSpec = serde_json::from_str(text).map_err(|e| Error::Spec(e.to_string()))?;
        spec.shapes()?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misfits_are_named() {
        let spec =
            ModelSpec { input: [1, 28, 28], layers: vec![LayerSpec::Linear { in_features: 784, out_features: 10 }] };
        let err = spec.shapes().unwrap_err().to_string();
        assert!(err.contains("layer 0") && err.contains("add a flatten layer"), "{err}");
        let err = ModelSpec::from_json(r#"{"input":[1,28,28],"layers":[{"type":"conv3d"}]}"#).unwrap_err().to_string();
        assert!(err.contains("conv3d"), "{err}");
    }

    /// A spec asking for more than memory holds is refused, naming the layer and the size, before
    /// anything is allocated (the test would abort the process otherwise).
    #[test]
    fn huge_layers_are_refused_before_allocation() {
        let err = |json: &str| ModelSpec::from_json(json).unwrap_err().to_string();
        let spec = |layers: &str| format!(r#"{{"input":[1,28,28],"layers":[{layers}]}}"#);
        let linear = r#"{"type":"flatten"},{"type":"linear","in_features":784,"out_features":10000000000}"#;
        let m = err(&spec(linear));
        assert!(m.contains("layer 1: Linear(784, 10000000000)") && m.contains("10000000000 values"), "{m}");
        // Each weight alone fits (2^28 values at most); their sum does not.
        let two = r#"{"type":"flatten"},{"type":"linear","in_features":784,"out_features":16384},
            {"type":"linear","in_features":16384,"out_features":16384},{"type":"linear","in_features":16384,"out_features":10}"#;
        let m = err(&spec(two));
        assert!(m.contains("layer 2: Linear(16384, 16384): with its weight the network has 281296896"), "{m}");
        let conv = |c: &str, pad: &str| {
            format!(r#"{{"type":"conv2d","in_channels":1,"out_channels":{c},"kernel_size":3,"padding":{pad}}}"#)
        };
        let m = err(&spec(&conv("8", "100000")));
        assert!(m.contains("layer 0: Conv2d(1, 8, kernel_size=3") && m.contains("[8, 200026, 200026]"), "{m}");
        let m = err(&spec(&conv("8", &usize::MAX.to_string())));
        assert!(m.contains("layer 0: Conv2d(1, 8") && m.contains("overflows"), "{m}");
        let m = err(&spec(&conv("1000000000", "0")));
        assert!(m.contains("layer 0: Conv2d(1, 1000000000") && m.contains("676000000000 values"), "{m}");
        // A large kernel over a small output: the im2col matrix is what would not fit.
        let m = err(r#"{"input":[10000,28,28],"layers":[
            {"type":"conv2d","in_channels":10000,"out_channels":1,"kernel_size":14},
            {"type":"flatten"},{"type":"linear","in_features":225,"out_features":10}]}"#);
        assert!(m.contains("layer 0") && m.contains("im2col matrix (per image) [10000, 14, 14, 15, 15]"), "{m}");
        assert!(err(r#"{"input":[100000,100000,100000],"layers":[]}"#).contains("input [100000, 100000, 100000]"));

        // Sequential::new relies on the same validation.
        let huge = ModelSpec {
            input: [1, 28, 28],
            layers: vec![LayerSpec::Flatten, LayerSpec::Linear { in_features: 784, out_features: 1 << 40 }],
        };
        let m = crate::model::Sequential::new(huge, 0).err().unwrap().to_string();
        assert!(m.contains("layer 1: Linear(784, 1099511627776)"), "{m}");
    }

    #[test]
    fn forward_macs_of_the_presets() {
        use crate::model::presets::{cnn_spec, mlp_spec};
        assert_eq!(mlp_spec(0.0).forward_macs(), 784 * 128 + 128 * 64 + 64 * 10);
        // conv1 26²·32·9, conv2 24²·64·288, conv3 10²·128·576, dense 3200·512 + 512·10.
        let cnn = 26 * 26 * 32 * 9 + 24 * 24 * 64 * 288 + 100 * 128 * 576 + 3200 * 512 + 5120;
        assert_eq!(cnn_spec().forward_macs(), cnn);
    }
}
