//! `distarch validate` warns when a group's command cannot be found for its local
//! instances: at launch every one of them would fail to start.

use distarch_core::Plan;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One warning per group whose local instances would not find their program.
pub fn missing_local_commands(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for (index, group) in plan.groups.iter().enumerate() {
        let local = plan
            .instances
            .iter()
            .filter(|i| i.group_index == index && &*i.transport == "local")
            .count();
        let Some(program) = group.argv.first() else {
            continue;
        };
        if local == 0 || program.is_empty() {
            continue;
        }
        let workdir = group.config.workdir.as_deref();
        let path_var = group
            .config
            .env
            .get("PATH")
            .cloned()
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_default();
        if let Err(why) = find_program(program, workdir, &path_var) {
            out.push(format!(
                "groups.{}.command: {why}; its {local} local instance(s) would fail to start",
                group.name
            ));
        }
    }
    out
}

/// Where `program` would be found: a path (relative to `workdir`, else the current
/// directory) when it holds a `/`, else a search of `path_var`.
fn find_program(program: &str, workdir: Option<&Path>, path_var: &str) -> Result<PathBuf, String> {
    if program.contains('/') {
        let path = match workdir {
            Some(dir) if Path::new(program).is_relative() => dir.join(program),
            _ => PathBuf::from(program),
        };
        return match std::fs::metadata(&path) {
            Err(_) => Err(format!("`{program}` does not exist ({})", where_(workdir))),
            Ok(m) if !m.is_file() => Err(format!("`{program}` is not a file")),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => {
                Err(format!("`{program}` is not executable"))
            }
            Ok(_) => Ok(path),
        };
    }
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        if let Ok(m) = std::fs::metadata(&candidate) {
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(format!("`{program}` is not found in PATH"))
}

fn where_(workdir: Option<&Path>) -> String {
    match workdir {
        Some(dir) => format!("looked in the group's workdir {}", dir.display()),
        None => "looked in the current directory".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_paths_and_searches_path() {
        assert!(find_program("sh", None, "/usr/bin:/bin").is_ok());
        let err = find_program("no-such-program-x", None, "/usr/bin:/bin").unwrap_err();
        assert_eq!(err, "`no-such-program-x` is not found in PATH");
        let err = find_program("./nope", Some(Path::new("/tmp")), "").unwrap_err();
        assert!(
            err.contains("does not exist (looked in the group's workdir /tmp)"),
            "{err}"
        );
        assert!(find_program("/bin/sh", None, "").is_ok());
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("data.txt");
        std::fs::write(&plain, "not a program").unwrap();
        let err = find_program(plain.to_str().unwrap(), None, "").unwrap_err();
        assert!(err.ends_with("is not executable"), "{err}");
    }
}
