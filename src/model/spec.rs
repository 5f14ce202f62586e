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
}

fn one() -> usize {
    1
}
fn default_slope() -> f32 {
    0.01
}

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
                if h + 2 * padding < k || w + 2 * padding < k {
                    return bad(format!("kernel larger than the padded {h}x{w} input"));
                }
                Ok(vec![out_channels, (h + 2 * padding - k) / stride + 1, (w + 2 * padding - k) / stride + 1])
            }
            LayerSpec::MaxPool2d { kernel_size: k, stride } => {
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
            LayerSpec::Flatten => Ok(vec![input.iter().product()]),
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
            _ => vec![],
        }
    }
}

impl ModelSpec {
    /// Per-sample shapes: the input, then each layer's output. Fails with the first misfit.
    pub fn shapes(&self) -> Result<Vec<Vec<usize>>> {
        if self.input.contains(&0) {
            return Err(Error::Spec(format!("input shape {:?} has a zero dimension", self.input)));
        }
        let mut shapes = vec![self.input.to_vec()];
        for (i, layer) in self.layers.iter().enumerate() {
            let next = layer.output_shape(shapes.last().unwrap()).map_err(|e| match e {
                Error::Spec(msg) => Error::Spec(format!("layer {i}: {msg}")),
                other => other,
            })?;
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

    pub fn num_params(&self) -> usize {
        self.param_shapes().iter().map(|(_, s)| s.iter().product::<usize>()).sum()
    }

    /// Multiply-adds of one image's forward pass (convolutions and linear layers); a backward
    /// pass takes about twice as many.
    pub fn forward_macs(&self) -> usize {
        let Ok(shapes) = self.shapes() else { return 0 };
        self.layers
            .iter()
            .zip(shapes.windows(2))
            .map(|(l, io)| match *l {
                LayerSpec::Conv2d { in_channels, kernel_size: k, .. } => {
                    io[1].iter().product::<usize>() * in_channels * k * k
                }
                LayerSpec::Linear { in_features, out_features } => in_features * out_features,
                _ => 0,
            })
            .sum()
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

    #[test]
    fn forward_macs_of_the_presets() {
        let macs = |name: &str| crate::model::preset(name).unwrap().spec.forward_macs();
        assert_eq!(macs("mlp"), 784 * 128 + 128 * 64 + 64 * 10);
        // conv1 26²·32·9, conv2 24²·64·288, conv3 10²·128·576, dense 3200·512 + 512·10.
        let cnn = 26 * 26 * 32 * 9 + 24 * 24 * 64 * 288 + 100 * 128 * 576 + 3200 * 512 + 5120;
        assert_eq!(macs("cnn"), cnn);
    }
}
