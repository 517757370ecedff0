//! The opaque `cursor` of a list ordered newest first by `(created_at, id)`:
//! the last item's two keys, base64url. One this API did not give out is
//! refused by name.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use taskflow_schemas::ErrorBody;
use uuid::Uuid;

pub fn encode(created_at: DateTime<Utc>, id: Uuid) -> String {
    let mut bytes = created_at.timestamp_micros().to_be_bytes().to_vec();
    bytes.extend_from_slice(id.as_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn decode(cursor: &str) -> Result<(DateTime<Utc>, Uuid), ErrorBody> {
    let refused = || ErrorBody::refused("cursor", "is not a cursor this API gave out");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| refused())?;
    let (micros, id) = bytes.split_at_checked(8).ok_or_else(refused)?;
    let micros = i64::from_be_bytes(micros.try_into().map_err(|_| refused())?);
    let id = Uuid::from_slice(id).map_err(|_| refused())?;
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(refused)?;
    Ok((at, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused_by_name() {
        let at = DateTime::from_timestamp_micros(1_800_000_000_123_456).unwrap();
        let id = Uuid::now_v7();
        assert_eq!(decode(&encode(at, id)).unwrap(), (at, id));
        for garbage in [
            "",
            "AAAA",
            "not base64!",
            &URL_SAFE_NO_PAD.encode([0u8; 25]),
        ] {
            let refused = decode(garbage).unwrap_err();
            assert_eq!(refused.field.as_deref(), Some("cursor"), "{garbage}");
        }
    }
}
