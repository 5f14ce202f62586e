//! Networks: the architecture spec, the layer stack built from it, and the presets' networks
//! (their training recipes are in [`crate::train`]).

pub mod presets;
mod sequential;
pub mod spec;
mod tta;

pub use sequential::Sequential;
pub use spec::{LayerSpec, ModelSpec};
pub use tta::Tta;
