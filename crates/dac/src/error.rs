//! Errors of this crate; each names the field, step or tensor at fault.

/// Anything [`Dac`](crate::Dac) or the storage can refuse.
#[derive(Debug, thiserror::Error)]
pub enum DacError {
    #[error("config: {0}")]
    Config(String),
    #[error("rollout storage: {0}")]
    Storage(String),
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
    #[error("loss: {0}")]
    Loss(String),
    /// A data-parallel reduction failed (see [`GradSync`](crate::update::GradSync)).
    #[error("collective: {0}")]
    Collective(String),
}

/// Errors a [`TextPolicy`](crate::TextPolicy) implementation reports.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error("bad input: {0}")]
    Input(String),
    #[error("model: {0}")]
    Model(String),
}
