//! HTTP helpers: JSON answers, `Status` failure bodies as the API reference writes
//! them, query parameters, label and field selectors.

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;

/// Body of every answer.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A JSON answer.
pub fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)).boxed_unsync())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

/// A `Status` failure answer (`kind: Status`, `status: Failure`, reason, details).
pub fn status_response(
    code: u16,
    reason: &str,
    message: &str,
    details: Option<Value>,
) -> Response<Body> {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(d) = details {
        body["details"] = d;
    }
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &body,
    )
}

/// 404 for a missing object: `pods "x" not found`.
pub fn not_found(resource: &str, name: &str) -> Response<Body> {
    status_response(
        404,
        "NotFound",
        &format!("{resource} \"{name}\" not found"),
        Some(json!({"name": name, "kind": resource})),
    )
}

/// 409 for a name already taken.
pub fn already_exists(resource: &str, name: &str) -> Response<Body> {
    status_response(
        409,
        "AlreadyExists",
        &format!("{resource} \"{name}\" already exists"),
        Some(json!({"name": name, "kind": resource})),
    )
}

/// 422 for an invalid object.
pub fn invalid(kind: &str, name: &str, field: &str, why: &str) -> Response<Body> {
    status_response(
        422,
        "Invalid",
        &format!("{kind} \"{name}\" is invalid: {field}: {why}"),
        Some(
            json!({"name": name, "kind": kind, "causes": [{"reason": "FieldValueInvalid", "message": why, "field": field}]}),
        ),
    )
}

/// 400 for a request the server cannot use.
pub fn bad_request(message: &str) -> Response<Body> {
    status_response(400, "BadRequest", message, None)
}

/// The query parameters of a URI.
pub fn query(q: Option<&str>) -> BTreeMap<String, String> {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// True when a boolean query parameter is set (`true` or `1`).
pub fn flag(q: &BTreeMap<String, String>, key: &str) -> bool {
    matches!(q.get(key).map(String::as_str), Some("true" | "1"))
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed label selector (`a=b,c!=d,e,!f,g in (x,y)`).
#[derive(Debug, Clone, Default)]
pub struct Selector(Vec<Requirement>);

fn split_top(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

impl Selector {
    /// Parses a label selector; `Err` names what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let set = |rest: &str| -> Vec<String> {
                rest.trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .split(',')
                    .map(|v| v.trim().to_string())
                    .collect()
            };
            if let Some((k, v)) = part.split_once("!=") {
                reqs.push(Requirement::NotEquals(k.trim().into(), v.trim().into()));
            } else if let Some((k, v)) = part.split_once("==") {
                reqs.push(Requirement::Equals(k.trim().into(), v.trim().into()));
            } else if let Some((k, v)) = part.split_once('=') {
                reqs.push(Requirement::Equals(k.trim().into(), v.trim().into()));
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                reqs.push(Requirement::NotIn(k.trim().into(), set(rest)));
            } else if let Some((k, rest)) = part.split_once(" in ") {
                reqs.push(Requirement::In(k.trim().into(), set(rest)));
            } else if let Some(k) = part.strip_prefix('!') {
                reqs.push(Requirement::NotExists(k.trim().into()));
            } else if part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                reqs.push(Requirement::Exists(part));
            } else {
                return Err(format!("unable to parse requirement: {part:?}"));
            }
        }
        Ok(Selector(reqs))
    }

    /// True when `labels` satisfy every requirement.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let empty = BTreeMap::new();
        let l = labels.unwrap_or(&empty);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => l.get(k) == Some(v),
            Requirement::NotEquals(k, v) => l.get(k) != Some(v),
            Requirement::Exists(k) => l.contains_key(k),
            Requirement::NotExists(k) => !l.contains_key(k),
            Requirement::In(k, vs) => l.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => l.get(k).is_none_or(|v| !vs.contains(v)),
        })
    }
}

/// A parsed field selector over an object's JSON (`metadata.name=x,involvedObject.name!=y`).
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses a field selector.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some((k, v)) = part.split_once("!=") {
                out.push((k.into(), false, v.into()));
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                out.push((k.into(), true, v.into()));
            } else {
                return Err(format!("invalid field selector: {part:?}"));
            }
        }
        Ok(FieldSelector(out))
    }

    /// True when the object's fields satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, eq, want)| {
            let mut v = object;
            for seg in path.split('.') {
                v = &v[seg];
            }
            let got = v.as_str().unwrap_or("");
            (got == want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_like_kubernetes() {
        let mut l = BTreeMap::new();
        l.insert("distarch.run".to_string(), "r1".to_string());
        l.insert(
            "app.kubernetes.io/managed-by".to_string(),
            "distarch".to_string(),
        );
        let ok = |s: &str| Selector::parse(s).unwrap().matches(Some(&l));
        assert!(ok("distarch.run=r1"));
        assert!(ok("distarch.run==r1,app.kubernetes.io/managed-by=distarch"));
        assert!(!ok("distarch.run=r2"));
        assert!(ok("distarch.run!=r2"));
        assert!(ok("distarch.run"));
        assert!(!ok("!distarch.run"));
        assert!(ok("distarch.run in (r0, r1)"));
        assert!(!ok("distarch.run notin (r0,r1)"));
        assert!(ok(""));
        let f = FieldSelector::parse("involvedObject.name=p1").unwrap();
        assert!(f.matches(&serde_json::json!({"involvedObject": {"name": "p1"}})));
        assert!(!f.matches(&serde_json::json!({"involvedObject": {"name": "p2"}})));
    }
}
