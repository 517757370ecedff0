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

/// An integer, also when written with a zero fraction (`61.0`): JSON Schema
/// counts that as an integer too, so a client may send it.
pub fn whole<'de, T, D>(deserializer: D) -> Result<T, D::Error>
where
    T: TryFrom<i64>,
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Integer(i64),
        Float(f64),
    }
    let value = match Number::deserialize(deserializer)? {
        Number::Integer(value) => value,
        Number::Float(value) if value.fract() == 0.0 && value.abs() < 9.0e15 => value as i64,
        Number::Float(value) => {
            return Err(serde::de::Error::custom(format!(
                "{value} is not a whole number"
            )));
        }
    };
    T::try_from(value).map_err(|_| serde::de::Error::custom(format!("{value} is out of range")))
}

/// [`whole`] for an optional field: `#[serde(default, deserialize_with = "patch::whole_opt")]`.
pub fn whole_opt<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
where
    T: TryFrom<i64>,
    D: Deserializer<'de>,
{
    Option::<serde_json::Value>::deserialize(deserializer)?
        .map(|value| whole(value).map_err(serde::de::Error::custom))
        .transpose()
}

/// [`whole`] for a patch field: absent → `None`, `null` → `Some(None)`.
pub fn whole_nullable<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: TryFrom<i64>,
    D: Deserializer<'de>,
{
    whole_opt(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Minutes {
        #[serde(deserialize_with = "whole")]
        value: i32,
    }

    #[test]
    fn whole_numbers_may_carry_a_zero_fraction() {
        let read = |json: &str| serde_json::from_str::<Minutes>(json).map(|m| m.value);
        assert_eq!(read(r#"{"value": 61}"#).unwrap(), 61);
        assert_eq!(read(r#"{"value": 61.0}"#).unwrap(), 61);
        assert!(read(r#"{"value": 61.5}"#).is_err());
        assert!(read(r#"{"value": 1e12}"#).is_err());
        assert!(read(r#"{"value": "61"}"#).is_err());
    }
}
