//! Reading a [`CommandLine`]: a list of strings or one string, and an error in words
//! for anything else (serde's untagged enums only say "did not match any variant").

use super::model::CommandLine;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

const EXPECTED: &str =
    "a command: a list of strings such as [\"./worker\", \"--fast\"] or one string such as \"./worker --fast\"";

impl<'de> Deserialize<'de> for CommandLine {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CommandLine;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CommandLine, E> {
                Ok(CommandLine::Line(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CommandLine, A::Error> {
                let mut argv = Vec::new();
                while let Some(item) = seq.next_element::<ArgText>()? {
                    argv.push(item.0);
                }
                Ok(CommandLine::Argv(argv))
            }
        }
        d.deserialize_any(V)
    }
}

/// One argv element: a string (numbers are not silently turned into text).
struct ArgText(String);

impl<'de> Deserialize<'de> for ArgText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ArgText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string (each element of a command list is one argument)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ArgText, E> {
                Ok(ArgText(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lists_and_strings_and_says_what_else_is_wrong() {
        let v: CommandLine = serde_json::from_str(r#"["a", "b c"]"#).unwrap();
        assert_eq!(v, CommandLine::Argv(vec!["a".into(), "b c".into()]));
        let v: CommandLine = serde_json::from_str(r#""a 'b c'""#).unwrap();
        assert_eq!(v, CommandLine::Line("a 'b c'".into()));
        let err = serde_json::from_str::<CommandLine>("true")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected a command: a list of strings"),
            "{err}"
        );
        assert!(!err.contains("untagged"), "{err}");
        let err = serde_json::from_str::<CommandLine>("[1]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected a string (each element"), "{err}");
    }
}
