//! What every route shares in the OpenAPI document, added once instead of
//! on each route: the bearer scheme, the `X-Request-Id` header, and the
//! error statuses any route can answer (each with the error shape).
//!
//! 400 means the request does not match this document (a type, a length, a
//! pattern, a missing or unknown field); 422 means it matches, and a rule
//! that depends on other fields, on stored state or on values no schema can
//! list refused it (a reminder without a due date, a cursor this API did not
//! give out, an unknown time zone).

use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, ObjectBuilder, OpenApi, RefOr, Required, ResponseBuilder, Type};

pub struct Shared;

impl utoipa::Modify for Shared {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                complete(operation, path.contains('{'));
            }
        }
    }
}

fn complete(operation: &mut Operation, has_path_id: bool) {
    let secured = operation
        .security
        .as_ref()
        .is_some_and(|security| !security.is_empty());
    let has_body = operation.request_body.is_some();
    let mut statuses = vec![
        (
            "400",
            "the request does not match this document; `field` names what",
        ),
        ("429", "too many requests: wait for `Retry-After` seconds"),
        (
            "503",
            "a service or database is unavailable: try again after `Retry-After`",
        ),
    ];
    if secured {
        statuses.push(("401", "no valid bearer token"));
        statuses.push((
            "422",
            "valid in shape, refused by a rule; `field` names what",
        ));
    }
    if has_path_id {
        statuses.push(("404", "not found, or not yours to read"));
    }
    if has_body {
        statuses.push(("413", "the body is larger than 1 MiB"));
    }
    for (status, description) in statuses {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description));
    }
    // Every response needs a description to be valid OpenAPI 3.1.
    for response in operation.responses.responses.values_mut() {
        if let RefOr::T(response) = response
            && response.description.is_empty()
        {
            response.description = "success".into();
        }
    }
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    for parameter in parameters.iter_mut() {
        if let RefOr::T(parameter) = parameter
            && let Some(pattern) = header_pattern(&parameter.name)
        {
            parameter.schema = Some(string_matching(pattern));
        }
    }
    parameters.push(RefOr::T(request_id_parameter()));
}

/// The formats the edge enforces on the headers it reads.
fn header_pattern(name: &str) -> Option<&'static str> {
    match name {
        "If-Match" => Some(r#"^(\*|(W/)?"?[0-9]{1,18}"?)$"#),
        "Idempotency-Key" => Some("^[!-~]{1,255}$"),
        _ => None,
    }
}

fn string_matching(pattern: &str) -> RefOr<utoipa::openapi::schema::Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .into()
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "ErrorBody",
                )))),
            )
            .build(),
    )
}

fn request_id_parameter() -> Parameter {
    ParameterBuilder::new()
        .name("X-Request-Id")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "your id for this request, kept in logs and as the correlation_id of the events it causes; one is made when absent",
        ))
        .schema(Some(string_matching("^[!-~]{1,128}$")))
        .build()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use taskflow_schemas::commands::MAX_PAGE;
    use taskflow_schemas::limits::{
        MAX_DESCRIPTION, MAX_INTERVAL, MAX_LABEL, MAX_LABELS, MAX_OBSERVERS, MAX_REMINDER_OFFSET,
        MAX_SEARCH, MAX_TITLE,
    };

    /// The first value of `key` anywhere under `value` (a field's schema may
    /// sit in a `oneOf` beside `null`).
    fn find<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
        match value {
            Value::Object(fields) => fields
                .get(key)
                .or_else(|| fields.values().find_map(|inner| find(inner, key))),
            Value::Array(items) => items.iter().find_map(|inner| find(inner, key)),
            _ => None,
        }
    }

    #[test]
    fn the_document_states_the_limits_the_services_enforce() {
        let document = serde_json::to_value(crate::api().1).expect("a document");
        let schemas = &document["components"]["schemas"];
        for task in ["NewTask", "TaskPatch"] {
            let field = |name: &str| &schemas[task]["properties"][name];
            for (name, key, limit) in [
                ("title", "maxLength", json!(MAX_TITLE)),
                ("description", "maxLength", json!(MAX_DESCRIPTION)),
                ("labels", "maxItems", json!(MAX_LABELS)),
                ("observer_ids", "maxItems", json!(MAX_OBSERVERS)),
                (
                    "reminder_offset_minutes",
                    "maximum",
                    json!(MAX_REMINDER_OFFSET),
                ),
            ] {
                assert_eq!(find(field(name), key), Some(&limit), "{task}.{name}.{key}");
            }
        }
        assert_eq!(schemas["Label"]["maxLength"], json!(MAX_LABEL));
        let interval = &schemas["Recurrence"]["properties"]["interval"];
        assert_eq!(find(interval, "maximum"), Some(&json!(MAX_INTERVAL)));
        let mut pages = 0;
        for (path, operations) in document["paths"].as_object().expect("paths") {
            for (method, operation) in operations.as_object().expect("operations") {
                for parameter in operation["parameters"].as_array().into_iter().flatten() {
                    let bound = |key| find(&parameter["schema"], key).cloned();
                    match parameter["name"].as_str() {
                        Some("limit") => {
                            pages += 1;
                            assert_eq!(bound("maximum"), Some(json!(MAX_PAGE)), "{method} {path}");
                        }
                        Some("q") => {
                            assert_eq!(
                                bound("maxLength"),
                                Some(json!(MAX_SEARCH)),
                                "{method} {path}"
                            )
                        }
                        _ => {}
                    }
                }
            }
        }
        assert!(pages >= 6, "every list has a limit: {pages}");
    }
}
