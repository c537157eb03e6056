//! Reading a config file before figment parses it: the path must be a regular file
//! of sane size, JSON and YAML must not repeat a key in one mapping (both formats
//! would let the last one win silently), and YAML must not nest absurdly deep (the
//! YAML parser is quadratic in depth before its own limit applies).

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::fmt;
use std::path::Path;

/// Largest config file read, in bytes.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// Deepest nesting of mappings and lists accepted in a YAML file (serde_json's own
/// limit for JSON is the same; TOML's parser has its own).
pub const MAX_YAML_DEPTH: usize = 128;

/// The format of a config file, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.toml`
    Toml,
    /// `.yaml` / `.yml`
    Yaml,
    /// `.json`
    Json,
}

impl Format {
    /// The format a path's extension names, if any.
    pub fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// Checks that `path` is a regular file that can be read, of sane size, and returns
/// its text. The error says what the path is instead (missing, a directory, a
/// device, a FIFO, ...).
pub fn read_config_file(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::FileTypeExt;
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("config file `{shown}` does not exist"))
        }
        Err(e) => return Err(format!("cannot read config file `{shown}`: {e}")),
    };
    let ft = meta.file_type();
    let what = if ft.is_dir() {
        Some("a directory")
    } else if ft.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if ft.is_char_device() {
        Some("a character device")
    } else if ft.is_block_device() {
        Some("a block device")
    } else if ft.is_socket() {
        Some("a socket")
    } else if !ft.is_file() {
        Some("not a regular file")
    } else {
        None
    };
    if let Some(what) = what {
        return Err(format!(
            "config file `{shown}` is {what}; give a .toml, .yaml or .json file"
        ));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(format!(
            "config file `{shown}` is {} bytes; the limit is {MAX_CONFIG_BYTES}",
            meta.len()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read config file `{shown}`: {e}"))
}

/// Checks what figment would accept silently or slowly: a key repeated within one
/// mapping (JSON, YAML) and YAML nested deeper than [`MAX_YAML_DEPTH`]. Syntax errors
/// are left to figment, which reports them with their position.
pub fn check_text(format: Format, text: &str) -> Result<(), String> {
    match format {
        Format::Toml => Ok(()), // the TOML parser rejects duplicate keys itself
        Format::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            match Checked::default().deserialize(&mut de) {
                Err(e) if e.is_data() => Err(strip_position(&e.to_string())),
                _ => Ok(()),
            }
        }
        Format::Yaml => {
            let depth = yaml_depth(text);
            if depth > MAX_YAML_DEPTH {
                return Err(format!(
                    "nested more than {MAX_YAML_DEPTH} levels deep (found at least {depth})"
                ));
            }
            // Only the first document is read as configuration.
            if let Some(doc) = serde_yaml::Deserializer::from_str(text).next() {
                if let Err(e) = Checked::default().deserialize(doc) {
                    // serde_yaml puts the key path before the message.
                    let text = e.to_string();
                    if let Some(pos) = text.find("duplicate key `") {
                        return Err(strip_position(&text[pos..]));
                    }
                }
            }
            Ok(())
        }
    }
}

/// serde_json appends " at line L column C"; the key path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(pos) => format!("{} ({})", &message[..pos], &message[pos + 1..]),
        None => message.to_string(),
    }
}

/// An upper bound-ish estimate of how deep a YAML text nests: flow brackets, block
/// indentation levels and `- - -` chains, without parsing. Linear in the text.
fn yaml_depth(text: &str) -> usize {
    let mut worst = 0usize;
    let mut flow = 0usize;
    let mut indents: Vec<usize> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start_matches(' ');
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if flow == 0 {
            while indents.last().is_some_and(|&i| i >= indent) {
                indents.pop();
            }
            indents.push(indent);
        }
        // `- - - x` opens one sequence per dash.
        let mut dashes = 0;
        let mut rest = trimmed;
        while let Some(r) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("-\t")) {
            dashes += 1;
            rest = r.trim_start();
        }
        let mut quote: Option<char> = None;
        for c in rest.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '#') => break,
                (None, '[' | '{') => {
                    flow += 1;
                    worst = worst.max(flow + indents.len() + dashes);
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
        }
        worst = worst.max(flow + indents.len() + dashes);
    }
    worst
}

/// Walks any document, failing on a key seen twice in one mapping.
#[derive(Default)]
struct Checked {
    path: String,
}

impl<'de> DeserializeSeed<'de> for Checked {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        while seq
            .next_element_seed(Checked {
                path: format!("{}[{i}]", self.path),
            })?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<KeyText>()? {
            let path = if self.path.is_empty() {
                key.0.clone()
            } else {
                format!("{}.{}", self.path, key.0)
            };
            if !seen.insert(key.0.clone()) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate key `{path}`: each key may appear once (the last one would win silently)"
                )));
            }
            map.next_value_seed(Checked { path })?;
        }
        Ok(())
    }
}

/// A mapping key as text (YAML keys may be numbers or booleans).
struct KeyText(String);

impl<'de> serde::Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<KeyText, E> {
                Ok(KeyText("~".into()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyText, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(KeyText("{...}".into()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyText, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(KeyText("[...]".into()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_is_not_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_config_file(dir.path()).unwrap_err();
        assert!(
            err.ends_with("is a directory; give a .toml, .yaml or .json file"),
            "{err}"
        );
        let err = read_config_file(Path::new("/dev/zero")).unwrap_err();
        assert!(err.contains("is a character device"), "{err}");
        let err = read_config_file(&dir.path().join("nope.toml")).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        let fifo = dir.path().join("f.toml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let err = read_config_file(&fifo).unwrap_err();
        assert!(err.contains("is a FIFO"), "{err}");
    }

    #[test]
    fn duplicate_keys_are_errors_in_json_and_yaml() {
        let err = check_text(
            Format::Json,
            r#"{"groups": {"g": {"command": "a"}, "g": {"command": "b"}}}"#,
        )
        .unwrap_err();
        assert!(err.starts_with("duplicate key `groups.g`"), "{err}");
        let err = check_text(
            Format::Yaml,
            "groups:\n  g:\n    command: a\n    instances: 1\n    instances: 2\n",
        )
        .unwrap_err();
        assert!(
            err.starts_with("duplicate key `groups.g.instances`"),
            "{err}"
        );
        assert!(check_text(Format::Yaml, "groups:\n  g:\n    command: a\n").is_ok());
        assert!(check_text(Format::Json, r#"{"a": [{"b": 1}, {"b": 2}]}"#).is_ok());
    }

    #[test]
    fn deep_yaml_is_rejected_at_once() {
        for text in [
            format!("a: {}1{}", "[".repeat(20_000), "]".repeat(20_000)),
            format!("{}x\n", "- ".repeat(20_000)),
            (0..200)
                .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                .collect(),
        ] {
            // The scan's own message, not the YAML parser's recursion limit (which
            // comes only after a parse quadratic in depth).
            let err = check_text(Format::Yaml, &text).unwrap_err();
            assert!(err.starts_with("nested more than 128 levels"), "{err}");
        }
        assert!(check_text(Format::Yaml, "a:\n  b:\n    c: [1, {d: 2}]\n").is_ok());
    }
}
