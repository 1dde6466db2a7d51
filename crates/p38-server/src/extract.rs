//! Extractors whose rejections speak the API's error shape: JSON bodies
//! (syntax errors are 400, schema errors 422 naming the field, oversized
//! bodies 413), query strings, and the bearer token.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use p38_core::Error;
use p38_core::auth::Principal;

use crate::AppState;
use crate::error::ApiError;

/// A JSON request body.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let mime = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            });
        if !is_json {
            return Err(Error::Malformed(
                "send the body as JSON with the header Content-Type: application/json".into(),
            )
            .into());
        }
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(ApiJson).map_err(ApiError)
    }
}

/// An optional JSON request body: none, only whitespace, or `null` is
/// `None`.
pub struct OptionalApiJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalApiJson(None));
        }
        parse_json::<Option<T>>(&bytes)
            .map(OptionalApiJson)
            .map_err(ApiError)
    }
}

/// The body's bytes; one larger than the server accepts is a 413 in the
/// API's shape.
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Error> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            Error::TooLarge {
                field: None,
                message: "request body is larger than the server accepts (see P38_MAX_BODY_BYTES)"
                    .into(),
            }
        } else {
            Error::Malformed(format!("could not read the request body: {e}"))
        }
    })
}

/// Path parameters (`{id}`, `{name}`): a segment that is not UTF-8 once
/// percent-decoded is a 422 naming the parameter, in the API's shape.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let (field, message) = match e.kind() {
                    ErrorKind::InvalidUtf8InPathParam { key } => (
                        Some(key.clone()),
                        format!("{key} must be UTF-8 text once percent-decoded"),
                    ),
                    ErrorKind::ParseErrorAtKey {
                        key,
                        value,
                        expected_type,
                    } => (
                        Some(key.clone()),
                        api_words(&format!("{key}: {value:?}: expected {expected_type}")),
                    ),
                    other => (None, api_words(&other.to_string())),
                };
                Err(ApiError(Error::Validation { field, message }))
            }
            Err(e) => Err(ApiError(Error::internal_source(
                "cannot read the path parameters",
                e,
            ))),
        }
    }
}

/// Refuses a NUL character (`\u0000`) in any string or key of the body,
/// naming where it is: no stored text may hold one (PostgreSQL refuses it,
/// and it cuts strings short in C code). Only bodies that spell `u0000`
/// at all are parsed for the check.
fn refuse_nul(bytes: &[u8]) -> Result<(), Error> {
    if !bytes.windows(5).any(|w| w == b"u0000") {
        return Ok(());
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(()); // not JSON: the parse below says so
    };
    fn find(v: &serde_json::Value, path: String) -> Option<String> {
        match v {
            serde_json::Value::String(s) if s.contains('\0') => Some(path),
            serde_json::Value::Array(a) => a
                .iter()
                .enumerate()
                .find_map(|(i, x)| find(x, format!("{path}[{i}]"))),
            serde_json::Value::Object(m) => m.iter().find_map(|(k, x)| {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if k.contains('\0') {
                    Some(p)
                } else {
                    find(x, p)
                }
            }),
            _ => None,
        }
    }
    match find(&v, String::new()) {
        Some(field) => Err(Error::validation(
            if field.is_empty() {
                "body".into()
            } else {
                field
            },
            "text must not contain NUL characters (\\u0000)",
        )),
        None => Ok(()),
    }
}

/// Parses JSON, telling syntax errors (400) from values that do not fit
/// the expected shape (422 with the path of the offending field).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    refuse_nul(bytes)?;
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut *de) {
        // Only whitespace may follow the value: `{...} xyz` is not JSON.
        Ok(v) => de
            .end()
            .map(|()| v)
            .map_err(|e| Error::Malformed(format!("request body is not valid JSON: {e}"))),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            match inner.classify() {
                serde_json::error::Category::Syntax
                | serde_json::error::Category::Eof
                | serde_json::error::Category::Io => Err(Error::Malformed(format!(
                    "request body is not valid JSON: {inner}"
                ))),
                serde_json::error::Category::Data => {
                    let msg = inner.to_string();
                    // serde reports unknown and missing fields at the parent
                    // path; name the field itself.
                    let field = field_from_message(&msg).map(|f| {
                        if path == "." || path == f || path.ends_with(&format!(".{f}")) {
                            if path == "." { f } else { path.clone() }
                        } else {
                            format!("{path}.{f}")
                        }
                    });
                    let field = field.unwrap_or_else(|| {
                        if path == "." {
                            String::new()
                        } else {
                            path.clone()
                        }
                    });
                    Err(Error::Validation {
                        field: (!field.is_empty()).then_some(field),
                        message: api_words(msg.split(" at line ").next().unwrap_or(&msg)),
                    })
                }
            }
        }
    }
}

fn field_from_message(msg: &str) -> Option<String> {
    for marker in ["unknown field `", "missing field `"] {
        if let Some(rest) = msg.split(marker).nth(1) {
            return rest.split('`').next().map(str::to_string);
        }
    }
    None
}

/// A query string.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded_de(q);
        de.map(ApiQuery).map_err(ApiError)
    }
}

fn serde_urlencoded_de<T: DeserializeOwned>(q: &str) -> Result<T, Error> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{q}")
            .parse()
            .map_err(|_| Error::Malformed("bad query string".into()))?,
    )
    .map(|axum::extract::Query(v)| v)
    .map_err(|e| {
        let msg = e.body_text();
        let msg = msg
            .trim_start_matches("Failed to deserialize query string: ")
            .to_string();
        // Bad values are named as `name: why` (the why may quote the
        // accepted values in backticks); unknown fields in backticks.
        let field = msg
            .split_once(": ")
            .map(|(f, _)| f)
            .filter(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .or_else(|| msg.split('`').nth(1))
            .map(str::to_string);
        Error::Validation {
            field,
            message: api_words(&msg),
        }
    })
}

/// Says what serde and the number parser say in the API's words: the
/// types a client sends (a whole number, an object), not Rust's (`u32`,
/// `struct Approve`), and the range a number must be in.
fn api_words(msg: &str) -> String {
    const WORDS: [(&str, &str); 16] = [
        ("invalid digit found in string", "expected a whole number"),
        (
            "cannot parse integer from empty string",
            "expected a whole number, got nothing",
        ),
        (
            "number too large to fit in target type",
            "the number is too large",
        ),
        (
            "number too small to fit in target type",
            "the number is too small",
        ),
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
        (
            "expected u64",
            "expected a whole number from 0 to 18446744073709551615",
        ),
        (
            "expected usize",
            "expected a whole number from 0 to 18446744073709551615",
        ),
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a map", "expected a JSON object"),
        ("expected a sequence", "expected a JSON array"),
        ("expected a boolean", "expected true or false"),
        ("invalid type: ", ""),
    ];
    let mut out = msg.to_string();
    for (rust, api) in WORDS {
        out = out.replace(rust, api);
    }
    // `expected struct Approve` (or `enum`, `tuple`): a JSON object or value.
    for kind in ["struct ", "enum "] {
        while let Some(at) = out.find(&format!("expected {kind}")) {
            let start = at + "expected ".len();
            let end = out[start + kind.len()..]
                .find(|c: char| !c.is_alphanumeric() && c != '_')
                .map_or(out.len(), |e| start + kind.len() + e);
            let what = if kind == "struct " {
                "a JSON object"
            } else {
                "one of the documented values"
            };
            out.replace_range(start..end, what);
        }
    }
    out
}

/// The authenticated caller, from `Authorization: Bearer <token>`.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            Error::Unauthorized(
                "missing Authorization header; send Authorization: Bearer <token>".into(),
            )
        })?;
        let text = header
            .to_str()
            .map_err(|_| Error::Unauthorized("malformed Authorization header".into()))?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .ok_or_else(|| Error::Unauthorized("Authorization must be: Bearer <token>".into()))?;
        Ok(Auth(state.app.authenticate(token.trim()).await?))
    }
}

/// Parses a numeric path id, naming the parameter when it is not a number.
/// Every id is a positive whole number, so `abc`, `-1` and `0` answer
/// alike.
pub fn parse_id(what: &'static str, s: &str) -> Result<i64, Error> {
    s.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        Error::validation(
            "id",
            format!("{what} id must be a positive whole number, got {s:?}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct S {
        name: String,
        n: Option<u32>,
    }

    #[test]
    fn json_errors_name_fields() {
        assert!(matches!(parse_json::<S>(b"{"), Err(Error::Malformed(_))));
        assert!(matches!(
            parse_json::<S>(br#"{"name": "a"} xyz"#),
            Err(Error::Malformed(_))
        ));
        assert!(parse_json::<S>(b"{\"name\": \"a\"}  \n").is_ok());
        let e = parse_json::<S>(br#"{"name": "a", "nn": 1}"#).unwrap_err();
        assert_eq!(e.field(), Some("nn"));
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Outer {
            inner: S,
        }
        let e = parse_json::<Outer>(br#"{"inner": {"name": "a", "zz": 1}}"#).unwrap_err();
        assert_eq!(e.field(), Some("inner.zz"));
        let e = parse_json::<Outer>(br#"{"inner": {}}"#).unwrap_err();
        assert_eq!(e.field(), Some("inner.name"));
        let e = parse_json::<S>(br#"{"n": 1}"#).unwrap_err();
        assert_eq!(e.field(), Some("name"));
        let e = parse_json::<S>(br#"{"name": 5}"#).unwrap_err();
        assert_eq!(e.field(), Some("name"));
        let e = parse_json::<S>(br#"{"name": "x", "n": -1}"#).unwrap_err();
        assert_eq!(e.field(), Some("n"));
        assert!(
            e.to_string()
                .contains("expected a whole number from 0 to 4294967295"),
            "{e}"
        );
        let e = parse_json::<Outer>(br#"{"inner": 3}"#).unwrap_err();
        assert!(e.to_string().contains("expected a JSON object"), "{e}");
        assert!(!e.to_string().contains("struct"), "{e}");
    }

    #[test]
    fn query_errors_speak_the_api_language() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Q {
            limit: Option<u32>,
        }
        for (q, words) in [
            ("limit=abc", "expected a whole number"),
            ("limit=99999999999", "the number is too large"),
            ("limit=-1", "expected a whole number"),
        ] {
            let e = serde_urlencoded_de::<Q>(q).unwrap_err();
            assert_eq!(e.field(), Some("limit"), "{q}: {e}");
            let text = e.to_string();
            assert!(text.contains(words), "{q}: {text}");
            assert!(
                !text.contains("u32") && !text.contains("invalid digit"),
                "{q}: {text}"
            );
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Keep {
            keep_workspace: Option<bool>,
        }
        let e = serde_urlencoded_de::<Keep>("keep_workspace=maybe").unwrap_err();
        assert_eq!(e.field(), Some("keep_workspace"), "{e}");
        assert!(parse_id("task", "-1").is_err() && parse_id("task", "abc").is_err());
        assert_eq!(parse_id("task", "7").unwrap(), 7);
    }
}
