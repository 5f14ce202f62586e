//! One picture's pixels to class probabilities, the path `scratchnet predict` and the browser demo
//! share: preprocessed bytes (see [`crate::data::picture`]) scaled by the model file's input
//! normalisation, a forward pass with the model's test-time augmentation, classes ranked.

use crate::error::{Error, Result};
use crate::model::{Sequential, Tta};
use crate::model_file::ModelInfo;
use crate::tensor::Tensor;

/// Probabilities of each class for one preprocessed picture (`c*h*w` bytes, the model's input).
pub fn probabilities(model: &mut Sequential, info: &ModelInfo, px: &[u8], tta: Tta) -> Result<Vec<f32>> {
    crate::tensor::ready(probabilities_async(model, info, px, tta))
}

/// [`probabilities`] for a browser, where a GPU's result is read back by awaiting.
pub async fn probabilities_async(model: &mut Sequential, info: &ModelInfo, px: &[u8], tta: Tta) -> Result<Vec<f32>> {
    let [c, h, w] = info.spec.input;
    if px.len() != c * h * w {
        return Err(Error::Data(format!("the model takes {c}x{h}x{w} inputs; {} bytes given", px.len())));
    }
    let x =
        Tensor::from_vec(&[1, c, h, w], px.iter().map(|&p| p as f32 * info.input.scale + info.input.offset).collect())?;
    model.predict_tta(&x, tta)?.to_vec_async().await
}

/// Class indices from the most to the least probable (ties: the lower index first).
pub fn ranked(probs: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&i, &j| probs[j].total_cmp(&probs[i]));
    order
}
