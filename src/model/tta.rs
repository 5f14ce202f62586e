//! Test-time augmentation: which views of an input a prediction averages over.

use serde::{Deserialize, Serialize};

/// How a model makes its predictions. A network trained on left-right mirrored images (clothing)
/// classifies a picture and its mirror image alike only on average; averaging the class
/// probabilities of both views removes some of that noise, at twice the inference cost. Whether it
/// helps is a property of the trained model, chosen on a validation split and recorded in its file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tta {
    /// The input as it is.
    #[default]
    #[serde(rename = "none")]
    None,
    /// The mean of the input's and its left-right mirror image's probabilities.
    #[serde(rename = "hflip")]
    HFlip,
}

impl Tta {
    pub const NAMES: [&'static str; 2] = ["none", "hflip"];

    pub fn name(self) -> &'static str {
        match self {
            Tta::None => "none",
            Tta::HFlip => "hflip",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "none" => Some(Tta::None),
            "hflip" => Some(Tta::HFlip),
            _ => None,
        }
    }
}
