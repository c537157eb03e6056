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

/// Runs `distarch ARGS` in `d`'s directory and returns "exit code N" and stderr,
/// temp paths scrubbed, for a snapshot.
fn failing(d: &Distarch, args: &[&str]) -> String {
    let out = d.run(args, LIMIT);
    assert!(out.stdout.is_empty() || out.code == 0, "{out}");
    format!("exit code {}\n{}", out.code, scrub(&out.stderr, d))
}

fn worker_toml() -> String {
    toml_str(test_worker_bin().display().to_string())
}

#[test]
fn a_misspelt_placement_key_is_named_with_the_keys_it_could_be() {
    let w = worker_toml();
    // Without `instances` on the group: the typo, not "instances is not set".
    let d = Distarch::new().config(&format!(
        "[groups.g]\ncommand = [{w}]\nplacements.r = {{ transport = \"ssh\", hosts = [\"localhost\"], instnaces = 3 }}\n\
         placements.l = {{ transport = \"local\", instnaces = 3 }}\n"
    ));
    insta::assert_snapshot!("placement_typo", failing(&d, &["validate"]));
    // With `instances` on the group the transport finds the typo: the same words.
    let d = Distarch::new().config(&format!(
        "[groups.g]\ncommand = [{w}]\ninstances = 2\nplacements.r = {{ transport = \"ssh\", hosts = [\"localhost\"], instnaces = 3 }}\n"
    ));
    let text = failing(&d, &["validate"]);
    assert!(text.contains("unknown key `instnaces`"), "{text}");
    assert!(
        text.contains("accepts: transport, instances, params, hosts,"),
        "{text}"
    );
    assert!(text.contains("did you mean `instances`?"), "{text}");
}

#[test]
fn every_problem_of_a_placement_is_reported_not_only_the_first() {
    let w = worker_toml();
    let d = Distarch::new().config(&format!(
        "[groups.g]\ncommand = [{w}]\ninstances = 1\n\
         placements.s = {{ transport = \"ssh\", hosts = [\"a@\", \"ok\", \"b:x\"], connect_timeout = \"0s\" }}\n\
         placements.d = {{ transport = \"docker\", image = \" \", cpus = 0, pids_limit = 0 }}\n\
         placements.k = {{ transport = \"kubernetes\", image = \"\", api_burst = 0 }}\n\
         placements.l = {{ transport = \"local\", cpus = 0, pids_limit = 0 }}\n"
    ));
    let text = failing(&d, &["validate"]);
    for key in [
        "groups.g.placements.s.hosts[0]",
        "groups.g.placements.s.hosts[2]",
        "groups.g.placements.s.connect_timeout",
        "groups.g.placements.d.image",
        "groups.g.placements.d.cpus",
        "groups.g.placements.d.pids_limit",
        "groups.g.placements.k.image",
        "groups.g.placements.k.api_burst",
        "groups.g.placements.l.cpus",
        "groups.g.placements.l.pids_limit",
    ] {
        assert!(text.contains(key), "{key} is not reported:\n{text}");
    }
}

#[test]
fn config_file_problems_say_what_the_path_is() {
    let d = Distarch::new();
    insta::assert_snapshot!("no_config", failing(&d, &["launch"]));
    let fifo = d.path("pipe.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::create_dir(d.path("dir.toml")).unwrap();
    let mut all = String::new();
    for path in ["missing.toml", "dir.toml", "/dev/zero", "pipe.toml"] {
        all.push_str(&failing(&d, &["validate", "-c", path]));
    }
    insta::assert_snapshot!("config_paths", all);
    // A directory named distarch.toml is reported too, not taken for "no config".
    let d = Distarch::new();
    std::fs::create_dir(d.path("distarch.toml")).unwrap();
    let text = failing(&d, &["validate"]);
    assert!(text.contains("is a directory"), "{text}");
}

#[test]
fn value_errors_are_in_words_and_name_their_flag() {
    let w = worker_toml();
    let d = Distarch::new().config(&format!(
        "[launcher]\nlog_format = \"jsn\"\n[groups.g]\ncommand = [{w}]\ninstances = \"three\"\n"
    ));
    let mut all = failing(&d, &["validate"]);
    let d = Distarch::new().config(&format!(
        "[launcher]\nlog_format = \"jsn\"\n[groups.g]\ncommand = [{w}]\ninstances = 1\n"
    ));
    all.push_str(&failing(&d, &["validate"]));
    let d = Distarch::new().config(&format!(
        "[groups.g]\ncommand = [{w}]\ninstances = 1\nbogus = 1\n"
    ));
    all.push_str(&failing(&d, &["validate"]));
    let d = Distarch::new().config(&format!("[groups.g]\ncommand = [{w}]\ninstances = 1\n"));
    all.push_str(&failing(&d, &["launch", "--timeout", "soon"]));
    all.push_str(&failing(&d, &["launch", "--set", "groups.g.command=true"]));
    all.push_str(&failing(
        &d,
        &["validate", "--set", "groups.g.instances=-1"],
    ));
    insta::assert_snapshot!("value_errors", all);
}

#[test]
fn instance_counts_are_checked_where_the_user_wrote_them() {
    let w = worker_toml();
    let d = Distarch::new().config(&format!("[groups.g]\ncommand = [{w}]\ninstances = 0\n"));
    let mut all = failing(&d, &["validate"]);
    // An absurd count fails at once, before any instance is listed.
    let d = Distarch::new().config(&format!(
        "[groups.g]\ncommand = [{w}]\ninstances = 1000000000\n"
    ));
    all.push_str(&failing(&d, &["validate"]));
    insta::assert_snapshot!("instance_counts", all);
    // The bound is overridable, by flag or environment.
    let d = Distarch::new().config(&format!("[groups.g]\ncommand = [{w}]\ninstances = 3\n"));
    let out = d.run(&["validate", "--max-instances", "2"], LIMIT);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("more than 2 instances"), "{out}");
    let d = d.env("DISTARCH_MAX_INSTANCES", "3");
    let out = d.run(&["validate"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
}

#[test]
fn validate_rejects_what_would_fail_every_instance() {
    let w = worker_toml();
    let big = "x".repeat(140 * 1024);
    let d = Distarch::new().config(&format!(
        "[launcher]\nmax_line_bytes = 0\n[groups.g]\ncommand = [{w}]\ninstances = 1\nparams = {{ blob = \"{big}\" }}\nenv = {{ A = \"a\\u0000b\" }}\n"
    ));
    insta::assert_snapshot!("exec_limits", failing(&d, &["validate"]));
}

#[test]
fn validate_warns_about_a_missing_local_command_and_launch_fails() {
    let d = Distarch::new().config("[groups.g]\ncommand = [\"./no-such-worker\"]\ninstances = 3\n");
    let out = d.run(&["validate"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    insta::assert_snapshot!("missing_command_warning", scrub(&out.stderr, &d));
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 1, "{out}");
    out.assert_count("failed to start", 3);
}

#[test]
fn duplicate_keys_and_deep_nesting_are_rejected() {
    let d = Distarch::new()
        .file(
            "c.json",
            r#"{"groups": {"g": {"command": "a", "instances": 1}, "g": {"command": "b", "instances": 2}}}"#,
        )
        .file(
            "c.yaml",
            "groups:\n  g:\n    command: a\n    instances: 1\n    instances: 2\n",
        )
        .file(
            "deep.yaml",
            &format!("groups: {}1{}\n", "[".repeat(20_000), "]".repeat(20_000)),
        );
    let mut all = String::new();
    for file in ["c.json", "c.yaml", "deep.yaml"] {
        all.push_str(&failing(&d, &["validate", "-c", file]));
    }
    insta::assert_snapshot!("duplicates_and_depth", all);
}

#[test]
fn environment_overrides_keep_the_case_of_env_and_params_keys() {
    let d = Distarch::new()
        .config(
            "[launcher]\nlog_level = \"info\"\n[groups.g]\ninstances = 1\n\
             command = [\"sh\", \"-c\", \"echo RUST_LOG=$RUST_LOG rust_log=$rust_log; echo $DISTARCH_PARAMS\"]\n\
             env = { RUST_LOG = \"info\" }\nparams = { MaxRows = 1 }\n",
        )
        .env("DISTARCH_GROUPS__G__ENV__RUST_LOG", "debug")
        .env("DISTARCH_GROUPS__G__PARAMS__MaxRows", "7");
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_has("RUST_LOG=debug rust_log=\n");
    out.assert_has(r#"{"MaxRows":7}"#);
}

#[test]
fn run_ids_are_checked() {
    let d = Distarch::new().config("[groups.g]\ncommand = [\"true\"]\ninstances = 1\n");
    let mut all = String::new();
    for id in ["", "a b", "a\nb", "../../x"] {
        all.push_str(&failing(&d, &["launch", "--run-id", id]));
    }
    insta::assert_snapshot!("run_ids", all);
    let out = d.run(&["launch", "--run-id", "nightly-42"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
}

#[test]
fn gc_help_lists_only_its_flags() {
    let d = Distarch::new();
    let help = d.run(&["gc", "--help"], LIMIT);
    assert_eq!(help.code, 0);
    insta::assert_snapshot!("gc_help", help.stdout);
    // gc prints through the master's log writer: it takes --log-format (issue 9).
    assert!(help.stdout.contains("--log-format"), "{}", help.stdout);
    for launch_only in ["--timeout", "--group", "--stop-grace", "--max-instances"] {
        assert!(
            !help.stdout.contains(launch_only),
            "{launch_only} in gc --help"
        );
    }
}

#[test]
fn an_unreachable_engine_is_reported_once_not_once_per_instance() {
    let d = Distarch::new().config(
        "[groups.g]\ncommand = [\"sleep\", \"1\"]\n\
         placements.d = { transport = \"docker\", image = \"alpine\", host = \"tcp://127.0.0.1:1\", instances = 4 }\n",
    );
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 1, "{out}");
    let full = out.stdout.matches("cannot reach the docker engine").count();
    assert_eq!(full, 1, "{out}");
    assert_eq!(
        out.stdout
            .matches("failed to start: the same error as instance ")
            .count(),
        3,
        "{out}"
    );
}

#[test]
fn gc_writes_through_the_log_writer_in_the_configured_format() {
    let w = worker_toml();
    let d = Distarch::new().config(&format!(
        "[launcher]\nlog_format = \"json\"\n[groups.g]\ncommand = [{w}]\ninstances = 1\n"
    ));
    let out = d.run(&["gc", "--dry-run"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(!lines.is_empty(), "{out}");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["message"].as_str().unwrap_or("").starts_with("gc: "),
            "{line}"
        );
    }
}

#[test]
fn gc_with_nothing_to_check_says_so() {
    // No config, no DOCKER_HOST, no kube context: nothing to look at, and gc says so
    // instead of printing nothing. (Where the machine has a default Docker socket, gc
    // looks there, so this runs only without one.)
    if std::path::Path::new("/var/run/docker.sock").exists() {
        eprintln!("not run: /var/run/docker.sock exists on this machine");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(distarch_bin())
        .arg("gc")
        .current_dir(dir.path())
        .env_remove("DOCKER_HOST")
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("gc: nothing to check"), "{stdout}");
}

#[test]
fn completions_are_valid_shell_and_the_man_page_renders() {
    let d = Distarch::new();
    for (shell, checker) in [("bash", "bash"), ("zsh", "zsh"), ("fish", "fish")] {
        let out = d.run(&["completions", shell], LIMIT);
        assert_eq!(out.code, 0, "{out}");
        assert!(out.stdout.contains("launch") && out.stdout.contains("max-instances"));
        let script = d.path(&format!("distarch.{shell}"));
        std::fs::write(&script, &out.stdout).unwrap();
        let Ok(status) = std::process::Command::new(checker)
            .arg("-n")
            .arg(&script)
            .status()
        else {
            panic!("{checker} is missing: scripts/test.sh installs it");
        };
        assert!(
            status.success(),
            "{checker} -n rejects the {shell} completions"
        );
    }
    let out = d.run(&["man"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.starts_with(".ie") || out.stdout.contains(".TH distarch 1"));
    for section in [
        "DISTARCH LAUNCH",
        "DISTARCH VALIDATE",
        "DISTARCH GC",
        "\\-\\-max\\-instances",
    ] {
        assert!(
            out.stdout.contains(section),
            "{section} missing from the man page"
        );
    }
    let page = d.path("distarch.1");
    std::fs::write(&page, &out.stdout).unwrap();
    let groff = std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&page)
        .output()
        .expect("groff (scripts/test.sh installs it)");
    assert!(groff.status.success());
    let warnings = String::from_utf8_lossy(&groff.stderr);
    assert!(warnings.trim().is_empty(), "groff warnings:\n{warnings}");
}
