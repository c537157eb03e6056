//! Checks of the supervision settings that look across a group or across groups:
//! placeholders in per-instance strings, readiness rules and `depends_on` (unknown
//! names and cycles). Called by [`crate::build_plan`]; every problem is reported.

use crate::config::{Config, GroupConfig, ReadyRule};
use crate::error::ConfigError;
use crate::template;
use std::collections::BTreeMap;

/// Checks one group's per-instance strings and readiness rule.
pub(crate) fn check_group(path: &str, group: &GroupConfig, errors: &mut Vec<ConfigError>) {
    let mut bad = |key: String, text: &str| {
        if let Err(e) = template::check(text) {
            errors.push(ConfigError::new(key, e));
        }
    };
    if let Ok(argv) = group.command.argv() {
        for arg in &argv {
            bad(format!("{path}.command"), arg);
        }
    }
    for (k, v) in &group.env {
        bad(format!("{path}.env.{k}"), v);
    }
    if let Some(dir) = &group.workdir {
        bad(format!("{path}.workdir"), &dir.to_string_lossy());
    }
    for (k, v) in &group.params {
        if let Err(e) = template::check_json(v) {
            errors.push(ConfigError::new(format!("{path}.params.{k}"), e));
        }
    }
    for (pname, placement) in &group.placements {
        for (k, v) in &placement.params {
            if let Err(e) = template::check_json(v) {
                errors.push(ConfigError::new(
                    format!("{path}.placements.{pname}.params.{k}"),
                    e,
                ));
            }
        }
    }
    match &group.ready {
        Some(ReadyRule::Log(pattern)) => {
            if let Err(e) = regex::Regex::new(pattern) {
                errors.push(ConfigError::new(
                    format!("{path}.ready.log"),
                    format!(
                        "not a valid regular expression: {}",
                        first_line(&e.to_string())
                    ),
                ));
            }
        }
        Some(ReadyRule::Tcp(_)) => {
            let remote: Vec<&str> = group
                .placements
                .iter()
                .filter(|(_, p)| p.transport != "local")
                .map(|(n, _)| n.as_str())
                .collect();
            if !remote.is_empty() {
                errors.push(ConfigError::new(
                    format!("{path}.ready.tcp"),
                    format!(
                        "a tcp readiness rule only works for local instances, and placement(s) {} are not local (use `log` or `delay`)",
                        remote.join(", ")
                    ),
                ));
            }
        }
        Some(ReadyRule::Delay(_)) | None => {}
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks `depends_on` across the groups that run: unknown names, groups left out
/// by `--group`, and cycles.
pub(crate) fn check_dependencies(config: &Config, only: &[String], errors: &mut Vec<ConfigError>) {
    let runs = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, group) in config.groups.iter().filter(|(n, _)| runs(n)) {
        for dep in group.depends_on.keys() {
            let key = format!("groups.{name}.depends_on.{dep}");
            if dep == name {
                errors.push(ConfigError::new(key, "a group cannot depend on itself"));
            } else if !config.groups.contains_key(dep) {
                let known: Vec<&str> = config.groups.keys().map(String::as_str).collect();
                errors.push(ConfigError::new(
                    key,
                    format!("no such group `{dep}` (known: {})", known.join(", ")),
                ));
            } else if !runs(dep) {
                errors.push(ConfigError::new(
                    key,
                    format!(
                        "group `{dep}` is not selected with --group, so `{name}` would never start"
                    ),
                ));
            } else {
                edges.entry(name).or_default().push(dep);
            }
        }
    }
    if let Some(cycle) = find_cycle(&edges) {
        errors.push(ConfigError::new(
            format!("groups.{}.depends_on", cycle[0]),
            format!("dependency cycle: {}", cycle.join(" → ")),
        ));
    }
}

/// A cycle in the graph, as a path that returns to its first node.
fn find_cycle<'a>(edges: &BTreeMap<&'a str, Vec<&'a str>>) -> Option<Vec<&'a str>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, Vec<&'a str>>,
        marks: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<&'a str>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Visiting) => {
                let from = path.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle = path[from..].to_vec();
                cycle.push(node);
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node, Mark::Visiting);
        path.push(node);
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, marks, path) {
                return Some(c);
            }
        }
        path.pop();
        marks.insert(node, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in edges.keys() {
        let mut path = Vec::new();
        if let Some(c) = visit(node, edges, &mut marks, &mut path) {
            return Some(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_are_found_and_named_in_order() {
        let mut edges = BTreeMap::new();
        edges.insert("a", vec!["b"]);
        edges.insert("b", vec!["c"]);
        edges.insert("c", vec!["a"]);
        assert_eq!(find_cycle(&edges), Some(vec!["a", "b", "c", "a"]));
        edges.insert("c", vec![]);
        assert_eq!(find_cycle(&edges), None);
    }
}
