//! One error type for the library. Variants name the operation and what was expected, so a
//! message read without the source still says what went wrong and where.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op}: shape mismatch: {lhs:?} vs {rhs:?}")]
    ShapeMismatch { op: &'static str, lhs: Vec<usize>, rhs: Vec<usize> },

    #[error("{op}: {msg}")]
    InvalidArgument { op: &'static str, msg: String },

    #[error("invalid model spec: {0}")]
    Spec(String),

    #[error("{0}: backward called before forward")]
    NoForward(&'static str),

    /// A data or model file whose bytes are not what their format says they must be.
    #[error("{source_name}: {at}: {msg}")]
    Format { source_name: String, at: Position, msg: String },

    #[error("{0}")]
    Io(String),

    #[error(
        "training diverged at epoch {epoch}, batch {batch}: the loss became {loss} (learning rate {lr}); \
         try a lower learning rate (--lr) or a stronger decay"
    )]
    Diverged { epoch: usize, batch: usize, loss: f32, lr: f32 },

    #[error("model file {source_name}: {msg}")]
    Model { source_name: String, msg: String },

    #[error("{0}")]
    Data(String),

    /// No adapter or driver, a lost device, an allocation the device refused.
    #[error("GPU: {0}")]
    Gpu(String),
}

/// Where in a file a format error was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Start,
    Byte(u64),
    Row(u64),
    RowColumn(u64, u64),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Start => write!(f, "header"),
            Position::Byte(b) => write!(f, "byte offset {b}"),
            Position::Row(r) => write!(f, "row {r}"),
            Position::RowColumn(r, c) => write!(f, "row {r}, column {c}"),
        }
    }
}

impl Error {
    pub(crate) fn shape(op: &'static str, lhs: &[usize], rhs: &[usize]) -> Self {
        Error::ShapeMismatch { op, lhs: lhs.to_vec(), rhs: rhs.to_vec() }
    }
    pub(crate) fn arg(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument { op, msg: msg.into() }
    }
    pub(crate) fn format(source_name: impl Into<String>, at: Position, msg: impl Into<String>) -> Self {
        Error::Format { source_name: source_name.into(), at, msg: msg.into() }
    }
    pub(crate) fn model(source_name: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Model { source_name: source_name.into(), msg: msg.into() }
    }
}
