//! `distarch reload RUN [config flags]`.

use super::{locate, print_json, OutputFormat, ReloadArgs, VerbError};
use distarch_control::wire::{ReloadOutcome, ReloadRequest};

/// True when any configuration flag was given (then the client loads the config).
fn has_config_flags(a: &crate::args::ConfigArgs, r: &crate::args::RunArgs) -> bool {
    a.config.is_some()
        || !r.groups.is_empty()
        || !a.set.is_empty()
        || !r.flag_overrides().is_empty()
        || a.no_env
}

pub async fn reload(args: ReloadArgs) -> Result<i32, VerbError> {
    let config = if has_config_flags(&args.config, &args.settings) {
        match super::launch::load_for_run(&args.config, &args.settings) {
            Ok(c) => Some(c),
            Err(text) => {
                return Err(VerbError::new(
                    distarch_core::EXIT_CONFIG,
                    format!("invalid configuration, nothing changed:\n{text}"),
                ))
            }
        }
    } else {
        None
    };
    let found = locate(&args.run).await?;
    let outcome: ReloadOutcome = found
        .client()
        .post("/reload", &ReloadRequest { config })
        .await
        .map_err(|e| {
            let mut v = VerbError::from(e);
            if v.code == distarch_core::EXIT_CONFIG {
                v.message = format!("{}\nnothing changed", v.message);
            }
            v
        })?;
    match args.output.output {
        OutputFormat::Json => print_json(&outcome),
        OutputFormat::Text => {
            let list = |v: &Vec<String>| {
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.join(", ")
                }
            };
            say!("added: {}", list(&outcome.added));
            say!("removed: {}", list(&outcome.removed));
            say!("changed (restarted): {}", list(&outcome.changed));
            say!("unchanged: {}", list(&outcome.unchanged));
            for n in &outcome.notes {
                say!("note: {n}");
            }
        }
    }
    Ok(0)
}
