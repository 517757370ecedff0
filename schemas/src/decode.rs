//! Decoding a JSON body into a wire type, with errors that name the field.

use std::borrow::Cow;

use serde::de::value::MapDeserializer;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::commands::AsUser;
use crate::error::ErrorBody;

/// Decodes `bytes`; a failure is a `validation_failed` error naming the
/// offending field where there is one. A string holding NUL is refused too
/// (no field needs it, and Postgres cannot store it in `text`).
pub fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ErrorBody> {
    borrowed(bytes)
}

/// [`json`] for a type that borrows from `bytes`.
fn borrowed<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ErrorBody> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    let decoded = serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            // serde_json reports a wrong type for an enum (`"priority": 3`)
            // as a syntax error too: at a field, say the value is wrong.
            return match path.as_str() {
                "." | "" => ErrorBody::new(
                    crate::ErrorCode::ValidationFailed,
                    format!("body is not valid JSON: {inner}"),
                ),
                field => ErrorBody::invalid(field, format!("not a valid value ({inner})")),
            };
        }
        from_serde_message(&path, &inner.to_string())
    })?;
    if let Some(field) = field_with_nul(bytes) {
        return Err(ErrorBody::invalid(
            &field,
            "must not contain NUL characters",
        ));
    }
    Ok(decoded)
}

/// The path of the first string or key holding NUL (`\u0000`), if any. The
/// byte search keeps the common case free; only a body that has the escape
/// is walked.
pub fn field_with_nul(bytes: &[u8]) -> Option<String> {
    const ESCAPE: &[u8] = b"\\u0000";
    bytes
        .windows(ESCAPE.len())
        .any(|window| window == ESCAPE)
        .then_some(())?;
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    nul_path(&value, String::new())
}

fn nul_path(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    let named = |path: &str| {
        if path.is_empty() {
            ".".to_owned()
        } else {
            path.to_owned()
        }
    };
    match value {
        Value::String(text) => text.contains('\0').then(|| named(&path)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| nul_path(item, format!("{path}[{index}]"))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let field = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if key.contains('\0') {
                return Some(named(&path));
            }
            nul_path(item, field)
        }),
        _ => None,
    }
}

/// Decodes a request made on a user's behalf: `actor_id` (and `actor_role`)
/// beside the fields of `B`, which keeps its refusal of unknown fields
/// (serde's `flatten` would lose it). One pass splits the object into its
/// fields, each left as the JSON text it is; the actor's are read, and `B`
/// is read from the rest, each value parsed once.
pub fn command<B: DeserializeOwned>(bytes: &[u8]) -> Result<AsUser<B>, ErrorBody> {
    let Fields(fields) = borrowed::<Fields>(bytes)?;
    let mut actor_id = None;
    let mut actor_role = None;
    let mut rest = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        match name.as_ref() {
            "actor_id" => actor_id = Some(value),
            "actor_role" => actor_role = Some(value),
            _ => rest.push((name, value)),
        }
    }
    let actor_id =
        actor_id.ok_or_else(|| ErrorBody::invalid("actor_id", "missing field `actor_id`"))?;
    let actor_id = serde_json::from_str(actor_id.get())
        .map_err(|_| ErrorBody::invalid("actor_id", "must be a user id (UUID)"))?;
    let actor_role = match actor_role {
        None => Default::default(),
        Some(role) => serde_json::from_str(role.get())
            .map_err(|_| ErrorBody::invalid("actor_role", "is admin or member"))?,
    };
    let body = MapDeserializer::<_, serde_json::Error>::new(rest.into_iter());
    let body = serde_path_to_error::deserialize(body).map_err(|error| {
        from_serde_message(&error.path().to_string(), &error.into_inner().to_string())
    })?;
    Ok(AsUser {
        actor_id,
        actor_role,
        body,
    })
}

/// A JSON object's fields in order, each value as its own JSON text.
struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Fields<'de>;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(name) = map.next_key::<Cow<'de, str>>()? {
                    fields.push((name, map.next_value::<&'de RawValue>()?));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// Decodes a URL query string the same way; a parameter whose value is
/// not UTF-8 once percent-decoded, or holds NUL, is refused by name.
pub fn query<T: DeserializeOwned>(query: &str) -> Result<T, ErrorBody> {
    for (key, value) in form_urlencoded_parse(query) {
        // Percent-decoding replaces bytes that are not UTF-8 with U+FFFD.
        if key.contains('\u{fffd}') || value.contains('\u{fffd}') {
            return Err(ErrorBody::invalid(&key, "is not valid UTF-8"));
        }
        if key.contains('\0') || value.contains('\0') {
            return Err(ErrorBody::invalid(&key, "must not contain NUL characters"));
        }
    }
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        from_serde_message(&error.path().to_string(), &error.into_inner().to_string())
    })
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

/// Serde says `missing field `x`` or `unknown field `x`` at the parent's
/// path; lift the name out so the field is always named.
fn from_serde_message(path: &str, message: &str) -> ErrorBody {
    let message = message.split(" at line ").next().unwrap_or(message);
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    let field = match (named, path) {
        (Some(name), "." | "") => name.to_owned(),
        (Some(name), path) if path == name || path.ends_with(&format!(".{name}")) => {
            path.to_owned()
        }
        (Some(name), parent) => format!("{parent}.{name}"),
        (None, "." | "") => {
            return ErrorBody::new(crate::ErrorCode::ValidationFailed, message.to_owned());
        }
        (None, path) => path.to_owned(),
    };
    ErrorBody::invalid(&field, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::{NewTask, TaskQuery};

    #[test]
    fn a_wrong_type_names_the_field() {
        let error = json::<NewTask>(br#"{"title": "x", "priority": "whenever"}"#).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("priority"));
    }

    #[test]
    fn a_missing_or_unknown_field_is_named() {
        let error = json::<NewTask>(br#"{"description": "x"}"#).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("title"));
        let error = json::<NewTask>(br#"{"title": "x", "colour": "red"}"#).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("colour"));
    }

    #[test]
    fn broken_json_is_a_validation_error() {
        let error = json::<NewTask>(b"{").unwrap_err();
        assert_eq!(error.code, crate::ErrorCode::ValidationFailed);
    }

    #[test]
    fn a_number_for_an_enum_names_the_field() {
        let error = json::<NewTask>(br#"{"title": "x", "priority": 3}"#).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("priority"), "{error}");
    }

    #[test]
    fn nul_anywhere_is_refused_naming_the_field() {
        let cases: [(&[u8], &str); 4] = [
            (br#"{"title": "a\u0000b"}"#, "title"),
            (
                br#"{"title": "x", "labels": ["ok", "b\u0000"]}"#,
                "labels[1]",
            ),
            (
                br#"{"title": "x", "recurrence": {"frequency": "daily", "anchor": "due\u0000"}}"#,
                "recurrence.anchor",
            ),
            (br#"{"title": "x", "description": "\u0000"}"#, "description"),
        ];
        for (body, field) in cases {
            let error = json::<NewTask>(body).unwrap_err();
            assert_eq!(error.field.as_deref(), Some(field), "{error}");
        }
        // An escaped backslash before "u0000" is no NUL.
        assert!(json::<NewTask>(br#"{"title": "a\\u0000"}"#).is_ok());
    }

    #[test]
    fn invalid_utf8_names_the_field() {
        let error = json::<NewTask>(b"{\"title\": \"a\xff\"}").unwrap_err();
        assert_eq!(error.field.as_deref(), Some("title"), "{error}");
        let error = json::<NewTask>(br#"{"title": "\ud800"}"#).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("title"), "{error}");
        let error = query::<TaskQuery>("q=%FF").unwrap_err();
        assert_eq!(error.field.as_deref(), Some("q"));
        let error = query::<TaskQuery>("q=a%00b").unwrap_err();
        assert_eq!(error.field.as_deref(), Some("q"));
    }

    #[test]
    fn a_command_reads_its_actor_beside_the_body_and_names_what_is_wrong() {
        let actor = uuid::Uuid::now_v7();
        let ok: AsUser<NewTask> = command(
            format!(r#"{{"title": "from nats", "actor_id": "{actor}", "labels": ["a"]}}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!((ok.actor_id, ok.body.title.as_str()), (actor, "from nats"));
        assert_eq!(ok.body.labels, ["a"]);
        let refused = |body: String| command::<NewTask>(body.as_bytes()).unwrap_err();
        let field = |body: String| refused(body).field;
        assert_eq!(
            field(r#"{"title": "x"}"#.into()).as_deref(),
            Some("actor_id")
        );
        assert_eq!(
            field(r#"{"title": "x", "actor_id": "me"}"#.into()).as_deref(),
            Some("actor_id")
        );
        for (body, named) in [
            (r#""colour": "red""#, "colour"),
            (r#""priority": "whenever""#, "priority"),
            (r#""actor_role": "root""#, "actor_role"),
            (r#""labels": ["a\u0000"]"#, "labels[0]"),
        ] {
            let body = format!(r#"{{"title": "x", "actor_id": "{actor}", {body}}}"#);
            assert_eq!(field(body.clone()).as_deref(), Some(named), "{body}");
        }
        assert_eq!(
            refused("[]".into()).code,
            crate::ErrorCode::ValidationFailed
        );
        assert_eq!(
            refused(format!(r#"{{"actor_id": "{actor}"}} x"#)).code,
            crate::ErrorCode::ValidationFailed
        );
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let error = query::<TaskQuery>("status=done").unwrap_err();
        assert_eq!(error.field.as_deref(), Some("status"));
        let ok = query::<TaskQuery>("status=pending&limit=10").unwrap();
        assert_eq!(ok.limit, Some(10));
    }
}
