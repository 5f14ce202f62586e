//! In-memory image datasets: pixels kept as u8 (a quarter of f32's memory) and converted per batch.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Tensor;

pub const FASHION_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
pub const DIGIT_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// How raw 0-255 pixels map to network inputs: x = pixel·scale + offset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputNorm {
    pub scale: f32,
    pub offset: f32,
}

impl Default for InputNorm {
    fn default() -> Self {
        InputNorm { scale: 1.0 / 255.0, offset: 0.0 }
    }
}

/// Which of the two datasets (or their layout) a directory holds; decides class names and how
/// users' own pictures are preprocessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetKind {
    Mnist,
    FashionMnist,
}

impl DatasetKind {
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
        }
    }
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "mnist" => Some(DatasetKind::Mnist),
            "fashion-mnist" | "fashion_mnist" | "fashionmnist" => Some(DatasetKind::FashionMnist),
            _ => None,
        }
    }
    pub fn class_names(self) -> Vec<String> {
        let names: &[&str] = match self {
            DatasetKind::Mnist => &DIGIT_CLASSES,
            DatasetKind::FashionMnist => &FASHION_CLASSES,
        };
        names.iter().map(|s| s.to_string()).collect()
    }
}

/// Images (n, height, width) as bytes 0-255 and their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub height: usize,
    pub width: usize,
    pub classes: Vec<String>,
}

impl Dataset {
    /// Fails unless there is one label per image and every label names one of `classes`.
    pub fn new(images: Vec<u8>, labels: Vec<u8>, height: usize, width: usize, classes: Vec<String>) -> Result<Self> {
        let pixels = height.checked_mul(width);
        if pixels.and_then(|p| p.checked_mul(labels.len())) != Some(images.len()) {
            return Err(Error::Data(format!(
                "{} images of {height}x{width} but {} labels",
                images.len() / pixels.unwrap_or(usize::MAX).max(1),
                labels.len()
            )));
        }
        if let Some(i) = labels.iter().position(|&l| l as usize >= classes.len()) {
            return Err(Error::Data(format!(
                "label {} at index {i} is outside the {} classes (0-{})",
                labels[i],
                classes.len(),
                classes.len().saturating_sub(1)
            )));
        }
        Ok(Dataset { images, labels, height, width, classes })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn pixels_per_image(&self) -> usize {
        self.height * self.width
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.pixels_per_image();
        &self.images[i * n..(i + 1) * n]
    }

    /// Starts loading image indices[k] into the cache, if there is one: batches are drawn in
    /// random order, which the hardware prefetcher cannot guess, and waiting for each image's
    /// first lines took three quarters of filling an MLP batch (`perf`).
    fn prefetch(&self, indices: &[u32], k: usize) {
        let Some(&i) = indices.get(k) else { return };
        #[cfg(target_arch = "x86_64")]
        for line in self.image(i as usize).chunks(64) {
            // SAFETY: SSE is part of x86-64, and a prefetch only hints: it neither faults nor
            // changes memory; the address is inside the slice anyway.
            unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr().cast()) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = i;
    }

    /// The first `n` examples (all if fewer).
    pub fn take(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.images.truncate(n * self.pixels_per_image());
        self
    }

    /// Splits off a validation set of `n` examples chosen at random by `seed`; returns (rest, validation).
    pub fn split_validation(self, n: usize, seed: u64) -> (Dataset, Dataset) {
        let mut order: Vec<usize> = (0..self.len()).collect();
        Rng::stream(seed, 7).shuffle(&mut order);
        let (val, rest) = order.split_at(n.min(order.len()));
        let pick = |idx: &[usize]| {
            let mut sorted = idx.to_vec();
            sorted.sort_unstable();
            Dataset {
                images: sorted.iter().flat_map(|&i| self.image(i).iter().copied()).collect(),
                labels: sorted.iter().map(|&i| self.labels[i]).collect(),
                height: self.height,
                width: self.width,
                classes: self.classes.clone(),
            }
        };
        (pick(rest), pick(val))
    }

    /// Count of examples per class.
    pub fn label_histogram(&self) -> Vec<usize> {
        let mut h = vec![0; self.classes.len()];
        for &l in &self.labels {
            h[l as usize] += 1;
        }
        h
    }

    /// Writes examples `indices` into `input` (n, 1, h, w) as x/255, and their labels into `labels`.
    /// `input` must already have the batch shape (the model's input buffer).
    pub fn fill_batch(&self, indices: &[u32], input: &mut Tensor, labels: &mut Vec<u32>) {
        self.fill_batch_normalised(indices, input, labels, 1.0 / 255.0, 0.0);
    }

    /// [`Dataset::fill_batch`] as pixel·scale + offset (a model file's input normalisation; with
    /// offset 0 the same values as x·(1/255)).
    pub fn fill_batch_normalised(
        &self,
        indices: &[u32],
        input: &mut Tensor,
        labels: &mut Vec<u32>,
        scale: f32,
        offset: f32,
    ) {
        let n = self.pixels_per_image();
        labels.clear();
        for (k, (&i, dst)) in indices.iter().zip(input.data_mut().chunks_mut(n)).enumerate() {
            self.prefetch(indices, k + PREFETCH_AHEAD);
            crate::ops::cpu::elementwise::pixels_to_f32(self.image(i as usize), scale, offset, dst);
            labels.push(self.labels[i as usize] as u32);
        }
    }
}

/// How many images ahead of the one being converted [`Dataset::prefetch`] asks for.
const PREFETCH_AHEAD: usize = 4;

/// How one training image is moved before it is used: shifted by (dx, dy) pixels (vacated pixels
/// become background, 0) and optionally mirrored left-right first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Jitter {
    pub dx: i32,
    pub dy: i32,
    pub flip: bool,
    /// A rectangle of the output set to 0 (random erasing): (top, left, height, width).
    pub erase: Option<[usize; 4]>,
}

impl Dataset {
    /// [`Dataset::fill_batch`] with each image moved by its [`Jitter`] on the way (augmentation):
    /// output pixel (y, x) reads source pixel (y - dy, x' - dx), x' mirrored when `flip`.
    pub fn fill_batch_jittered(&self, indices: &[u32], jitter: &[Jitter], input: &mut Tensor, labels: &mut Vec<u32>) {
        let (h, w) = (self.height as i32, self.width as i32);
        labels.clear();
        let images = indices.iter().zip(jitter).zip(input.data_mut().chunks_mut(self.pixels_per_image()));
        for (k, ((&i, j), dst)) in images.enumerate() {
            self.prefetch(indices, k + PREFETCH_AHEAD);
            let src = self.image(i as usize);
            for y in 0..h {
                let sy = y - j.dy;
                for x in 0..w {
                    let sx = x - j.dx;
                    let sx = if j.flip { w - 1 - sx } else { sx };
                    let inside = (0..h).contains(&sy) && (0..w).contains(&sx);
                    dst[(y * w + x) as usize] =
                        if inside { src[(sy * w + sx) as usize] as f32 * (1.0 / 255.0) } else { 0.0 };
                }
            }
            if let Some([top, left, eh, ew]) = j.erase {
                for row in dst.chunks_mut(w as usize).skip(top).take(eh) {
                    row[left..(left + ew).min(w as usize)].fill(0.0);
                }
            }
            labels.push(self.labels[i as usize] as u32);
        }
    }
}

/// A dataset's train and test sets; either may be absent (a folder holding only the test set).
#[derive(Clone, Debug)]
pub struct Splits {
    pub kind: DatasetKind,
    pub train: Option<Dataset>,
    pub test: Option<Dataset>,
    /// Where it came from, for messages.
    pub origin: String,
    /// The file holding each split's images (its CSV file in that layout), for messages.
    pub train_source: Option<String>,
    pub test_source: Option<String>,
}

impl Splits {
    pub fn train(&self) -> Result<&Dataset> {
        self.train.as_ref().ok_or_else(|| {
            Error::Data(format!(
                "{} holds no training set (only a test set): no train-images-idx3-ubyte[.gz] and \
                 train-labels-idx1-ubyte[.gz], nor a Kaggle {}_train.csv",
                self.origin,
                self.kind.name()
            ))
        })
    }
    pub fn test(&self) -> Result<&Dataset> {
        self.test.as_ref().ok_or_else(|| {
            Error::Data(format!(
                "{} holds no test set: no t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz], nor a \
                 Kaggle {}_test.csv",
                self.origin,
                self.kind.name()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_must_name_a_class() {
        let classes = || vec!["a".to_string(), "b".to_string(), "c".to_string()];
        assert!(Dataset::new(vec![0; 8], vec![0, 2], 2, 2, classes()).is_ok());
        let m = Dataset::new(vec![0; 12], vec![0, 2, 3], 2, 2, classes()).unwrap_err().to_string();
        assert_eq!(m, "label 3 at index 2 is outside the 3 classes (0-2)");
        let m = Dataset::new(vec![0; 8], vec![1, 7], 2, 2, vec![]).unwrap_err().to_string();
        assert!(m.contains("label 1 at index 0"), "{m}");
        let m = Dataset::new(vec![0; 8], vec![1], 2, 2, classes()).unwrap_err().to_string();
        assert_eq!(m, "2 images of 2x2 but 1 labels");
        assert!(Dataset::new(vec![], vec![0], usize::MAX, 2, classes()).is_err());
    }

    #[test]
    fn jitter_shifts_and_mirrors() {
        // One 3x3 image with pixels 1..9 (as 255ths).
        let d = Dataset::new((1..=9).collect(), vec![4], 3, 3, vec!["a".into(); 10]).unwrap();
        let mut x = Tensor::zeros(&[1, 1, 3, 3]);
        let mut labels = Vec::new();
        let mut px = |j: Jitter| {
            d.fill_batch_jittered(&[0], &[j], &mut x, &mut labels);
            x.data().iter().map(|v| (v * 255.0).round() as u8).collect::<Vec<_>>()
        };
        assert_eq!(px(Jitter::default()), vec![1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let j = |dx, dy, flip| Jitter { dx, dy, flip, erase: None };
        assert_eq!(px(j(1, 0, false)), vec![0, 1, 2, 0, 4, 5, 0, 7, 8]);
        assert_eq!(px(j(0, -1, false)), vec![4, 5, 6, 7, 8, 9, 0, 0, 0]);
        assert_eq!(px(j(0, 0, true)), vec![3, 2, 1, 6, 5, 4, 9, 8, 7]);
        assert_eq!(px(j(1, 1, true)), vec![0, 0, 0, 0, 3, 2, 0, 6, 5]);
        // Erasing applies to the output, after the shift and the mirror.
        assert_eq!(px(Jitter { erase: Some([1, 1, 2, 1]), ..j(0, 0, true) }), vec![3, 2, 1, 6, 0, 4, 9, 0, 7]);
        assert_eq!(labels, vec![4]);
    }
}
