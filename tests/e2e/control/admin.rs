//! Reload, service mode, stale sockets, refused clients, the TCP token and the
//! example systemd unit.

use super::steer::*;
use distarch_e2e::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn pid_of(s: &Steer, id: u64) -> String {
    s.instance(id).unwrap()["process"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn groups_added_by_a_reload_wait_for_their_dependencies_as_at_launch() {
    let token = unique_token("ctldeps");
    let s = Steer::launch(&group("first", "serve", 1, "", &token), "reldeps1", &[], 1);
    // Two new groups: `late` waits for `base` (also new) to be ready, which takes 1 s.
    let new =
        format!(
        "{}[groups.base]\ncommand = [\"sh\", \"-c\", \"echo base up; exec sleep 600 # {token}\"]\n\
         instances = 1\nready = {{ delay = \"1s\" }}\n{}",
        group("first", "serve", 1, "", &token),
        group("late", "serve", 1, "depends_on = { base = \"ready\" }", &token),
    );
    std::fs::write(s.d.path("new.toml"), &new).unwrap();
    let outcome = s.json(&["reload", "reldeps1", "-c", "new.toml"]);
    assert_eq!(outcome["added"], serde_json::json!(["base", "late"]));
    s.master
        .expect_lines("[late] [localhost] [3/1] INFO serving", 1, WAIT);
    let out = s.master.stdout();
    let base_ready = out
        .find("[base] [localhost] [2/1] DEBUG distarch: ready")
        .unwrap_or_else(|| panic!("base never ready:\n{out}"));
    let late_started = out
        .find("[late] [localhost] [3/1] DEBUG distarch: started")
        .unwrap_or_else(|| panic!("late never started:\n{out}"));
    assert!(
        base_ready < late_started,
        "late started before base was ready:\n{out}"
    );
    assert_eq!(s.cli(&["stop", "reldeps1"]).code, 0);
    let mut master = s.master;
    assert_eq!(master.wait(LIMIT).code, 0);
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn reload_starts_new_groups_stops_removed_ones_rolls_changed_ones_and_leaves_the_rest() {
    let token = unique_token("ctlreload");
    let old = format!(
        "{}{}{}",
        group("same", "serve", 1, "", &token),
        group("changed", "steady", 2, "params = { v = 1 }", &token),
        group("dropped", "serve", 1, "", &token),
    );
    let s = Steer::launch(&old, "reload01", &[], 4);
    // ids: changed 1-2, dropped 3, same 4.
    let same_pid = pid_of(&s, 4);
    let new = format!(
        "{}{}{}",
        group("same", "serve", 1, "", &token),
        group("changed", "steady", 2, "params = { v = 2 }", &token),
        group("added", "serve", 2, "", &token),
    );
    std::fs::write(s.d.path("new.toml"), &new).unwrap();
    // A bad configuration changes nothing and says why.
    std::fs::write(
        s.d.path("bad.toml"),
        "[groups.x]\ncommand = []\ninstances = 1\n",
    )
    .unwrap();
    let bad = s.cli(&["reload", "reload01", "-c", "bad.toml"]);
    assert_eq!(bad.code, 2, "{bad}");
    assert!(
        bad.stderr.contains("groups.x.command") && bad.stderr.contains("nothing changed"),
        "{bad}"
    );
    assert_eq!(ids(&s.instances(), ""), [1, 2, 3, 4]);

    let outcome = s.json(&["reload", "reload01", "-c", "new.toml"]);
    assert_eq!(outcome["added"], serde_json::json!(["added"]));
    assert_eq!(outcome["removed"], serde_json::json!(["dropped"]));
    assert_eq!(outcome["changed"], serde_json::json!(["changed"]));
    assert_eq!(outcome["unchanged"], serde_json::json!(["same"]));
    s.wait_instances("the new set", WAIT, |all| {
        ids(all, "") == [1, 2, 4, 5, 6] && all_in(all, &[1, 2, 4, 5, 6], "ready")
    });
    // New groups get ids after the highest ever given.
    assert_eq!(ids(&s.instances(), "added"), [5, 6]);
    assert_eq!(pid_of(&s, 4), same_pid, "an unchanged group was touched");
    // A rolled instance's new start counts as its next restart (its container or
    // pod name must differ from the one it replaces).
    for (id, gid) in [(1, 1), (2, 2)] {
        s.master.expect_lines(
            &format!("[changed] [localhost] [{id}/{gid}] INFO steady id={id} group_id={gid} count=2 restart=1 params={{\"v\":2}}"),
            1,
            WAIT,
        );
    }
    s.master
        .expect_lines("[dropped] [localhost] [3/1] INFO got stop", 1, WAIT);

    // SIGHUP: the master reads its own configuration (distarch.toml) again.
    let hup = format!(
        "{}{}{}",
        group("same", "serve", 1, "", &token),
        group("changed", "steady", 2, "params = { v = 2 }", &token),
        group("late", "serve", 1, "", &token)
    );
    std::fs::write(s.d.path("distarch.toml"), hup).unwrap();
    s.master.signal("HUP");
    s.wait_instances("the group added by SIGHUP", WAIT, |all| {
        ids(all, "late") == [7] && all_in(all, &[7], "ready")
    });
    // `distarch.toml` has no `added` group, `new.toml` had: SIGHUP removed it.
    assert!(ids(&s.instances(), "added").is_empty());
    assert_eq!(s.cli(&["stop", "reload01"]).code, 0);
    let mut master = s.master;
    assert_eq!(master.wait(LIMIT).code, 0);
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn reload_applies_the_launcher_defaults_instances_start_with_and_names_the_rest() {
    let token = unique_token("ctlrelaunch");
    let groups = format!(
        "{}{}",
        group("uses", "serve", 1, "", &token),
        group("own", "serve", 1, "stop_grace = \"7s\"", &token),
    );
    let s = Steer::launch(&groups, "rellaunch", &[], 2);
    // ids: own 1, uses 2.
    let own_pid = pid_of(&s, 1);
    let new = format!(
        "[launcher]\nstop_grace = \"3s\"\nlog_level = \"info\"\nlog_format = \"json\"\n\
         ready_timeout = \"9s\"\n{groups}"
    );
    std::fs::write(s.d.path("new.toml"), &new).unwrap();
    let outcome = s.json(&["reload", "rellaunch", "-c", "new.toml"]);
    // `uses` takes the launcher's stop_grace: rolled; `own` sets its own: untouched.
    assert_eq!(outcome["changed"], serde_json::json!(["uses"]), "{outcome}");
    assert_eq!(
        outcome["unchanged"],
        serde_json::json!(["own"]),
        "{outcome}"
    );
    let notes = outcome["notes"].to_string();
    assert!(
        notes.contains("applied launcher.stop_grace, launcher.log_format, launcher.log_level"),
        "{notes}"
    );
    assert!(
        notes.contains("launcher.ready_timeout changed but is not reloaded"),
        "{notes}"
    );
    // The output settings apply at once: the rolled instance's new "serving" line
    // comes as JSON, and no JSON line is below the new level.
    s.master.expect_lines(r#""message":"serving""#, 1, WAIT);
    let out = s.master.stdout();
    let json: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(
        json.iter().any(|v| v["group"] == "uses" && v["id"] == 2),
        "{out}"
    );
    assert!(
        json.iter()
            .all(|v| v["level"] != "debug" && v["level"] != "trace"),
        "a line below the reloaded level:\n{out}"
    );
    assert_eq!(
        pid_of(&s, 1),
        own_pid,
        "a group with its own stop_grace was rolled"
    );
    assert_eq!(s.cli(&["stop", "rellaunch"]).code, 0);
    let mut master = s.master;
    assert_eq!(master.wait(LIMIT).code, 0);
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn service_mode_restarts_without_limit_and_only_ends_on_request() {
    let token = unique_token("ctlsvc");
    let config = format!(
        "{}{}",
        group(
            "quick",
            "hello",
            1,
            "max_restarts = \"unlimited\"\nbackoff = { initial = \"10ms\", max = \"20ms\" }",
            &token
        ),
        group("once", "hello", 1, "restart = \"never\"", &token),
    );
    let d = distarch(&config);
    let master = d.spawn(&["launch", "--run-id", "svc00001", "--service"]);
    let s = Steer {
        d,
        master,
        run: "svc00001".into(),
    };
    // Past the default max_restarts (5), restarted by the service default `always`.
    s.wait_instances("many restarts", WAIT, |all| {
        all.iter()
            .any(|i| i["group"] == "quick" && i["restarts"].as_u64().unwrap_or(0) >= 8)
    });
    // The `never` instance ended; the run goes on.
    // (Found by group: ids go by group name, so `once` is 1 and `quick` 2; `quick`
    // passes through `ended` between its restarts and must not stand in for it.)
    s.wait_instances("once ended", WAIT, |all| {
        let once = ids(all, "once");
        once.len() == 1 && all_in(all, &once, "ended")
    });
    let runs = s.json(&["ps"]);
    assert_eq!(runs[0]["service"], true);
    assert_eq!(s.cli(&["stop", "svc00001"]).code, 0);
    let mut master = s.master;
    let end = master.wait(LIMIT);
    assert_eq!(end.code, 0, "{end}");
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn a_stale_socket_of_a_killed_master_is_cleaned_by_the_next_ps() {
    let token = unique_token("ctlstale");
    let s = Steer::launch(&group("g", "serve", 1, "", &token), "stale001", &[], 1);
    let socket = s.d.path("rt/distarch/stale001.sock");
    let descriptor = s.d.path("rt/distarch/stale001.json");
    assert!(socket.exists() && descriptor.exists());
    s.master.signal("KILL");
    let mut master = s.master;
    master.wait(LIMIT);
    assert!(socket.exists(), "the killed master removed its socket?");
    let ps = s.d.run(&["ps"], LIMIT);
    assert_eq!(ps.code, 0, "{ps}");
    assert!(
        ps.stderr.contains("removed the files of run stale001"),
        "{ps}"
    );
    assert_eq!(ps.stdout.lines().count(), 1, "{ps}");
    assert!(!socket.exists() && !descriptor.exists());
    let gone = s.d.run(&["stop", "stale001"], LIMIT);
    assert_eq!(gone.code, 6, "{gone}");
    assert_no_leftovers(&token, Duration::from_secs(10));
}

/// Runs `args` as user `nobody` (setpriv), with the test's environment.
fn as_nobody(d: &Distarch, program: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(program)
        .args(args)
        .env("XDG_RUNTIME_DIR", d.path("rt"))
        .current_dir("/")
        .output()
        .expect("setpriv")
}

#[test]
fn another_user_is_refused() {
    let token = unique_token("ctluser");
    let s = Steer::launch(&group("g", "serve", 1, "", &token), "user0001", &[], 1);
    // The test's temp dir must be reachable for nobody to even try.
    for p in [s.d.dir().to_path_buf(), s.d.path("rt")] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let bin = distarch_bin();
    let out = as_nobody(&s.d, &bin.display().to_string(), &["ps", "user0001"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains("runtime directory"), "{stderr}");
    // Even with the directory and socket opened up, the master checks who connects.
    let dir = s.d.path("rt/distarch");
    let socket = dir.join("user0001.sock");
    for (p, mode) in [(&dir, 0o755), (&socket, 0o777)] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let probe = test_worker_bin().display().to_string();
    let out = as_nobody(
        &s.d,
        &probe,
        &["probe-socket", &socket.display().to_string()],
    );
    let answer = String::from_utf8_lossy(&out.stdout);
    let answer = answer
        .split_once("HTTP/")
        .map(|(_, a)| format!("HTTP/{a}"))
        .unwrap_or_default();
    assert!(
        answer.starts_with("HTTP/1.1 403"),
        "{answer}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(answer.contains("is not the run's user"), "{answer}");
    assert!(!answer.contains("\"id\""), "{answer}");
    assert!(wait_until(WAIT, || s
        .master
        .stdout()
        .contains("refused a connection")));
    // The opened-up directory is not trusted by the run's own user either.
    let unsafe_dir = s.cli(&["ps"]);
    assert_eq!(unsafe_dir.code, 7, "{unsafe_dir}");
    assert!(unsafe_dir.stderr.contains("must be 700"), "{unsafe_dir}");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    assert_eq!(s.cli(&["stop", "user0001"]).code, 0);
    let mut master = s.master;
    master.wait(LIMIT);
}

/// Sends one HTTP request over TCP; returns the whole answer.
fn http(addr: &str, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

#[test]
fn tcp_needs_the_bearer_token() {
    let token = unique_token("ctltcp");
    let config = format!(
        "[launcher.control]\nlisten = \"127.0.0.1:0\"\n{}",
        group("g", "serve", 1, "", &token)
    );
    let s = Steer::launch(&config, "tcp00001", &[], 1);
    let runs = s.json(&["ps"]);
    let addr = runs[0]["listen"].as_str().unwrap().to_string();
    let token_file = s.d.path("rt/distarch/tcp00001.token");
    let secret = std::fs::read_to_string(&token_file).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let get = |auth: &str| {
        http(
            &addr,
            &format!("GET /v1/instances HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
        )
    };
    let none = get("");
    assert!(none.starts_with("HTTP/1.1 401"), "{none}");
    let wrong = get("Authorization: Bearer nope\r\n");
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let right = get(&format!("Authorization: Bearer {secret}\r\n"));
    assert!(right.starts_with("HTTP/1.1 200"), "{right}");
    let body = right.split("\r\n\r\n").nth(1).unwrap();
    let all: Value = serde_json::from_str(body.trim()).unwrap();
    assert_eq!(all[0]["id"], 1);
    assert!(wait_until(WAIT, || s
        .master
        .stdout()
        .contains("refused a TCP request")));
    assert_eq!(s.cli(&["stop", "tcp00001"]).code, 0);
    let mut master = s.master;
    master.wait(LIMIT);
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn the_example_systemd_unit_is_valid() {
    let unit = repo_root().join("examples/systemd/distarch.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not KEY=VALUE: {line}"));
        assert!(!section.is_empty(), "{line} is outside a section");
        keys.push((
            section.clone(),
            key.trim().to_string(),
            value.trim().to_string(),
        ));
    }
    let get = |s: &str, k: &str| {
        keys.iter()
            .find(|(sec, key, _)| sec == s && key == k)
            .map(|(_, _, v)| v.clone())
            .unwrap_or_else(|| panic!("[{s}] {k} is missing"))
    };
    assert_eq!(get("Service", "Type"), "notify");
    assert!(get("Service", "ExecStart").contains("launch --service"));
    assert!(get("Service", "ExecReload").contains("-HUP $MAINPID"));
    assert_eq!(get("Install", "WantedBy"), "multi-user.target");
    // systemd's own check when it is installed, with ExecStart pointing at the
    // binary just built (verify wants the program to exist).
    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("distarch.service");
        let exec = get("Service", "ExecStart");
        let program = exec.split_whitespace().next().unwrap().to_string();
        std::fs::write(
            &copy,
            text.replace(&program, &distarch_bin().display().to_string()),
        )
        .unwrap();
        let out = std::process::Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&copy)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let problems: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("distarch.service"))
            .collect();
        assert!(out.status.success() && problems.is_empty(), "{stderr}");
    }
}
