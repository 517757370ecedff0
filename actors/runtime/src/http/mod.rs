//! What a process serves over HTTP besides its API: health, readiness and
//! metrics, on a server that keeps hostile clients bounded; and the access
//! tokens the edge and the live feed check.

pub mod ops;
pub mod tokens;
