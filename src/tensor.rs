//! `Tensor`: an f32 array with a shape, contiguous, row-major.
//!
//! Layers never loop over a tensor's elements themselves; they call [`crate::ops`], the one
//! boundary a second backend (GPU) implements. Buffers are reused across steps with
//! [`Tensor::resize`], which keeps the allocation when the size does not grow.

use crate::error::{Error, Result};
use crate::rng::Rng;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Tensor {
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor { shape: shape.to_vec(), data: vec![0.0; shape.iter().product()] }
    }

    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::arg(
                "Tensor::from_vec",
                format!("shape {shape:?} holds {n} values, got {}", data.len()),
            ));
        }
        Ok(Tensor { shape: shape.to_vec(), data })
    }

    /// Normal(0, std²) values.
    pub fn randn(shape: &[usize], std: f32, rng: &mut Rng) -> Self {
        let n = shape.iter().product();
        Tensor { shape: shape.to_vec(), data: (0..n).map(|_| rng.normal() * std).collect() }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Size of the first dimension (the batch), 0 for a scalar-less empty tensor.
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// Elements per row: the product of all dimensions but the first.
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// Gives the tensor a new shape, keeping the allocation where it is large enough. Contents are
    /// unspecified afterwards: callers overwrite them (use [`Tensor::fill`] to clear).
    pub fn resize(&mut self, shape: &[usize]) {
        if self.shape != shape {
            self.shape.clear();
            self.shape.extend_from_slice(shape);
        }
        let n: usize = shape.iter().product();
        self.data.resize(n, 0.0);
    }

    /// Same values, another shape with the same number of elements.
    pub fn reshape(&mut self, shape: &[usize]) -> Result<()> {
        let n: usize = shape.iter().product();
        if n != self.data.len() {
            return Err(Error::shape("reshape", &self.shape, shape));
        }
        self.shape.clear();
        self.shape.extend_from_slice(shape);
        Ok(())
    }

    pub fn fill(&mut self, v: f32) {
        self.data.fill(v);
    }

    pub fn all_finite(&self) -> bool {
        self.data.iter().all(|v| v.is_finite())
    }
}
