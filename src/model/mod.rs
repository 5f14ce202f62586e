//! Networks: the architecture spec, the layer stack built from it, and the original's presets.

pub mod presets;
mod sequential;
pub mod spec;
mod tta;

pub use presets::{Augment, Preset, TrainConfig, preset};
pub use sequential::Sequential;
pub use spec::{LayerSpec, ModelSpec};
pub use tta::Tta;
