//! Snapshot tests of what the `distarch` command shows a person: help texts and
//! configuration error messages (temp paths replaced by `[DIR]`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use distarch_e2e::*;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

fn scrub(text: &str, d: &Distarch) -> String {
    text.replace(&d.dir().display().to_string(), "[DIR]")
        .replace(&test_worker_bin().display().to_string(), "[WORKER]")
}

#[test]
fn help_texts() {
    let d = Distarch::new();
    let top = d.run(&["--help"], LIMIT);
    assert_eq!(top.code, 0);
    insta::assert_snapshot!("help", top.stdout);
    let launch = d.run(&["launch", "--help"], LIMIT);
    assert_eq!(launch.code, 0);
    insta::assert_snapshot!("launch_help", launch.stdout);
}

#[test]
fn configuration_errors_are_listed_with_key_and_origin() {
    let w = toml_str(test_worker_bin().display().to_string());
    let d = Distarch::new()
        .config(&format!(
            "[launcher]\nstop_grace = \"soon\"\n[groups.g]\ncommand = [{w}]\ninstances = 1\n"
        ))
        .env("DISTARCH_GROUPS__G__TIMEOUT", "forever");
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 2);
    insta::assert_snapshot!("figment_errors", scrub(&out.stderr, &d));

    let d = Distarch::new().config(&format!(
        "[groups.g]\ncommand = [{w}]\ninstances = 0\n[groups.h]\ncommand = \"\"\nplacements.p = {{ transport = \"nope\", instances = 1 }}\n"
    ));
    let out = d.run(&["launch", "--set", "groups.h.priority=99"], LIMIT);
    assert_eq!(out.code, 2);
    insta::assert_snapshot!("plan_errors", scrub(&out.stderr, &d));
}
