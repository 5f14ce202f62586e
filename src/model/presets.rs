//! The original project's networks (and the later ones) as [`ModelSpec`]s; their training
//! recipes, which refer to them, are in `train::recipe`.

use super::spec::{LayerSpec, ModelSpec};

/// 784-128-64-10 with leaky ReLU, optional dropout after each hidden layer.
pub fn mlp_spec(dropout: f32) -> ModelSpec {
    use LayerSpec::*;
    let mut layers = vec![Flatten];
    for (inp, out) in [(784, 128), (128, 64)] {
        layers.push(Linear { in_features: inp, out_features: out });
        layers.push(LeakyRelu { negative_slope: 0.01 });
        if dropout > 0.0 {
            layers.push(Dropout { p: dropout });
        }
    }
    layers.push(Linear { in_features: 64, out_features: 10 });
    ModelSpec { input: [1, 28, 28], layers }
}

/// conv 32, conv 64, pool, dropout .25, conv 128, pool, dropout .25, dense 512, dropout .5, dense 10.
pub fn cnn_spec() -> ModelSpec {
    use LayerSpec::*;
    let conv = |i, o| Conv2d { in_channels: i, out_channels: o, kernel_size: 3, stride: 1, padding: 0 };
    let lrelu = || LeakyRelu { negative_slope: 0.01 };
    let pool = || MaxPool2d { kernel_size: 2, stride: Some(2) };
    ModelSpec {
        input: [1, 28, 28],
        layers: vec![
            conv(1, 32),
            lrelu(),
            conv(32, 64),
            lrelu(),
            pool(),
            Dropout { p: 0.25 },
            conv(64, 128),
            lrelu(),
            pool(),
            Dropout { p: 0.25 },
            Flatten,
            Linear { in_features: 3200, out_features: 512 },
            lrelu(),
            Dropout { p: 0.5 },
            Linear { in_features: 512, out_features: 10 },
        ],
    }
}

/// The `cnn` network with batch normalisation: conv 32, BN, conv 64, pool, BN, conv 128, pool,
/// BN, dense 512, BN, dense 10, ReLU after each BN, light dropout. Each 2-d batch norm after
/// the first follows a max-pool, where it costs a quarter of what it would before it (its passes
/// are memory-bound: ~17% of a step before the pool).
pub fn cnn_fast_spec() -> ModelSpec {
    use LayerSpec::*;
    let conv = |i, o| Conv2d { in_channels: i, out_channels: o, kernel_size: 3, stride: 1, padding: 0 };
    let bn = |c| BatchNorm2d { num_features: c, eps: 1e-5, momentum: 0.1 };
    let pool = || MaxPool2d { kernel_size: 2, stride: Some(2) };
    ModelSpec {
        input: [1, 28, 28],
        layers: vec![
            conv(1, 32),
            bn(32),
            Relu,
            conv(32, 64),
            pool(),
            bn(64),
            Relu,
            conv(64, 128),
            pool(),
            bn(128),
            Relu,
            Dropout { p: 0.1 },
            Flatten,
            Linear { in_features: 3200, out_features: 512 },
            BatchNorm1d { num_features: 512, eps: 1e-5, momentum: 0.1 },
            Relu,
            Dropout { p: 0.3 },
            Linear { in_features: 512, out_features: 10 },
        ],
    }
}
