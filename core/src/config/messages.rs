//! Turning serde's and figment's wording ("expected u32", "untagged enum", nested
//! backticks) into words a user of the config file understands, and "did you mean".

use figment::error::{Actual, Kind};

/// The known name closest to `unknown` (edit distance at most a third of its length,
/// at least 1, or a case-insensitive match), if any.
pub(crate) fn closest<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = unknown.to_ascii_lowercase();
    let limit = (unknown.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Damerau-Levenshtein distance (adjacent swaps count 1), on chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// "unknown key `x`; KIND accepts: a, b, c; did you mean `y`?"
pub(crate) fn unknown_key(key: &str, what: &str, known: &[&str]) -> String {
    let mut text = format!("unknown key `{key}`");
    if known.is_empty() {
        text.push_str(&format!("; {what} accepts no keys here"));
    } else {
        text.push_str(&format!("; {what} accepts: {}", known.join(", ")));
    }
    if let Some(near) = closest(key, known) {
        text.push_str(&format!("; did you mean `{near}`?"));
    }
    text
}

/// What a value of the type serde calls `expected` is, in words; `path` is the key
/// (`instances` must be at least 1).
fn expected_in_words(path: &str, expected: &str) -> String {
    let last = path.rsplit('.').next().unwrap_or(path);
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" if last == "instances" => {
            "a whole number ≥ 1".into()
        }
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number ≥ 0".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" | "bool" => "true or false".into(),
        "a string" | "string" => "a string".into(),
        e if e.starts_with("a map") || e.starts_with("struct ") => "a table of keys".into(),
        e if e.starts_with("a sequence") => "a list".into(),
        e => e.to_string(),
    }
}

fn actual_in_words(actual: &Actual) -> String {
    match actual {
        Actual::Bool(b) => format!("`{b}`"),
        Actual::Unsigned(n) => format!("`{n}`"),
        Actual::Signed(n) => format!("`{n}`"),
        Actual::Float(n) => format!("`{n}`"),
        Actual::Char(c) => format!("`{c}`"),
        Actual::Str(s) => format!("the string {s:?}"),
        Actual::Map => "a table".into(),
        Actual::Seq => "a list".into(),
        other => other.to_string(),
    }
}

/// The message for one figment error at `path`.
pub(crate) fn describe(path: &str, kind: &Kind) -> String {
    match kind {
        Kind::Message(m) => m.clone(),
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => format!(
            "expected {}, found {}",
            expected_in_words(path, expected),
            actual_in_words(actual)
        ),
        Kind::UnknownField(field, known) => unknown_key(field, "this table", known),
        Kind::UnknownVariant(value, known) => {
            let mut text = format!(
                "unknown value `{value}`; one of: {}",
                known
                    .iter()
                    .map(|k| format!("\"{k}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if let Some(near) = closest(value, known) {
                text.push_str(&format!("; did you mean \"{near}\"?"));
            }
            text
        }
        Kind::MissingField(field) => format!("missing key `{field}`"),
        Kind::DuplicateField(field) => format!("key `{field}` is given twice"),
        Kind::USizeOutOfRange(n) => format!("{n} is too large a number here"),
        Kind::ISizeOutOfRange(n) => format!("{n} is out of range here"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_known_name() {
        let known = ["transport", "instances", "hosts", "user"];
        assert_eq!(closest("instnaces", &known), Some("instances"));
        assert_eq!(closest("host", &known), Some("hosts"));
        assert_eq!(closest("Instances", &known), Some("instances"));
        assert_eq!(closest("zzz", &known), None);
        let text = unknown_key("instnaces", "an ssh placement", &known);
        assert_eq!(
            text,
            "unknown key `instnaces`; an ssh placement accepts: transport, instances, hosts, user; did you mean `instances`?"
        );
    }

    #[test]
    fn type_errors_in_words() {
        let k = Kind::InvalidType(Actual::Str("three".into()), "u32".into());
        assert_eq!(
            describe("groups.g.instances", &k),
            "expected a whole number ≥ 1, found the string \"three\""
        );
        let k = Kind::InvalidValue(Actual::Signed(-1), "u32".into());
        assert_eq!(
            describe("groups.g.max_restarts", &k),
            "expected a whole number ≥ 0, found `-1`"
        );
        let k = Kind::UnknownField("bogus".into(), &["a", "b"]);
        assert_eq!(
            describe("groups.g", &k),
            "unknown key `bogus`; this table accepts: a, b"
        );
    }
}
