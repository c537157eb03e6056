//! End-to-end tests of what the master shows and keeps (issue 9): log files with
//! rotation and reopening, Prometheus metrics scraped during a run and checked by
//! value, the `top` view driven in tmux, `tracing` records of the transports in
//! the log, and `gc` through the log writer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

#[path = "control/steer.rs"]
#[allow(dead_code)] // shared with control.rs; not every helper is used here
mod steer;

use distarch_e2e::dockerd::Dockerd;
use distarch_e2e::image::build_busybox_image;
use distarch_e2e::sshd::SshFixture;
use distarch_e2e::*;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use steer::*;

/// Line numbers of the flood worker's lines in `text` (`line 0000000042 xxx`).
fn flood_numbers(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| {
            let at = l.find("INFO line ")?;
            l[at + 10..].split_whitespace().next()?.parse().ok()
        })
        .collect()
}

#[test]
fn log_files_rotate_under_a_flood_keep_at_most_the_configured_files_and_lose_no_line() {
    const LINES: u64 = 100_000;
    let d = distarch(&format!(
        "[launcher]\nlog_level = \"info\"\n[launcher.log_file]\npath = \"logs/run.log\"\nmax_size = \"400KB\"\nkeep = 3\n\
         [groups.f]\ncommand = [{w}, \"flood\", \"{LINES}\"]\ninstances = 1\n\
         log_file = {{ path = \"logs/f.log\", max_size = \"100MB\", timestamps = false }}\n",
        w = worker()
    ));
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    let logs = d.path("logs");
    let mut names: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("run.log"))
        .collect();
    names.sort();
    // The current file and at most `keep` rotated ones.
    assert_eq!(names, ["run.log", "run.log.1", "run.log.2", "run.log.3"]);
    // Oldest first: run.log.3, .2, .1, then run.log. Their lines follow each other
    // without a gap or a cut line, up to the last one.
    let mut numbers = Vec::new();
    for name in ["run.log.3", "run.log.2", "run.log.1", "run.log"] {
        let text = std::fs::read_to_string(logs.join(name)).unwrap();
        assert!(text.ends_with('\n'), "{name} ends inside a line");
        for line in text.lines() {
            // Every line of a file starts with its time (on by default in files).
            assert!(
                line.len() > 24 && line.as_bytes()[4] == b'-' && line[..24].ends_with('Z'),
                "{name}: {line}"
            );
        }
        numbers.extend(flood_numbers(&text));
    }
    assert!(numbers.len() > 1000, "{} lines kept", numbers.len());
    let first = numbers[0];
    let expected: Vec<u64> = (first..LINES).collect();
    assert!(
        numbers == expected,
        "lines lost or repeated across rotations"
    );
    // The group's own file, never rotated here, has every line, without timestamps.
    let group = std::fs::read_to_string(logs.join("f.log")).unwrap();
    assert_eq!(flood_numbers(&group), (0..LINES).collect::<Vec<_>>());
    assert!(
        group.starts_with("[f] [localhost] [1/1] "),
        "{}",
        &group[..80]
    );
    // Standard output had every line too.
    assert_eq!(flood_numbers(&out.stdout).len() as u64, LINES);
}

#[test]
fn sighup_opens_the_log_file_again_after_it_was_moved_away() {
    let token = unique_token("obshup");
    let config = format!(
        "[launcher.log_file]\npath = \"run.log\"\nformat = \"json\"\n{}",
        group("g", "steady", 1, "", &token)
    );
    let s = Steer::launch(&config, "hup0001", &[], 1);
    let log = s.d.path("run.log");
    let moved = s.d.path("run.log.moved");
    assert!(wait_until(LIMIT, || std::fs::read_to_string(&log)
        .is_ok_and(|t| t.contains("tick 1"))));
    std::fs::rename(&log, &moved).unwrap();
    s.master.signal("HUP");
    assert!(
        wait_until(LIMIT, || std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains("\"message\":\"tick"))),
        "no new run.log after SIGHUP; master:\n{}",
        s.master.stdout()
    );
    // JSON lines, one object each, in the new file.
    let text = std::fs::read_to_string(&log).unwrap();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["time"].is_string() && v["level"].is_string(), "{line}");
    }
    let out = s.cli(&["stop", "hup0001"]);
    assert_eq!(out.code, 0, "{out}");
    let mut master = s.master;
    assert_eq!(master.wait(LIMIT).code, 0);
    assert_no_leftovers(&token, Duration::from_secs(5));
}

/// `GET /metrics` on `addr`, parsed with prometheus-parse.
fn scrape(addr: &str) -> Option<prometheus_parse::Scrape> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    let lines = body.lines().map(|l| Ok(l.to_string()));
    Some(prometheus_parse::Scrape::parse(lines).expect("exposition text parses"))
}

/// The value of the sample `name` whose labels include `labels`.
fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .and_then(|x| match &x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(*v),
            prometheus_parse::Value::Histogram(buckets) => {
                buckets.iter().map(|b| b.count).reduce(f64::max)
            }
            _ => None,
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn metrics_are_scraped_during_a_run_with_restarts_and_an_oom_and_checked_by_value() {
    let dockerd = Dockerd::shared();
    let image = "distarch-test/obs-busybox:1";
    if !dockerd
        .docker(&["image", "inspect", image])
        .status
        .success()
    {
        build_busybox_image(&dockerd, image);
    }
    let token = unique_token("obsmetrics");
    let addr = format!("127.0.0.1:{}", free_port());
    let quick =
        "restart = \"on-failure\"\nbackoff = { initial = \"50ms\", max = \"100ms\", jitter = 0.0 }";
    let config = format!(
        "{ok}{crash}\
         [groups.oom]\ncommand = [\"-c\", \"head -c 300m /dev/zero | tail\"]\n{quick}\nmax_restarts = 2\n\
         placements.box = {{ transport = \"docker\", image = \"{image}\", host = {host}, network = \"none\", memory = \"32m\", instances = 1 }}\n",
        ok = group("ok", "serve", 3, "", &token),
        crash = group("crash", "fail-until 2", 1, quick, &token),
        host = toml_str(dockerd.host()),
    );
    // A run id of this process: a failed earlier run may have left its containers.
    let run = format!("met{}", std::process::id());
    let s = Steer::launch(&config, &run, &["--metrics", &addr], 3);
    let mut last = None;
    let done = wait_until(Duration::from_secs(60), || {
        last = scrape(&addr);
        last.as_ref().is_some_and(|m| {
            value(
                m,
                "distarch_instance_exits_total",
                &[("group", "oom"), ("reason", "oom")],
            ) == Some(3.0)
                && value(
                    m,
                    "distarch_instance_exits_total",
                    &[("group", "crash"), ("reason", "exit_ok")],
                ) == Some(1.0)
        })
    });
    let m = last.expect("metrics answered");
    let dump: Vec<String> = m
        .samples
        .iter()
        .map(|x| format!("{} {:?} {:?}", x.metric, x.labels, x.value))
        .collect();
    assert!(
        done,
        "metrics never showed the oom and crash ends:\n{}",
        dump.join("\n")
    );
    let v = |name: &str, labels: &[(&str, &str)]| value(&m, name, labels);
    // The OOM group: 3 starts, each killed for memory, restarted twice, then given up.
    assert_eq!(
        v("distarch_instance_starts_total", &[("group", "oom")]),
        Some(3.0)
    );
    assert_eq!(
        v("distarch_instance_restarts_total", &[("group", "oom")]),
        Some(2.0)
    );
    assert_eq!(
        v(
            "distarch_instances",
            &[
                ("group", "oom"),
                ("transport", "docker"),
                ("state", "ended")
            ]
        ),
        Some(1.0)
    );
    // The crashing group: two failures, two restarts, then a clean exit; each run
    // prints two lines (its pid, then failing/succeeded).
    assert_eq!(
        v(
            "distarch_instance_exits_total",
            &[("group", "crash"), ("reason", "exit_error")]
        ),
        Some(2.0)
    );
    assert_eq!(
        v("distarch_instance_restarts_total", &[("group", "crash")]),
        Some(2.0)
    );
    assert_eq!(
        v(
            "distarch_lines_total",
            &[("group", "crash"), ("stream", "stdout")]
        ),
        Some(6.0)
    );
    // The serving group: 3 ready local instances, 3 readiness times observed.
    assert_eq!(
        v(
            "distarch_instances",
            &[("group", "ok"), ("transport", "local"), ("state", "ready")]
        ),
        Some(3.0)
    );
    assert_eq!(v("distarch_ready", &[("group", "ok")]), Some(3.0));
    assert_eq!(v("distarch_up", &[("group", "ok")]), Some(3.0));
    assert_eq!(
        v("distarch_start_to_ready_seconds", &[("group", "ok")]),
        Some(3.0)
    );
    assert_eq!(v("distarch_frames_total", &[("group", "ok")]), Some(3.0));
    assert_eq!(
        v(
            "distarch_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    // The master's own lines are counted by level (the "steered through" line at least).
    assert!(v("distarch_master_log_records_total", &[("level", "info")]).unwrap_or(0.0) >= 1.0);
    let out = s.cli(&["stop", &run]);
    assert_eq!(out.code, 0, "{out}");
    let mut master = s.master;
    master.wait(LIMIT);
    assert_no_leftovers(&token, Duration::from_secs(5));
}

/// A tmux server of the test's own, with one window running `sh`.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(width: u16, height: u16) -> Tmux {
        // One tmux server per test: tests run in parallel threads.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = Tmux {
            socket: format!("distarch-test-{}-{n}", std::process::id()),
        };
        let ok = t
            .cmd(&["-f", "/dev/null", "new-session", "-d", "-s", "t"])
            .args(["-x", &width.to_string(), "-y", &height.to_string(), "sh"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux did not start");
        t
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]).args(args);
        c.env("TERM", "xterm-256color");
        c
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status().unwrap().success());
    }

    fn screen(&self) -> String {
        let out = self
            .cmd(&["capture-pane", "-p", "-t", "t"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_screen(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let ok = wait_until(Duration::from_secs(30), || {
            last = self.screen();
            cond(&last)
        });
        assert!(ok, "waited for {what}; screen:\n{last}");
        last
    }

    fn display(&self, format: &str) -> String {
        let out = self
            .cmd(&["display", "-p", "-t", "t", format])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]).status();
    }
}

#[test]
fn top_in_tmux_shows_50_ready_suspends_a_group_with_a_key_survives_a_resize_and_quits_clean() {
    let token = unique_token("obstop");
    let config = format!(
        "{}{}",
        group("alpha", "serve", 30, "", &token),
        group("beta", "serve", 20, "", &token)
    );
    let s = Steer::launch(&config, "top0001", &[], 50);
    let tmux = Tmux::start(140, 45);
    let rt = s.d.path("rt");
    tmux.keys(&[
        &format!(
            "XDG_RUNTIME_DIR={} {} top top0001; echo TOP-EXIT=$?",
            rt.display(),
            distarch_bin().display()
        ),
        "Enter",
    ]);
    let screen = tmux.wait_screen("50 ready instances", |s| {
        s.contains("50 instance(s), 50 ready")
    });
    assert!(screen.contains("distarch top"), "{screen}");
    assert!(
        screen
            .lines()
            .any(|l| l.contains("alpha") && l.contains("ready 30")),
        "{screen}"
    );
    assert!(
        screen
            .lines()
            .any(|l| l.contains("beta") && l.contains("ready 20")),
        "{screen}"
    );
    // Select group beta with the filter, then suspend it with `s`, confirmed.
    tmux.keys(&["/", "beta", "Enter"]);
    tmux.wait_screen("the filter", |s| s.contains("instances 1/20"));
    tmux.keys(&["s"]);
    tmux.wait_screen("the confirmation", |s| {
        s.contains("suspend group beta?  (y/n)")
    });
    tmux.keys(&["y"]);
    let screen = tmux.wait_screen("beta suspended", |s| {
        s.lines()
            .any(|l| l.contains("beta") && l.contains("suspended 20"))
    });
    assert!(
        screen
            .lines()
            .any(|l| l.contains("alpha") && l.contains("ready 30")),
        "{screen}"
    );
    s.wait_instances("beta suspended", Duration::from_secs(30), |all| {
        all_in(all, &ids(all, "beta"), "suspended") && all_in(all, &ids(all, "alpha"), "ready")
    });
    // A smaller window: the view is drawn again to fit.
    assert!(tmux
        .cmd(&["resize-window", "-t", "t", "-x", "80", "-y", "24"])
        .status()
        .unwrap()
        .success());
    let screen = tmux.wait_screen("the view at 80x24", |s| {
        s.lines().count() <= 24 && s.contains("distarch top") && s.contains("instances 1/20")
    });
    assert!(screen.lines().all(|l| l.chars().count() <= 80), "{screen}");
    // Quit: the shell's screen is back, with no trace of the view or escape codes.
    tmux.keys(&["q"]);
    // (The shell may print its prompt on the same line as the echo's output.)
    let screen = tmux.wait_screen("top to end", |s| {
        s.lines().any(|l| l.trim_end().ends_with("TOP-EXIT=0"))
    });
    assert!(
        !screen.contains("group/gid") && !screen.contains("distarch top —"),
        "{screen}"
    );
    assert!(
        !screen.contains('\u{1b}') && !screen.contains("[?"),
        "{screen}"
    );
    assert_eq!(tmux.display("#{alternate_on} #{cursor_flag}"), "0 1");
    let with_codes = tmux
        .cmd(&["capture-pane", "-p", "-e", "-t", "t"])
        .output()
        .unwrap();
    let with_codes = String::from_utf8_lossy(&with_codes.stdout);
    assert!(
        !with_codes.contains("?1049") && !with_codes.contains("?1000"),
        "{with_codes:?}"
    );
    let out = s.cli(&["stop", "top0001"]);
    assert_eq!(out.code, 0, "{out}");
    let mut master = s.master;
    master.wait(LIMIT);
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn the_ssh_transports_recorded_new_host_key_message_reaches_the_log() {
    let mut fx = SshFixture::new();
    let a = fx.start("127.0.0.1");
    let d = Distarch::new().config(&format!(
        "[groups.g]\ncommand = [{w}, \"hello\"]\nplacements.remote = {{ transport = \"ssh\", instances = 1, host_key_check = \"accept-new\", {s} }}\n",
        w = worker(),
        s = fx.placement_settings(&[a]),
    ));
    let out = d.run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    let lines = out.lines_with("recorded new host key");
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].contains("INFO distarch: recorded new host key"),
        "{out}"
    );
    assert!(lines[0].contains(&fx.server(a).fingerprint()), "{out}");
    // In JSON mode the same record is a JSON line.
    std::fs::write(&fx.known_hosts, "").unwrap();
    let out = d.run(&["launch", "--log-format", "json"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    let line = out.lines_with("recorded new host key");
    assert_eq!(line.len(), 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(line[0]).unwrap();
    assert_eq!(v["level"], "info");
    assert_eq!(v["message"], "recorded new host key");
    assert!(v["fields"]["fingerprint"].as_str().is_some(), "{v}");
}

#[test]
fn gc_prints_json_lines_with_log_format_json() {
    let d = Distarch::new().env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let out = d.run(&["gc", "--log-format", "json", "--dry-run"], LIMIT);
    assert!(!out.stdout.trim().is_empty(), "{out}");
    for line in out.stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{out}"));
        assert_eq!(v["source"], "master", "{line}");
        assert!(v["message"].as_str().unwrap().starts_with("gc: "), "{line}");
    }
    let text = d.run(&["gc", "--dry-run"], LIMIT);
    assert!(
        text.stdout.lines().all(|l| l.starts_with("[master] ")),
        "{text}"
    );
}

#[test]
fn launch_tui_shows_the_view_and_quitting_it_stops_the_run_cleanly() {
    let token = unique_token("obstui");
    let run = format!("tui{}", std::process::id());
    let d = distarch(&group("g", "serve", 5, "", &token));
    let tmux = Tmux::start(120, 40);
    tmux.keys(&[
        &format!(
            "cd {} && XDG_RUNTIME_DIR={} {} launch --run-id {run} --tui; echo LAUNCH-EXIT=$?",
            d.dir().display(),
            d.path("rt").display(),
            distarch_bin().display()
        ),
        "Enter",
    ]);
    let screen = tmux.wait_screen("5 ready instances", |s| {
        s.contains("5 instance(s), 5 ready")
    });
    assert!(
        screen.contains(&format!("distarch top — {run}")),
        "{screen}"
    );
    // The view, not the scrolling log: the screen starts with its title, and the
    // worker's lines show only in the output pane.
    assert!(screen.starts_with(" distarch top"), "{screen}");
    tmux.wait_screen("the selected instance's output in its pane", |s| {
        s.lines()
            .any(|l| l.contains("INFO serving") && l.starts_with('│'))
    });
    tmux.keys(&["q"]);
    tmux.wait_screen("the confirmation", |s| {
        s.contains("stop the run and quit?  (y/n)")
    });
    tmux.keys(&["y"]);
    let screen = tmux.wait_screen("the master to end", |s| {
        s.lines().any(|l| l.starts_with("LAUNCH-EXIT="))
    });
    assert!(screen.lines().any(|l| l == "LAUNCH-EXIT=0"), "{screen}");
    assert!(
        screen.contains(&format!("run {run}: all instances ended (exit code 0)")),
        "{screen}"
    );
    assert!(!screen.contains("group/gid"), "{screen}");
    assert_eq!(tmux.display("#{alternate_on} #{cursor_flag}"), "0 1");
    assert_no_leftovers(&token, Duration::from_secs(5));
}

#[test]
fn a_progress_line_shows_on_a_terminal_when_the_per_instance_lines_are_hidden() {
    let token = unique_token("obsprogress");
    let config = format!(
        "[launcher]\nmax_running_time = \"6s\"\n[groups.g]\ncommand = [\"sh\", \"-c\", \"sleep 30 # {token}\"]\ninstances = 20\nready = {{ delay = \"3s\" }}\n"
    );
    let d = distarch(&config);
    let tmux = Tmux::start(120, 40);
    tmux.keys(&[
        &format!(
            "cd {} && {} launch --log-level info; echo LAUNCH-EXIT=$?",
            d.dir().display(),
            distarch_bin().display()
        ),
        "Enter",
    ]);
    tmux.wait_screen("the progress line", |s| {
        s.contains("started 20/20, ready 0")
    });
    // Once every instance is ready the line goes away.
    tmux.wait_screen("the progress line to go", |s| !s.contains("started 20/20"));
    tmux.wait_screen("the run to end", |s| {
        s.lines().any(|l| l.starts_with("LAUNCH-EXIT="))
    });
    // Not on a pipe (nor in JSON mode).
    let out = d.run(&["launch", "--log-level", "info"], LIMIT);
    assert!(
        !out.stderr.contains("started 20/20") && !out.stdout.contains("started 20/20"),
        "{out}"
    );
    assert_no_leftovers(&token, Duration::from_secs(5));
}

/// True for `2026-01-02T03:04:05.678` followed by `Z` or `+05:30` and a space.
fn stamped(line: &str, zone: &str) -> bool {
    let b = line.as_bytes();
    line.len() > 24
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && b[..19]
            .iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10 | 13 | 16) || c.is_ascii_digit())
        && line[23..].starts_with(&format!("{zone} "))
}

#[test]
fn timestamps_start_text_lines_in_utc_or_local_time() {
    let d = Distarch::new().config(&format!(
        "[groups.g]\ncommand = [{w}, \"hello\"]\ninstances = 2\n",
        w = worker()
    ));
    let out = d.run(&["launch", "--timestamps"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.lines().count() > 5, "{out}");
    assert!(out.stdout.lines().all(|l| stamped(l, "Z")), "{out}");
    out.assert_has("Z [g] [localhost] [1/1] INFO pid ");
    let local = d.env("TZ", "XYZ-5:30");
    let out = local.run(
        &["launch", "--timestamps", "-s", "launcher.time_zone=local"],
        LIMIT,
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.lines().all(|l| stamped(l, "+05:30")), "{out}");
    // Without the flag, no timestamps (the original's format).
    let out = local.run(&["launch"], LIMIT);
    assert!(out.stdout.lines().all(|l| l.starts_with('[')), "{out}");
}

#[test]
fn launch_tui_stops_the_run_and_exits_when_its_terminal_goes_away() {
    let token = unique_token("obshangup");
    let run = format!("hup{}", std::process::id());
    let d = distarch(&group("g", "serve", 3, "", &token));
    let tmux = Tmux::start(100, 30);
    tmux.keys(&[
        &format!(
            "cd {} && XDG_RUNTIME_DIR={} exec {} launch --run-id {run} --tui",
            d.dir().display(),
            d.path("rt").display(),
            distarch_bin().display()
        ),
        "Enter",
    ]);
    tmux.wait_screen("3 ready instances", |s| {
        s.contains("3 instance(s), 3 ready")
    });
    // The master and its watchdog (a fork of it, started later) match.
    let master = procs_with(&format!("--run-id {run}"));
    let master = *master.iter().min().expect("the master's pid");
    // The window closes: the terminal hangs up under the view.
    drop(tmux);
    let proc_dir = format!("/proc/{master}");
    assert!(
        wait_until(Duration::from_secs(30), || !Path::new(&proc_dir).exists()),
        "the master is still there after its terminal went away"
    );
    assert_no_leftovers(&token, Duration::from_secs(5));
}

/// Pids of processes whose command line contains `needle`.
fn procs_with(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) && cmdline.contains("launch") {
            pids.push(pid);
        }
    }
    pids
}
