//! The rule every environment variable a configuration sets must follow, wherever
//! it is set (a group's `env`, a placement's `env`).

/// Checks one variable of an `env` map: the name must be non-empty, hold neither
/// `=` nor NUL, and not start with `DISTARCH_` (those are the master's, set for
/// every instance); the value must not hold NUL. Returns the problem in words.
pub fn check_env_var(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() || name.contains('=') || name.contains('\0') {
        return Err(format!(
            "`{}` is not a valid environment variable name",
            name.escape_debug()
        ));
    }
    if name.starts_with("DISTARCH_") {
        return Err(format!(
            "`{name}`: variables starting with `DISTARCH_` are set by distarch"
        ));
    }
    if value.contains('\0') {
        return Err(format!("`{name}`: the value holds a NUL byte"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_env_var;

    #[test]
    fn names_and_values() {
        assert!(check_env_var("RUST_LOG", "debug").is_ok());
        assert!(check_env_var("a.b-c", "").is_ok());
        assert!(check_env_var("", "x").is_err());
        assert!(check_env_var("A=1", "x").is_err());
        assert!(check_env_var("A\0", "x").is_err());
        assert!(check_env_var("DISTARCH_ID", "9").is_err());
        assert!(check_env_var("A", "x\0y").is_err());
    }
}
