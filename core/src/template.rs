//! Per-instance values in a group's strings: `{id}`, `{group_id}`, `{group_count}`,
//! `{host}`, `{run_id}`, `{restart}` expand in `command` arguments, `env` values,
//! `workdir` and string `params`, like GNU parallel's `{}` or supervisord's
//! `%(process_num)s`. Expansion is plain text substitution, never a shell.
//!
//! Rules: `{{` writes a literal `{`; `{name}` with a known name is replaced;
//! `{name}` with an unknown identifier is an error (a typo would otherwise pass
//! silently), except right after `$`, where `${NAME}` is shell syntax and stays as
//! it is; any other brace (`{"a":1}`, awk's `{print $1}`, a lone `}`) is literal.

use serde_json::{Map, Value};
use std::fmt::Write as _;

/// The names that expand.
pub const PLACEHOLDERS: [&str; 6] = ["id", "group_id", "group_count", "host", "run_id", "restart"];

/// The values of one start of one instance.
#[derive(Debug, Clone, Copy)]
pub struct InstanceValues<'a> {
    /// Global id.
    pub id: u64,
    /// Index in the group.
    pub group_id: u64,
    /// Instances in the group.
    pub group_count: u64,
    /// Host label.
    pub host: &'a str,
    /// Run id.
    pub run_id: &'a str,
    /// Restarts before this start.
    pub restart: u32,
}

impl InstanceValues<'_> {
    fn write(&self, name: &str, out: &mut String) -> bool {
        // Writing to a String cannot fail.
        let _ = match name {
            "id" => write!(out, "{}", self.id),
            "group_id" => write!(out, "{}", self.group_id),
            "group_count" => write!(out, "{}", self.group_count),
            "restart" => write!(out, "{}", self.restart),
            "host" => {
                out.push_str(self.host);
                Ok(())
            }
            "run_id" => {
                out.push_str(self.run_id);
                Ok(())
            }
            _ => return false,
        };
        true
    }
}

/// True when `text` may hold something to expand (a `{`); lets callers skip work.
pub fn has_braces(text: &str) -> bool {
    text.contains('{')
}

/// One piece of a scanned string.
enum Piece<'t> {
    Literal(&'t str),
    Name(&'t str),
}

/// Walks `text`, calling `f` for each piece; returns an error naming an unknown
/// placeholder.
fn scan<'t>(text: &'t str, mut f: impl FnMut(Piece<'t>)) -> Result<(), String> {
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'{' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'{') {
            f(Piece::Literal(&text[start..i + 1]));
            i += 2;
            start = i;
            continue;
        }
        let ident_len = bytes[i + 1..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        let closes = bytes.get(i + 1 + ident_len) == Some(&b'}');
        let is_ident = ident_len > 0 && !bytes[i + 1].is_ascii_digit();
        if !(closes && is_ident) || (i > 0 && bytes[i - 1] == b'$') {
            i += 1;
            continue;
        }
        let name = &text[i + 1..i + 1 + ident_len];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder `{{{name}}}` in `{text}` (known: {}; write `{{{{` for a literal `{{`)",
                PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
            ));
        }
        f(Piece::Literal(&text[start..i]));
        f(Piece::Name(name));
        i += ident_len + 2;
        start = i;
    }
    f(Piece::Literal(&text[start..]));
    Ok(())
}

/// Checks that every placeholder in `text` is known.
pub fn check(text: &str) -> Result<(), String> {
    scan(text, |_| {})
}

/// Expands `text` with `values`. Unknown placeholders (which [`check`] rejects
/// before a run starts) are left as they are.
pub fn expand(text: &str, values: &InstanceValues<'_>) -> String {
    if !has_braces(text) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    let scanned = scan(text, |piece| match piece {
        Piece::Literal(l) => out.push_str(l),
        Piece::Name(n) => {
            values.write(n, &mut out);
        }
    });
    match scanned {
        Ok(()) => out,
        Err(_) => text.to_string(),
    }
}

/// Checks every string inside a JSON value; returns the first error.
pub fn check_json(value: &Value) -> Result<(), String> {
    match value {
        Value::String(s) => check(s),
        Value::Array(items) => items.iter().try_for_each(check_json),
        Value::Object(map) => map.values().try_for_each(check_json),
        _ => Ok(()),
    }
}

/// Expands every string inside a JSON object (keys stay as they are).
pub fn expand_json(map: &Map<String, Value>, values: &InstanceValues<'_>) -> Map<String, Value> {
    map.iter()
        .map(|(k, v)| (k.clone(), expand_value(v, values)))
        .collect()
}

fn expand_value(value: &Value, values: &InstanceValues<'_>) -> Value {
    match value {
        Value::String(s) => Value::String(expand(s, values)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| expand_value(v, values)).collect())
        }
        Value::Object(map) => Value::Object(expand_json(map, values)),
        other => other.clone(),
    }
}

/// True when any string inside the JSON value has a brace.
pub fn json_has_braces(value: &Value) -> bool {
    match value {
        Value::String(s) => has_braces(s),
        Value::Array(items) => items.iter().any(json_has_braces),
        Value::Object(map) => map.values().any(json_has_braces),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: InstanceValues<'static> = InstanceValues {
        id: 7,
        group_id: 2,
        group_count: 3,
        host: "web-1",
        run_id: "ab12",
        restart: 1,
    };

    #[test]
    fn known_names_expand() {
        assert_eq!(
            expand("--shard={group_id}/{group_count}", &V),
            "--shard=2/3"
        );
        assert_eq!(
            expand("/tmp/{run_id}-{id}.{restart}.log", &V),
            "/tmp/ab12-7.1.log"
        );
        assert_eq!(expand("{host}", &V), "web-1");
    }

    #[test]
    fn escapes_and_other_braces_stay_literal() {
        assert_eq!(expand("{{id}", &V), "{id}");
        assert_eq!(expand("{{{id}", &V), "{7");
        assert_eq!(expand(r#"{"a":{"b":1}}"#, &V), r#"{"a":{"b":1}}"#);
        assert_eq!(expand("awk '{print $1}'", &V), "awk '{print $1}'");
        assert_eq!(expand("echo ${HOME} {id}", &V), "echo ${HOME} 7");
        assert_eq!(expand("}{", &V), "}{");
        assert_eq!(expand("{1}", &V), "{1}");
    }

    #[test]
    fn unknown_names_are_errors_that_say_how_to_escape() {
        let e = check("--n={gorup_id}").unwrap_err();
        assert!(e.contains("unknown placeholder `{gorup_id}`"), "{e}");
        assert!(e.contains("`{{`"), "{e}");
        assert!(check("${PATH}:{id}").is_ok());
    }

    #[test]
    fn json_strings_expand_recursively() {
        let m: Map<String, Value> =
            serde_json::from_str(r#"{"out":"/d/{id}","n":[1,"{group_id}"],"k":{"h":"{host}"}}"#)
                .unwrap();
        let e = expand_json(&m, &V);
        assert_eq!(
            Value::Object(e).to_string(),
            r#"{"k":{"h":"web-1"},"n":[1,"2"],"out":"/d/7"}"#
        );
    }
}
