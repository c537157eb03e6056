//! End-to-end tests of `distarch launch` with the local transport: the original
//! library's test matrix, plus misbehaving workers, signals and bad configs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use distarch_e2e::*;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

fn worker() -> String {
    toml_str(test_worker_bin().display().to_string())
}

/// A config with one group `g` of `n` local test workers in `mode`.
/// `mode` is the test worker's mode and its arguments, separated by spaces.
fn one_group(mode: &str, n: u32, extra_group: &str, launcher: &str, token: &str) -> String {
    let args: Vec<String> = mode.split_whitespace().map(toml_str).collect();
    format!(
        "[launcher]\n{launcher}\n[groups.g]\ncommand = [{w}, {args}, \"--tag\", \"{token}\"]\ninstances = {n}\n{extra_group}\n",
        w = worker(),
        args = args.join(", ")
    )
}

#[test]
fn one_instance() {
    let token = unique_token("one");
    let d = Distarch::new().config(&one_group("hello", 1, "", "", &token));
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_has(
        "[g] [localhost] [1/1] INFO hello id=1 group=g group_id=1 count=1 host=localhost restart=0",
    );
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn two_instances() {
    let token = unique_token("two");
    let d = Distarch::new().config(&one_group("hello", 2, "", "", &token));
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_has("[g] [localhost] [1/1] INFO hello id=1 group=g group_id=1 count=2");
    out.assert_has("[g] [localhost] [2/2] INFO hello id=2 group=g group_id=2 count=2");
}

#[test]
fn two_groups_of_one() {
    let w = worker();
    let d = Distarch::new().config(&format!(
        "[groups.first]\ncommand = [{w}, \"hello\"]\ninstances = 1\n[groups.second]\ncommand = [{w}, \"hello\"]\ninstances = 1\n"
    ));
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_has("[first] [localhost] [1/1] INFO hello id=1 group=first group_id=1 count=1");
    out.assert_has("[second] [localhost] [2/1] INFO hello id=2 group=second group_id=1 count=1");
}

#[test]
fn params_reach_the_worker() {
    let token = unique_token("params");
    let d = Distarch::new().config(&one_group(
        "hello",
        1,
        "params = { message = \"Hello World!\", n = 3 }",
        "",
        &token,
    ));
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_has(r#"params={"message":"Hello World!","n":3}"#);
}

#[test]
fn max_running_time_stops_a_long_worker_cleanly() {
    let token = unique_token("maxrun");
    let d = Distarch::new().config(&one_group(
        "serve",
        2,
        "",
        "max_running_time = \"1s\"\nstop_grace = \"10s\"",
        &token,
    ));
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_count("INFO got stop", 2);
    out.assert_count("ended after a stop request: exit code 0", 2);
    out.assert_has("stopping everything: max running time reached");
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn launcher_timeout_force_kills_a_silent_worker() {
    let token = unique_token("silent");
    let d = Distarch::new().config(&format!(
        "[launcher]\ntimeout = \"1s\"\nkill_after = \"1s\"\n[groups.g]\ncommand = [{w}, \"silent\", \"--ignore-term\", \"--tag\", \"{token}\"]\ninstances = 1\ntimeout = \"0s\"\n",
        w = worker()
    ));
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 3, "{out}");
    out.assert_has("stopping everything now: no output from any worker");
    out.assert_has("ended after being killed: killed by signal 9");
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn a_worker_that_ignores_stop_is_killed_after_the_grace_period() {
    let token = unique_token("ignore");
    let d = Distarch::new().config(&one_group(
        "ignore-stop",
        1,
        "",
        "max_running_time = \"1s\"\nstop_grace = \"1s\"\nkill_after = \"1s\"",
        &token,
    ));
    let out = d.run(&["launch"], LIMIT);
    out.assert_has("INFO ignoring stop");
    out.assert_has("ended after being killed: killed by signal 9");
    assert_eq!(out.code, 1, "a forced kill is a failure\n{out}");
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn a_worker_printing_only_empty_lines_hits_the_group_timeout() {
    let token = unique_token("empty");
    let d = Distarch::new().config(&one_group(
        "empty-lines",
        1,
        "timeout = \"1s\"",
        "kill_after = \"1s\"",
        &token,
    ));
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 1, "{out}");
    out.assert_has("[g] [localhost] [1/1] WARN distarch: no output for 1s: considered hung");
    assert!(
        out.lines_with("restarting").is_empty(),
        "restart = never\n{out}"
    );
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn a_hung_worker_is_restarted_per_policy() {
    let token = unique_token("hungrestart");
    let d = Distarch::new().config(&one_group(
        "empty-lines",
        1,
        "timeout = \"500ms\"\nrestart = \"on-failure\"\nmax_restarts = 2\nbackoff = { initial = \"50ms\", max = \"100ms\", jitter = 0.0 }",
        "kill_after = \"1s\"",
        &token,
    ));
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 1, "{out}");
    out.assert_count("considered hung", 3); // first start + 2 restarts
    out.assert_has("not restarting: 2 restarts in a row");
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn restart_on_failure_with_backoff_and_visible_restart_count() {
    let token = unique_token("restart");
    let d = Distarch::new().config(&one_group(
        "fail-until 2",
        1,
        "restart = \"on-failure\"\nmax_restarts = 5\nbackoff = { initial = \"100ms\", factor = 2.0, jitter = 0.0, max = \"1s\" }",
        "",
        &token,
    ));
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_has("INFO failing at restart 0");
    out.assert_has("INFO failing at restart 1");
    out.assert_has("INFO succeeded at restart 2");
    out.assert_has("restarting in 100ms (restart 1)");
    out.assert_has("restarting in 200ms (restart 2)");
}

#[test]
fn sigint_stops_every_worker_cleanly() {
    let token = unique_token("sigint");
    let d = Distarch::new().config(&one_group("serve", 3, "", "stop_grace = \"10s\"", &token));
    let mut running = d.spawn(&["launch"]);
    running.expect_lines("INFO serving", 3, LIMIT);
    running.signal("INT");
    let out = running.wait(LIMIT);
    assert_eq!(out.code, 130, "{out}");
    out.assert_count("INFO got stop", 3);
    out.assert_has("stopping everything: interrupted (SIGINT)");
    assert_no_leftovers(&token, Duration::from_secs(5));
    assert_nothing_runs_in(&d.dir().canonicalize().unwrap(), Duration::from_secs(5));
}

#[test]
fn a_second_sigint_kills_at_once() {
    let token = unique_token("sigint2");
    let d = Distarch::new().config(&one_group(
        "ignore-stop",
        2,
        "",
        "stop_grace = \"30s\"\nkill_after = \"30s\"",
        &token,
    ));
    let mut running = d.spawn(&["launch"]);
    running.expect_lines("INFO serving", 2, LIMIT);
    running.signal("INT");
    running.expect_lines("ignoring stop", 2, LIMIT);
    running.signal("INT");
    let out = running.wait(Duration::from_secs(10));
    assert_eq!(out.code, 130, "{out}");
    out.assert_count("ended after being killed", 2);
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn sigkill_of_the_master_leaves_no_worker_nor_grandchild() {
    let token = unique_token("sigkill");
    let d = Distarch::new().config(&one_group("grandchild", 2, "", "", &token));
    let mut running = d.spawn(&["launch"]);
    running.expect_lines("grandchild pid", 2, LIMIT);
    // Workers and grandchildren exist: 2 + 2 processes carry the token.
    assert_eq!(pids_with_token(&token).len(), 4, "{}", running.stdout());
    // Master, reaper, 2 workers and 2 grandchildren all run in the test's directory.
    let dir = d.dir().canonicalize().unwrap();
    assert_eq!(pids_in_dir(&dir).len(), 6, "{}", running.stdout());
    running.signal("KILL");
    let _ = running.wait(LIMIT);
    assert_no_leftovers(&token, Duration::from_secs(5));
    // The reaper (a fork of the master, in the same directory) is gone too.
    assert_nothing_runs_in(&d.dir().canonicalize().unwrap(), Duration::from_secs(5));
}

#[test]
fn garbage_output_does_not_hurt_the_master_nor_grow_its_memory() {
    let token = unique_token("garbage");
    let d = Distarch::new().config(&one_group(
        "garbage --stay",
        1,
        "",
        "stop_grace = \"5s\"",
        &token,
    ));
    let mut running = d.spawn(&["launch"]);
    running.expect_lines("after-garbage", 1, LIMIT);
    let peak = running.peak_rss_kib().expect("master's VmHWM");
    running.signal("INT");
    let out = running.wait(LIMIT);
    out.assert_has("INFO invalid utf8 \u{fffd}\u{fffd} here");
    out.assert_has("{not json malformed_frame=");
    // A frame type this master does not know is ignored; a known type with bad
    // members is malformed and shown.
    assert!(out.lines_with("no-such-frame").is_empty(), "{}", out.stdout);
    out.assert_has("{\"type\":\"log\",\"level\":\"loud\"} malformed_frame=");
    // Control characters from a worker are escaped: no forged master line, no
    // escape sequence reaches the terminal.
    assert!(
        out.lines_with("run 0000")
            .iter()
            .all(|l| !l.starts_with("[master]")),
        "a worker forged a master line:\n{}",
        out.stdout
    );
    out.assert_has("status: 50%\\n[master] INFO distarch: run 0000");
    out.assert_has("INFO \\e[31mred\\e[0m and a bell\\x07\\rover");
    assert!(!out.stdout.contains('\u{1b}'), "raw ESC in the output");
    assert_eq!(
        out.lines_with("[line truncated]").len(),
        1,
        "the 50 MiB line is cut once"
    );
    let cut = out.lines_with("[line truncated]")[0];
    assert!(
        cut.len() < 1024 * 1024 + 200,
        "the cut line holds at most 1 MiB"
    );
    // 50 MiB went through; the master must not have held it.
    assert!(
        peak < 64 * 1024,
        "master peak RSS {peak} KiB for a 50 MiB line"
    );
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn a_flooding_worker_is_back_pressured_and_every_line_arrives() {
    let token = unique_token("flood");
    let d = Distarch::new().config(&one_group("flood 200000", 2, "", "", &token));
    let out = d.run(&["launch"], Duration::from_secs(120));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.lines_with("xxxxxxxxxx").len(), 400_000);
    assert_eq!(
        out.lines_with("[g] [localhost] [2/2] INFO line 0000199999")
            .len(),
        1
    );
}

#[test]
fn json_log_format_gives_one_object_per_line() {
    let token = unique_token("json");
    let d = Distarch::new().config(&one_group("hello", 1, "", "", &token));
    let out = d.run(&["launch", "--log-format", "json"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    let mut hello = None;
    for line in out.stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
        if v["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("hello"))
        {
            hello = Some(v);
        }
    }
    let hello = hello.expect("the worker's line");
    assert_eq!(hello["group"], "g");
    assert_eq!(hello["id"], 1);
    assert_eq!(hello["group_id"], 1);
    assert_eq!(hello["level"], "info");
    assert_eq!(hello["stream"], "stdout");
}

#[test]
fn validate_prints_the_plan_without_starting_anything() {
    let token = unique_token("validate");
    let w = worker();
    let d = Distarch::new().config(&format!(
        "[groups.b]\ncommand = [{w}, \"serve\", \"--tag\", \"{token}\"]\nplacements.x = {{ transport = \"local\", instances = 2 }}\n[groups.a]\norder = 1\ncommand = [{w}, \"serve\", \"--tag\", \"{token}\"]\ninstances = 1\n"
    ));
    let out = d.run(&["validate"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_has("3 instance(s) in 2 group(s)");
    let rows: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("ID"))
        .skip(1)
        .collect();
    let cells: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| r.split_whitespace().collect())
        .collect();
    assert_eq!(cells[0][..3], ["1", "b", "1/2"]);
    assert_eq!(cells[1][..3], ["2", "b", "2/2"]);
    assert_eq!(cells[2][..5], ["3", "a", "1/1", "local", "local"]);
    assert!(pids_with_token(&token).is_empty());
    let dry = d.run(&["launch", "--dry-run"], LIMIT);
    assert_eq!(dry.stdout, out.stdout);
}

#[test]
fn layered_config_env_and_flags_override_the_file() {
    let token = unique_token("layers");
    let d = Distarch::new()
        .config(&one_group("hello", 1, "", "", &token))
        .env("DISTARCH_GROUPS__G__INSTANCES", "3");
    let out = d.run(&["validate"], LIMIT);
    out.assert_has("3 instance(s) in 1 group(s)");
    let out = d.run(&["validate", "--set", "groups.g.instances=4"], LIMIT);
    out.assert_has("4 instance(s) in 1 group(s)");
}

fn config_error(config: &str, args: &[&str]) -> Output {
    let d = Distarch::new().config(config);
    let out = d.run(args, LIMIT);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stdout.is_empty(),
        "nothing starts on a bad config\n{out}"
    );
    assert!(
        out.stderr.starts_with("distarch: invalid configuration:"),
        "{out}"
    );
    out
}

#[test]
fn bad_configs_exit_2_naming_the_key_and_the_file() {
    let w = worker();
    let unknown = config_error(
        &format!("[groups.g]\ncommand = [{w}]\ninstances = 1\ncomand = 1\n"),
        &["launch"],
    );
    assert!(
        unknown.stderr.contains("groups.g") && unknown.stderr.contains("comand"),
        "{unknown}"
    );
    assert!(unknown.stderr.contains("distarch.toml"), "{unknown}");

    let missing = config_error("[groups.g]\ninstances = 1\n", &["launch"]);
    assert!(
        missing.stderr.contains("groups.g") && missing.stderr.contains("missing key `command`"),
        "{missing}"
    );
    assert!(missing.stderr.contains("distarch.toml"), "{missing}");

    let zero = config_error(
        &format!("[groups.g]\ncommand = [{w}]\ninstances = 0\n"),
        &["launch"],
    );
    assert!(
        zero.stderr
            .contains("groups.g.instances: instances must be at least 1"),
        "{zero}"
    );
    assert!(zero.stderr.contains("distarch.toml"), "{zero}");

    let transport = config_error(
        &format!("[groups.g]\ncommand = [{w}]\nplacements.p = {{ transport = \"carrier-pigeon\", instances = 1 }}\n"),
        &["launch"],
    );
    assert!(
        transport
            .stderr
            .contains("groups.g.placements.p.transport: unknown transport `carrier-pigeon`"),
        "{transport}"
    );
    assert!(transport.stderr.contains("distarch.toml"), "{transport}");

    let duration = config_error(
        &format!(
            "[launcher]\ntimeout = \"5 parsecs\"\n[groups.g]\ncommand = [{w}]\ninstances = 1\n"
        ),
        &["launch"],
    );
    assert!(
        duration.stderr.contains("launcher.timeout")
            && duration.stderr.contains("invalid duration `5 parsecs`"),
        "{duration}"
    );
    assert!(duration.stderr.contains("distarch.toml"), "{duration}");

    let flag = config_error(
        &format!("[groups.g]\ncommand = [{w}]\ninstances = 1\n"),
        &["launch", "--timeout", "soon"],
    );
    assert!(
        flag.stderr.contains("launcher.timeout")
            && flag.stderr.contains("from command-line flag --timeout"),
        "{flag}"
    );
}

#[test]
fn a_missing_program_fails_to_start_with_a_clear_error() {
    let d =
        Distarch::new().config("[groups.g]\ncommand = [\"./no-such-program\"]\ninstances = 1\n");
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 1, "{out}");
    out.assert_has(
        "[g] [localhost] [1/1] ERROR distarch: failed to start: cannot start `./no-such-program`",
    );
}

#[test]
fn the_shell_worker_works() {
    let d = Distarch::new();
    let script = repo_root().join("examples/shell-worker.sh");
    let d = d.config(&format!(
        "[launcher]\nmax_running_time = \"2s\"\nstop_grace = \"5s\"\n[groups.sh]\ncommand = [\"sh\", {s}]\nparams = {{ message = \"from-sh\" }}\ninstances = 2\n",
        s = toml_str(script.display().to_string())
    ));
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_has("[sh] [localhost] [1/1]");
    out.assert_has("[sh] [localhost] [2/2]");
    assert!(out.stdout.contains("from-sh"), "{out}");
    out.assert_count("ended after a stop request: exit code 0", 2);
}

#[test]
fn the_sdk_example_runs_from_the_repository_root() {
    let d = Distarch::new();
    let config = repo_root().join("examples/distarch.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            "target/debug/distarch-example-worker",
            &example_worker_bin().display().to_string(),
        )
        .replace("max_running_time = \"5s\"", "max_running_time = \"2s\"");
    let d = d.config(&text);
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_has("[first] [localhost] [1/1] INFO I am instance 1 (1/3 of group first)");
    out.assert_has("[second] [localhost] [5/2] INFO I am instance 5 (2/2 of group second)");
    out.assert_has("INFO message: Hello World!");
    out.assert_count("ended after a stop request: exit code 0", 5);
}

#[test]
fn a_custom_transport_registered_by_a_library_user_runs() {
    let bin = profile_dir().join("distarch-custom-transport");
    let config = repo_root().join("examples/custom-transport.toml");
    let out = std::process::Command::new(bin)
        .arg(config)
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("[tagged] [tagged-blue] [1/1] INFO tag=blue host=tagged-blue id=1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[tagged] [tagged-blue] [2/2] INFO tag=blue host=tagged-blue id=2"),
        "{stdout}"
    );
}

#[test]
fn env_workdir_priority_and_process_group_reach_the_worker() {
    let token = unique_token("env");
    let d = Distarch::new();
    let work = d.path("work");
    std::fs::create_dir(&work).unwrap();
    let d = d.config(&one_group(
        "env",
        1,
        &format!(
            "env = {{ EXTRA = \"x y\" }}\nworkdir = {}\npriority = 7",
            toml_str(work.display().to_string())
        ),
        "",
        &token,
    ));
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_has(&format!(
        "cwd={} extra=x y nice=7 pgid-is-pid=true",
        work.display()
    ));
}

#[test]
fn log_level_hides_less_severe_lines() {
    let token = unique_token("level");
    let d = Distarch::new().config(&one_group("hello", 1, "", "", &token));
    let all = d.run(&["launch"], LIMIT);
    all.assert_has("DEBUG distarch: started (pid");
    let info = d.run(&["launch", "--log-level", "info"], LIMIT);
    assert_eq!(info.code, 0, "{info}");
    assert!(info.lines_with("DEBUG").is_empty(), "{info}");
    info.assert_has("[g] [localhost] [1/1] INFO hello id=1");
    let warn = d.run(&["launch", "--log-level", "warn"], LIMIT);
    assert!(warn.stdout.is_empty(), "{warn}");
}

/// While it starts many short workers, the master closes the descriptors of
/// those that already ended: it does not run every spawn before it reads the
/// first ones' output and sees their end (each spawn then made the new process
/// close every descriptor the master held, about 3000 at the end of a start of
/// 1000).
#[test]
fn starting_many_short_workers_holds_only_the_running_ones_descriptors() {
    const N: u32 = 400;
    let token = unique_token("manyshort");
    let d = Distarch::new().config(&one_group("hello", N, "timeout = \"0s\"", "", &token));
    let mut running = d.spawn(&["launch"]);
    let fds = format!("/proc/{}/fd", running.pid());
    let mut most = 0;
    // Until the master ends (a zombie lists none).
    while let Some(n) = std::fs::read_dir(&fds).ok().map(|e| e.count()) {
        if n == 0 {
            break;
        }
        most = most.max(n);
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = running.wait(LIMIT);
    assert_eq!(out.code, 0, "{out}");
    out.assert_count("INFO hello id=", N as usize);
    // 4 per running instance (stdin, stdout, stderr, pidfd): holding every
    // instance's would be 1600.
    assert!(most < 400, "the master held {most} descriptors at once");
    assert_no_leftovers(&token, Duration::from_secs(5));
}
