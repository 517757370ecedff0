//! Partial updates: a field that is absent stays as it is, a field that is
//! `null` is cleared, a field with a value is set.

use serde::{Deserialize, Deserializer};

/// Use as `#[serde(default, deserialize_with = "patch::nullable")]` on an
/// `Option<Option<T>>`: absent → `None`, `null` → `Some(None)`.
pub fn nullable<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
