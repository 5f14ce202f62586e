//! Model files follow PyTorch's state_dict layout: an independent NumPy implementation of PyTorch's
//! layer definitions (tests/pytorch_layout.py) reads our file and reproduces our outputs, batch
//! norms in eval mode from the running statistics the file holds.
//! Needs `python3 -m pip install numpy safetensors` (done by .ci/run).

use std::io::Write;
use std::process::Command;

use scratchnet::model::spec::BATCH_COUNT;
use scratchnet::model::{LayerSpec, ModelSpec, Sequential, presets};
use scratchnet::model_file::{ModelInfo, to_bytes};
use scratchnet::{Rng, Tensor};

fn check(spec: ModelSpec, n: usize) {
    let mut model = Sequential::new(spec.clone(), 7).unwrap();
    // Non-zero biases, so a bias in the wrong place cannot pass unnoticed.
    let mut rng = Rng::new(8);
    model.visit_params_mut(&mut |_, p| {
        if p.name == "bias" {
            *p.value = Tensor::randn(p.value.shape(), 0.1, &mut rng);
        }
    });
    // Batch norms: scales and running statistics away from their initial 1, 0 (mean) and 1 (variance).
    model.visit_params_mut(&mut |_, p| {
        if p.norm && p.name == "weight" {
            *p.value =
                Tensor::from_vec(p.value.shape(), p.value.data().iter().map(|_| 1.0 + 0.3 * rng.normal()).collect())
                    .unwrap();
        }
    });
    let state: Vec<Tensor> = model
        .named_state()
        .into_iter()
        .map(|(name, t)| {
            let s = t.shape();
            if name.ends_with(".running_mean") {
                Tensor::randn(s, 0.5, &mut rng)
            } else if name.ends_with(".running_var") {
                Tensor::from_vec(s, (0..t.len()).map(|_| 0.5 + rng.normal().abs()).collect()).unwrap()
            } else if name.ends_with(BATCH_COUNT) {
                Tensor::from_vec(s, vec![12.0]).unwrap()
            } else {
                t.clone()
            }
        })
        .collect();
    model.set_state(state).unwrap();
    let [c, h, w] = spec.input;
    let x = Tensor::randn(&[n, c, h, w], 1.0, &mut rng);
    let probs = model.predict(&x).unwrap().clone();
    let classes = (0..probs.row_len()).map(|i| i.to_string()).collect();
    let info = ModelInfo {
        spec,
        classes,
        dataset: "fashion-mnist".into(),
        input: Default::default(),
        training: None,
        tta: Default::default(),
    };
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        p
    };
    let le = |t: &Tensor| t.data().iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
    let model_path = write("m.safetensors", &to_bytes(&model, &info, &[], None).unwrap());
    let x_path = write("x.f32", &le(&x));
    let p_path = write("p.f32", &le(&probs));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pytorch_layout.py");
    let out = Command::new("python3")
        .arg(script)
        .args([&model_path, &x_path, &p_path])
        .arg(n.to_string())
        .output()
        .expect("python3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n(the check needs: python3 -m pip install numpy safetensors)");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("OK"));
}

#[test]
fn cnn_file_matches_pytorch_semantics() {
    check(presets::cnn_spec(), 3);
}

#[test]
fn strided_padded_conv_and_mlp_files_match_pytorch_semantics() {
    use LayerSpec::*;
    let spec = ModelSpec {
        input: [2, 9, 8],
        layers: vec![
            Conv2d { in_channels: 2, out_channels: 3, kernel_size: 3, stride: 2, padding: 1 },
            Relu,
            MaxPool2d { kernel_size: 2, stride: Some(1) },
            Flatten,
            Linear { in_features: 3 * 4 * 3, out_features: 5 },
        ],
    };
    check(spec, 4);
    check(presets::mlp_spec(0.2), 5);
}

#[test]
fn batch_norm_and_average_pooling_files_match_pytorch_semantics() {
    use LayerSpec::*;
    let spec = ModelSpec {
        input: [2, 10, 9],
        layers: vec![
            Conv2d { in_channels: 2, out_channels: 3, kernel_size: 3, stride: 1, padding: 1 },
            BatchNorm2d { num_features: 3, eps: 1e-5, momentum: 0.1 },
            // Absorbed by the batch norm before it.
            LeakyRelu { negative_slope: 0.1 },
            AvgPool2d { kernel_size: 3, stride: Some(2) },
            Conv2d { in_channels: 3, out_channels: 4, kernel_size: 3, stride: 1, padding: 1 },
            BatchNorm2d { num_features: 4, eps: 1e-3, momentum: 0.3 },
            Relu,
            AvgPool2d { kernel_size: 2, stride: None },
            AdaptiveAvgPool2d { output_size: 1 },
            Flatten,
            Linear { in_features: 4, out_features: 6 },
            BatchNorm1d { num_features: 6, eps: 1e-5, momentum: 0.1 },
            Relu,
            Linear { in_features: 6, out_features: 5 },
        ],
    };
    check(spec, 4);
}
