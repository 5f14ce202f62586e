//! Which algorithm a convolution runs by: im2col + GEMM, shifted products (through `gemm` or the
//! direct kernels), or Winograd, from its geometry, the [`ConvAlgorithm`] setting and the CPU.

use super::direct;
use super::winograd::{self, Tile};
use crate::ops::params::{Conv2dGeom, ConvAlgorithm};

/// Shifted products for stride 1. Through `gemm`, only with enough input channels: each tap's
/// product has c as its inner dimension, and with few channels (the CNN's first layer has 1) those
/// products are inefficient (BENCHMARKS.md). The direct kernels vectorise over channels in the
/// weight gradient, so they too want several.
pub(super) fn shifted(g: &Conv2dGeom, algo: ConvAlgorithm) -> bool {
    g.stride == 1 && g.c >= 8 && algo != ConvAlgorithm::Im2col
}

pub(super) fn direct(g: &Conv2dGeom, algo: ConvAlgorithm) -> bool {
    shifted(g, algo) && !matches!(algo, ConvAlgorithm::Shifted | ConvAlgorithm::Im2col) && direct::available()
}

/// Winograd for the forward pass of 3x3 kernels.
pub(super) fn winograd(g: &Conv2dGeom, algo: ConvAlgorithm) -> bool {
    direct(g, algo) && algo != ConvAlgorithm::Direct && g.k == 3 && winograd::available()
}

/// The forward pass's Winograd tile, if it runs by Winograd.
pub(super) fn forward_tile(g: &Conv2dGeom, algo: ConvAlgorithm) -> Option<Tile> {
    winograd(g, algo).then(|| tile_for(g.oh(), g.ow(), algo))
}

/// The Winograd tile for an oh x ow output: 2x2 with `Winograd2x2`, else where it pays.
pub(super) fn tile_for(oh: usize, ow: usize, algo: ConvAlgorithm) -> Tile {
    match algo {
        ConvAlgorithm::Winograd2x2 => Tile::F2,
        _ => Tile::for_output(oh, ow),
    }
}

/// Winograd for the gradients too: F(3x3, 2x2) for the weight gradient, the forward algorithm on
/// dY padded by 2 - pad for the input gradient (4x4 tiles where they pay). `Auto` takes it where
/// it pays ([`winograd::pays_for_gradients`]).
pub(super) fn winograd_grads(g: &Conv2dGeom, algo: ConvAlgorithm) -> bool {
    let wanted = match algo {
        ConvAlgorithm::Winograd => true,
        ConvAlgorithm::Auto | ConvAlgorithm::Winograd2x2 => winograd::pays_for_gradients(),
        _ => false,
    };
    wanted && winograd(g, algo) && g.pad <= 2
}

/// Whether [`forward_max_pooled`] runs for this convolution: the Winograd path, whose 2x2 output
/// tiles are the windows of a 2x2, stride-2 max-pool.
pub fn fuses_max_pool(g: &Conv2dGeom, algo: ConvAlgorithm) -> bool {
    winograd(g, algo)
}
