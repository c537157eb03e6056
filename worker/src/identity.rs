//! Who the worker is: the `DISTARCH_*` environment variables, parsed.

use crate::error::WorkerError;
use distarch_protocol::{env_vars, PROTOCOL_VERSION};
use serde_json::{Map, Value};
use std::str::FromStr;

/// The parsed `DISTARCH_*` variables of one instance.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Identity {
    pub protocol: u32,
    pub run_id: String,
    pub id: u64,
    pub group: String,
    pub group_id: u64,
    pub group_count: u64,
    pub host: String,
    pub restart: u32,
    pub params: Map<String, Value>,
}

impl Identity {
    /// Reads every variable through `get`. `DISTARCH_ID` is checked first, so that a
    /// program started by hand gets "not started by distarch: DISTARCH_ID is not set".
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, WorkerError> {
        let required = |name: &'static str| get(name).ok_or(WorkerError::MissingVar { name });
        let id = positive(env_vars::ID, &required(env_vars::ID)?)?;
        let protocol = number(env_vars::PROTOCOL, &required(env_vars::PROTOCOL)?)?;
        if protocol != PROTOCOL_VERSION {
            return Err(WorkerError::UnsupportedProtocol {
                found: protocol,
                supported: PROTOCOL_VERSION,
            });
        }
        let run_id = required(env_vars::RUN_ID)?;
        let group = required(env_vars::GROUP)?;
        let group_id = positive(env_vars::GROUP_ID, &required(env_vars::GROUP_ID)?)?;
        let group_count = positive(env_vars::GROUP_COUNT, &required(env_vars::GROUP_COUNT)?)?;
        let host = required(env_vars::HOST)?;
        let restart = number(env_vars::RESTART, &required(env_vars::RESTART)?)?;
        let params = params(&required(env_vars::PARAMS)?)?;
        Ok(Identity {
            protocol,
            run_id,
            id,
            group,
            group_id,
            group_count,
            host,
            restart,
            params,
        })
    }
}

fn number<T>(name: &'static str, value: &str) -> Result<T, WorkerError>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    value
        .trim()
        .parse()
        .map_err(|e| WorkerError::invalid(name, value, e))
}

/// An integer ≥ 1 (ids and counts are 1-based).
fn positive(name: &'static str, value: &str) -> Result<u64, WorkerError> {
    match number(name, value)? {
        0 => Err(WorkerError::invalid(name, value, "must be at least 1")),
        n => Ok(n),
    }
}

fn params(value: &str) -> Result<Map<String, Value>, WorkerError> {
    // An empty value is an empty object: a shell may not be able to pass `{}` easily.
    if value.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(value) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(WorkerError::invalid(
            env_vars::PARAMS,
            value,
            "not a JSON object",
        )),
        Err(e) => Err(WorkerError::invalid(env_vars::PARAMS, value, e)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A complete, valid set of variables.
    pub fn vars() -> HashMap<&'static str, String> {
        [
            (env_vars::PROTOCOL, "1"),
            (env_vars::RUN_ID, "r1x9"),
            (env_vars::ID, "4"),
            (env_vars::GROUP, "first"),
            (env_vars::GROUP_ID, "2"),
            (env_vars::GROUP_COUNT, "3"),
            (env_vars::HOST, "localhost"),
            (env_vars::RESTART, "0"),
            (env_vars::PARAMS, r#"{"message":"Hello World!","n":7}"#),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect()
    }

    fn parse(vars: &HashMap<&'static str, String>) -> Result<Identity, WorkerError> {
        Identity::from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn a_complete_environment_parses() {
        let id = parse(&vars()).unwrap();
        assert_eq!((id.id, id.group_id, id.group_count), (4, 2, 3));
        assert_eq!(
            (id.group.as_str(), id.host.as_str()),
            ("first", "localhost")
        );
        assert_eq!(
            (id.run_id.as_str(), id.restart, id.protocol),
            ("r1x9", 0, 1)
        );
        assert_eq!(id.params["message"], "Hello World!");
    }

    #[test]
    fn no_distarch_id_means_not_started_by_distarch() {
        let err = parse(&HashMap::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not started by distarch: DISTARCH_ID is not set"
        );
    }

    #[test]
    fn every_missing_variable_is_named() {
        for name in vars().keys() {
            let mut v = vars();
            v.remove(name);
            match parse(&v).unwrap_err() {
                WorkerError::MissingVar { name: missing } => assert_eq!(missing, *name),
                other => panic!("{name}: expected MissingVar, got {other:?}"),
            }
        }
    }

    #[test]
    fn bad_numbers_name_the_variable() {
        let mut v = vars();
        v.insert(env_vars::GROUP_COUNT, "three".into());
        let err = parse(&v).unwrap_err();
        assert_eq!(
            err.to_string(),
            "DISTARCH_GROUP_COUNT has an invalid value `three`"
        );
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn params_must_be_a_json_object() {
        for bad in ["[1,2]", "{not json", "\"text\""] {
            let mut v = vars();
            v.insert(env_vars::PARAMS, bad.into());
            match parse(&v).unwrap_err() {
                WorkerError::InvalidVar { name, .. } => assert_eq!(name, env_vars::PARAMS),
                other => panic!("{bad}: expected InvalidVar, got {other:?}"),
            }
        }
        let mut v = vars();
        v.insert(env_vars::PARAMS, " ".into());
        assert!(parse(&v).unwrap().params.is_empty());
    }

    #[test]
    fn another_protocol_version_is_refused() {
        let mut v = vars();
        v.insert(env_vars::PROTOCOL, "2".into());
        assert!(matches!(
            parse(&v).unwrap_err(),
            WorkerError::UnsupportedProtocol {
                found: 2,
                supported: 1
            }
        ));
    }
}
