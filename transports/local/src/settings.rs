//! Settings of a local placement, and the one function that checks them.

use crate::cgroup::{self, Limits};
use crate::unix;
use serde::Deserialize;
use serde_json::{Map, Value};

/// `{ transport = "local", instances = N, host = "label", memory = "64m", ... }`.
/// The limits and `user` are spelt as the docker transport spells them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSettings {
    /// Label shown in log prefixes and given as `DISTARCH_HOST` (default `localhost`).
    #[serde(default)]
    pub host: Option<String>,
    /// Memory limit of each instance (cgroup `memory.max`): bytes, or a number with
    /// `k`, `m`, `g` (1024-based), e.g. `"64m"`.
    #[serde(default)]
    pub memory: Option<SizeSetting>,
    /// CPU limit of each instance in cores, e.g. `0.5` (cgroup `cpu.max`).
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Largest number of processes in each instance (cgroup `pids.max`).
    #[serde(default)]
    pub pids_limit: Option<i64>,
    /// User the worker runs as: a name or a uid, optionally `:group` (the master
    /// must run as root).
    #[serde(default)]
    pub user: Option<String>,
    /// Group the worker runs as: a name or a gid (default: the user's own group).
    #[serde(default)]
    pub group: Option<String>,
    /// `run` (default): instances live in the run's cgroup; `instance`: each start
    /// of an instance gets a cgroup of its own (implied by the limits).
    #[serde(default)]
    pub cgroup: Option<CgroupMode>,
}

/// Which cgroup local instances live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    /// The run's cgroup, with the master: ended by the run's end or the reaper.
    Run,
    /// A cgroup per start of an instance: what it leaves behind (even outside
    /// its process group) ends when it ends.
    Instance,
}

/// A size written as a number of bytes or a string such as `"64m"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SizeSetting {
    /// Bytes.
    Bytes(i64),
    /// A number with a unit.
    Text(String),
}

/// What a local placement's settings mean once checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Resolved {
    /// Host label.
    pub(crate) host: String,
    /// Limits for each instance's cgroup.
    pub(crate) limits: Limits,
    /// `(uid, gid)` to run as.
    pub(crate) ids: Option<(u32, u32)>,
    /// Each start gets a cgroup of its own.
    pub(crate) instance_cgroup: bool,
}

/// Parses and checks a local placement's settings (the one place that does):
/// every problem is `(key, message)`, the key relative to the placement; all of
/// them are reported.
pub(crate) fn resolve(settings: &Map<String, Value>) -> Result<Resolved, Vec<(String, String)>> {
    let s: LocalSettings = serde_json::from_value(Value::Object(settings.clone()))
        .map_err(|e| vec![(String::new(), e.to_string())])?;
    let mut errors = Vec::new();
    let mut err = |k: &str, m: String| errors.push((k.to_string(), m));
    let memory = match &s.memory {
        None => None,
        Some(SizeSetting::Bytes(n)) if *n > 0 => Some(*n),
        Some(SizeSetting::Bytes(n)) => {
            err("memory", format!("must be positive, not {n}"));
            None
        }
        Some(SizeSetting::Text(t)) => match parse_size(t) {
            Ok(n) => Some(n),
            Err(m) => {
                err("memory", m);
                None
            }
        },
    };
    if let Some(c) = s.cpus {
        if !(c > 0.0 && c <= 4096.0) {
            err(
                "cpus",
                format!("must be a positive number of cores, not {c}"),
            );
        }
    }
    if let Some(p) = s.pids_limit {
        if p < 1 {
            err("pids_limit", format!("must be at least 1, not {p}"));
        }
    }
    let limits = Limits {
        memory,
        cpus: s.cpus,
        pids: s.pids_limit,
    };
    let wanted = limits.controllers();
    if !wanted.is_empty() {
        let key = if s.memory.is_some() {
            "memory"
        } else if s.cpus.is_some() {
            "cpus"
        } else {
            "pids_limit"
        };
        if let Err(m) = check_controllers(&wanted) {
            err(key, m);
        }
    }
    if s.cgroup == Some(CgroupMode::Run) && !wanted.is_empty() {
        err(
            "cgroup",
            "must be `instance` (or unset) with memory, cpus or pids_limit: limits are per instance".into(),
        );
    }
    let ids = match resolve_ids(s.user.as_deref(), s.group.as_deref()) {
        Ok(ids) => ids,
        Err(e) => {
            errors.push(e);
            None
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Resolved {
        host: s.host.unwrap_or_else(|| "localhost".into()),
        limits,
        ids,
        instance_cgroup: !wanted.is_empty() || s.cgroup == Some(CgroupMode::Instance),
    })
}

/// Whether this machine's cgroup v2 offers the `wanted` controllers; the error
/// says what is missing and what is offered.
fn check_controllers(wanted: &[&str]) -> Result<(), String> {
    let h = cgroup::detect()
        .map_err(|why| format!("limits need cgroup v2, which is not available here ({why})"))?;
    let missing = cgroup::missing_controllers(&h.base, wanted);
    if missing.is_empty() {
        return Ok(());
    }
    let have = std::fs::read_to_string(h.base.join("cgroup.controllers")).unwrap_or_default();
    Err(format!(
        "limits need the cgroup v2 controller(s) {} , which {} does not offer \
         (it offers: {}); on a hybrid or cgroup v1 system they cannot be set",
        missing.join(", "),
        h.base.display(),
        if have.trim().is_empty() {
            "none"
        } else {
            have.trim()
        }
    ))
}

/// `user` (`name`, `uid`, `name:group`, `uid:gid`) and `group` into ids.
fn resolve_ids(
    user: Option<&str>,
    group: Option<&str>,
) -> Result<Option<(u32, u32)>, (String, String)> {
    let (user, group, group_key) = match (user, group) {
        (None, None) => return Ok(None),
        (None, Some(_)) => {
            return Err((
                "group".into(),
                "needs `user` too (the user to run as)".into(),
            ))
        }
        (Some(u), g) => match u.split_once(':') {
            Some((_, _)) if g.is_some() => {
                return Err((
                    "group".into(),
                    "is given twice: in `user` (after `:`) and in `group`".into(),
                ))
            }
            Some((u, g)) => (u, Some(g), "user"),
            None => (u, g, "group"),
        },
    };
    let euid = unix::euid();
    if euid != 0 {
        return Err((
            "user".into(),
            format!(
                "running as another user needs the master to run as root (it runs as uid {euid})"
            ),
        ));
    }
    let (uid, primary) = if let Ok(uid) = user.parse::<u32>() {
        (uid, unix::lookup_user_by_id(uid).unwrap_or(uid))
    } else {
        match unix::lookup_user(user) {
            Ok(Some(ids)) => ids,
            Ok(None) => return Err(("user".into(), format!("no such user `{user}`"))),
            Err(e) => return Err(("user".into(), format!("cannot look `{user}` up: {e}"))),
        }
    };
    let gid = match group {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => match unix::lookup_group(g) {
                Ok(Some(gid)) => gid,
                Ok(None) => return Err((group_key.into(), format!("no such group `{g}`"))),
                Err(e) => return Err((group_key.into(), format!("cannot look `{g}` up: {e}"))),
            },
        },
    };
    Ok(Some((uid, gid)))
}

/// Parses `123`, `64k`, `64m`, `1g`, `1.5g` (optionally with a trailing `b`, any case).
fn parse_size(text: &str) -> Result<i64, String> {
    let bad = || format!("invalid size `{text}`: expected a number with k, m or g, e.g. \"64m\"");
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (number, unit) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1i64 << 10),
        Some((i, 'm')) => (&t[..i], 1 << 20),
        Some((i, 'g')) => (&t[..i], 1 << 30),
        Some(_) => (t, 1),
        None => return Err(bad()),
    };
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    let bytes = value * unit as f64;
    if !(bytes >= 1.0 && bytes < i64::MAX as f64) {
        return Err(bad());
    }
    Ok(bytes as i64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Resolved, (String, String)> {
        match v {
            Value::Object(m) => resolve(&m).map_err(|mut e| e.remove(0)),
            _ => unreachable!(),
        }
    }

    #[test]
    fn host_defaults_to_localhost() {
        assert_eq!(parse(json!({})).unwrap().host, "localhost");
        assert_eq!(parse(json!({"host": "h"})).unwrap().host, "h");
    }

    #[test]
    fn bad_values_name_their_key() {
        assert_eq!(parse(json!({"cpus": 0})).unwrap_err().0, "cpus");
        assert_eq!(parse(json!({"pids_limit": 0})).unwrap_err().0, "pids_limit");
        assert_eq!(parse(json!({"memory": "lots"})).unwrap_err().0, "memory");
        assert_eq!(parse(json!({"memory": -1})).unwrap_err().0, "memory");
        assert_eq!(parse(json!({"group": "x"})).unwrap_err().0, "group");
        assert_eq!(parse(json!({"cgroup": "box"})).unwrap_err().0, "");
        assert!(
            parse(json!({"cgroup": "instance"}))
                .unwrap()
                .instance_cgroup
        );
        assert!(!parse(json!({"cgroup": "run"})).unwrap().instance_cgroup);
        assert!(!parse(json!({})).unwrap().instance_cgroup);
        let e = parse(json!({"image": "x"})).unwrap_err();
        assert!(e.1.contains("unknown field `image`"), "{e:?}");
    }

    #[test]
    fn sizes_read_like_dockers() {
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("").is_err());
    }

    #[test]
    fn users_resolve_by_name_and_id_when_root() {
        if unix::euid() != 0 {
            assert!(parse(json!({"user": "root"}))
                .unwrap_err()
                .1
                .contains("root"));
            return;
        }
        assert_eq!(parse(json!({"user": "root"})).unwrap().ids, Some((0, 0)));
        assert_eq!(
            parse(json!({"user": "nobody:0"})).unwrap().ids.map(|i| i.1),
            Some(0)
        );
        assert_eq!(
            parse(json!({"user": "1234"})).unwrap().ids,
            Some((1234, 1234))
        );
        assert!(parse(json!({"user": "no-such-user-x"}))
            .unwrap_err()
            .1
            .contains("no such user"));
    }
}
