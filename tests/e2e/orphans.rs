//! End-to-end: nothing a local run started outlives its master — SIGKILLed alone,
//! together with everything named `distarch` (`killall -9 distarch`), or in the
//! middle of starting hundreds of instances — and cgroups, limits, users, the
//! open-file limit and a reaper that dies alone.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use distarch_e2e::procs::{
    cgroup2_mount, cgroup2_writable, children_named, killall_distarch, run_cgroup,
};
use distarch_e2e::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
/// What the issue allows: nothing left 10 s after the master died.
const LEFT_AFTER: Duration = Duration::from_secs(10);

fn worker() -> String {
    toml_str(test_worker_bin().display().to_string())
}

/// Three groups: SDK workers (`serve`), plain workers that never read stdin
/// (`silent`), and a plain worker that double-forks a `setsid` child away from
/// its process group (the child's parent exits at once).
fn mixed_config(token: &str) -> String {
    let w = test_worker_bin().display().to_string();
    let script = format!("('{w}' silent --tag {token} & ) ; setsid '{w}' silent --tag {token} & exec '{w}' silent --tag {token}");
    format!(
        "[launcher]\nstop_grace = \"1s\"\n[groups.sdk]\ncommand = [{wt}, \"serve\", \"--tag\", \"{token}\"]\ninstances = 2\ntimeout = \"0s\"\n\
         [groups.plain]\ncommand = [{wt}, \"silent\", \"--tag\", \"{token}\"]\ninstances = 2\ntimeout = \"0s\"\n\
         [groups.dfork]\ncommand = [\"sh\", \"-c\", {script}]\ninstances = 1\ntimeout = \"0s\"\n",
        wt = worker(),
        script = toml_str(script),
    )
}

/// Processes of `mixed_config`: 2 + 2 + 3 (sh execs into the third).
const MIXED_PROCS: usize = 7;

/// Every launch cleans dead runs' cgroups: the gc test holds this for writing so
/// that no other test of this file launches while it sets a dead run up.
static LAUNCHES: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    LAUNCHES.read().unwrap_or_else(|e| e.into_inner())
}

fn run_id(name: &str) -> String {
    unique_token(name).replace("dtok-", "")
}

/// Starts the mixed config and waits until every process of it runs.
fn start_mixed(token: &str, id: &str) -> (Distarch, Running) {
    let d = Distarch::new().config(&mixed_config(token));
    let running = d.spawn(&["launch", "--run-id", id]);
    running.expect_lines("started (pid", 5, LIMIT);
    assert!(
        wait_until(LIMIT, || pids_with_token(token).len() == MIXED_PROCS),
        "expected {MIXED_PROCS} processes, found {:?}\n{}",
        pids_with_token(token),
        running.stdout()
    );
    (d, running)
}

fn assert_run_cgroup_gone(id: &str) {
    assert!(
        wait_until(LEFT_AFTER, || run_cgroup(id).is_none()),
        "the run's cgroup is still there: {:?}",
        run_cgroup(id)
    );
}

#[test]
fn sigkill_of_the_master_alone_leaves_nothing_after_10s() {
    let _shared = shared();
    let token = unique_token("orph-kill");
    let id = run_id("orph-kill");
    let (d, mut running) = start_mixed(&token, &id);
    if cgroup2_writable() {
        assert!(run_cgroup(&id).is_some(), "no cgroup for the run");
    }
    running.signal("KILL");
    let _ = running.wait(LIMIT);
    assert_no_leftovers(&token, LEFT_AFTER);
    assert_nothing_runs_in(&d.dir().canonicalize().unwrap(), LEFT_AFTER);
    assert_run_cgroup_gone(&id);
}

#[test]
fn killall_9_distarch_leaves_nothing_after_10s() {
    let _shared = shared();
    let token = unique_token("orph-killall");
    let id = run_id("orph-killall");
    let (_d, mut running) = start_mixed(&token, &id);
    // The reaper is a child of the master, and `killall distarch` does not match it.
    let reapers = children_named(running.pid(), "distarch-watch");
    assert_eq!(reapers.len(), 1, "no reaper named distarch-watch");
    let killed = killall_distarch(running.pid());
    assert!(!killed.contains(&reapers[0]));
    let _ = running.wait(LIMIT);
    assert_no_leftovers(&token, LEFT_AFTER);
    assert_run_cgroup_gone(&id);
}

/// SIGKILL (`how`: the master alone, or everything named distarch) while the
/// master is starting 500 plain workers.
fn kill_while_starting_500(how: &str) {
    for attempt in 0..2 {
        let token = unique_token(&format!("orph-500-{how}-{attempt}"));
        let d = Distarch::new().config(&format!(
            "[groups.g]\ncommand = [{}, \"silent\", \"--tag\", \"{token}\"]\ninstances = 500\ntimeout = \"0s\"\n",
            worker()
        ));
        let mut running = d.spawn(&["launch"]);
        running.expect_lines("started (pid", 50 + 100 * attempt, LIMIT);
        if how == "alone" {
            running.signal("KILL");
        } else {
            killall_distarch(running.pid());
        }
        let out = running.wait(LIMIT);
        let started = out.lines_with("started (pid").len();
        assert!(started < 500, "the kill came after every start ({started})");
        assert_no_leftovers(&token, LEFT_AFTER);
    }
}

#[test]
fn sigkill_of_the_master_while_starting_500_leaves_nothing() {
    let _shared = shared();
    kill_while_starting_500("alone");
}

#[test]
fn killall_9_distarch_while_starting_500_leaves_nothing() {
    let _shared = shared();
    kill_while_starting_500("killall");
}

#[test]
fn a_stop_reaches_a_double_forked_setsid_descendant() {
    let _shared = shared();
    let token = unique_token("orph-stop");
    let id = run_id("orph-stop");
    let (_d, mut running) = start_mixed(&token, &id);
    running.signal("INT");
    let out = running.wait(LIMIT);
    assert_eq!(out.code, 130, "{out}");
    if cgroup2_writable() {
        // With cgroups the stop reaches every descendant, at once.
        assert_no_leftovers(&token, Duration::from_secs(5));
        assert_run_cgroup_gone(&id);
    } else {
        // Without, the double-forked children escape the stop; the reaper still
        // cannot see them: documented in docs/transports/local.md.
        assert!(pids_with_token(&token).len() <= 2);
        assert_no_leftovers(&token, Duration::ZERO);
    }
}

#[test]
fn gc_and_the_next_launch_kill_what_a_dead_master_and_reaper_left() {
    let _alone = LAUNCHES.write().unwrap_or_else(|e| e.into_inner());
    if !cgroup2_writable() {
        eprintln!("skipped: cgroup v2 is not writable here");
        return;
    }
    for cleaner in ["gc", "launch"] {
        let token = unique_token(&format!("orph-gc-{cleaner}"));
        let id = run_id(&format!("orph-gc-{cleaner}"));
        let (d, mut running) = start_mixed(&token, &id);
        // Reaper first, then the master: nothing is left to clean up but gc.
        let reapers = children_named(running.pid(), "distarch-watch");
        assert_eq!(reapers.len(), 1);
        let _ = Command::new("kill")
            .args(["-9", &reapers[0].to_string()])
            .status();
        running.signal("KILL");
        let _ = running.wait(LIMIT);
        // The plain workers outlive both (SDK workers exit on stdin EOF).
        assert!(
            wait_until(Duration::from_secs(5), || pids_with_token(&token).len()
                == 5),
            "{:?}",
            pids_with_token(&token)
        );
        let cg = run_cgroup(&id).expect("the dead run's cgroup");
        let out = if cleaner == "gc" {
            d.run(&["gc"], LIMIT)
        } else {
            let d2 = Distarch::new().config(&format!(
                "[groups.g]\ncommand = [{}, \"hello\"]\ninstances = 1\n",
                worker()
            ));
            d2.run(&["launch"], LIMIT)
        };
        assert_eq!(out.code, 0, "{out}");
        if cleaner == "gc" {
            out.assert_has(&format!("killed 5 process(es), removed {}", cg.display()));
        }
        assert_no_leftovers(&token, Duration::from_secs(5));
        assert_run_cgroup_gone(&id);
    }
}

#[test]
fn a_reaper_that_dies_alone_is_reported_by_the_master() {
    let _shared = shared();
    let token = unique_token("orph-reaper");
    let d = Distarch::new().config(&format!(
        "[groups.g]\ncommand = [{}, \"serve\", \"--tag\", \"{token}\"]\ninstances = 1\n",
        worker()
    ));
    let mut running = d.spawn(&["launch"]);
    running.expect_lines("INFO serving", 1, LIMIT);
    let reapers = children_named(running.pid(), "distarch-watch");
    assert_eq!(
        reapers.len(),
        1,
        "{:?}\n{}",
        distarch_e2e::procs::children_of(running.pid()),
        running.stdout()
    );
    let _ = Command::new("kill")
        .args(["-9", &reapers[0].to_string()])
        .status();
    // The master reaps it (its /proc entry goes) and says so right after.
    let proc_dir = format!("/proc/{}", reapers[0]);
    assert!(wait_until(LIMIT, || !std::path::Path::new(&proc_dir).exists()));
    running.signal("INT");
    let out = running.wait(LIMIT);
    // Through the event stream (issue 9): on standard output, like every line.
    assert!(
        out.stdout.contains(&format!(
            "WARN distarch: the reaper process (pid {}) is gone",
            reapers[0]
        )),
        "{out}"
    );
    assert_no_leftovers(&token, Duration::from_secs(5));
}

/// Runs `distarch launch` under `ulimit -n N` (soft and hard), to its end.
fn launch_with_nofile(d: &Distarch, nofile: u32) -> (i32, String, String) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {nofile} && exec \"$0\" launch"))
        .arg(distarch_bin())
        .current_dir(d.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), out, err.join().unwrap())
}

#[test]
fn a_low_open_file_limit_throttles_starts_instead_of_failing_them() {
    let _shared = shared();
    // Each worker stays 0.2 s after its line, so that more of them run at once
    // than the limit leaves room for (workers that end at once are seen ended
    // between starts, and never fill it).
    let d = Distarch::new().config(&format!(
        "[groups.g]\ncommand = [\"sh\", \"-c\", \"\\\"$0\\\" hello && sleep 0.2\", {}]\ninstances = 1000\ntimeout = \"0s\"\n",
        worker()
    ));
    let (code, out, err) = launch_with_nofile(&d, 256);
    assert!(!out.contains("Too many open files"), "{out}");
    assert_eq!(code, 0, "{err}\n{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains("INFO hello id=")).count(),
        1000
    );
    assert_eq!(
        out.matches("the open-file limit (256) leaves room for")
            .count(),
        1,
        "{err}"
    );
}

#[test]
fn the_soft_open_file_limit_is_raised_to_the_hard_limit() {
    let _shared = shared();
    // A worker reports the limit it inherited from the master.
    let d = Distarch::new().config(
        "[groups.g]\ncommand = [\"sh\", \"-c\", \"echo soft=$(ulimit -Sn)\"]\ninstances = 1\n",
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -Sn 256 && echo hard=$(ulimit -Hn) && exec \"$0\" launch")
        .arg(distarch_bin())
        .current_dir(d.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out);
    assert!(child.wait().unwrap().success(), "{out}");
    let hard = out.lines().find_map(|l| l.strip_prefix("hard=")).unwrap();
    assert!(out.contains(&format!("INFO soft={hard}")), "{out}");
}

#[test]
fn limits_are_applied_or_refused_clearly() {
    let _shared = shared();
    let d = Distarch::new().config(
        "[groups.g]\ncommand = [\"sh\", \"-c\", \"cat /sys/fs/cgroup/$(cut -d: -f3 /proc/self/cgroup | tail -1)/memory.max 2>/dev/null || true; grep '^0::' /proc/self/cgroup\"]\n\
         placements.here = { transport = \"local\", instances = 1, memory = \"64m\", pids_limit = 20 }\n",
    );
    let out = d.run(&["launch"], LIMIT);
    let offered = cgroup2_mount()
        .and_then(|m| {
            let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
            let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?.to_string();
            std::fs::read_to_string(
                m.join(rel.trim_start_matches('/'))
                    .join("cgroup.controllers"),
            )
            .ok()
        })
        .unwrap_or_default();
    if offered.split_whitespace().any(|c| c == "memory")
        && offered.split_whitespace().any(|c| c == "pids")
    {
        assert_eq!(out.code, 0, "{out}");
        let line = out.lines_with("0::/").pop().expect("the worker's cgroup");
        let rel = line.split("0::").nth(1).unwrap().trim();
        let dir = cgroup2_mount().unwrap().join(rel.trim_start_matches('/'));
        // The worker is in its instance's cgroup, under the run's.
        assert!(
            rel.contains("/distarch.") && rel.contains("/g.g/i.1.0"),
            "{out}"
        );
        let _ = dir; // removed at the end of the run
        out.assert_has("INFO 67108864");
    } else {
        // This machine's cgroup v2 lacks the controllers (hybrid or v1 system): a
        // clear configuration error naming the key, before anything starts.
        assert_eq!(out.code, 2, "{out}");
        assert!(
            out.stderr
                .contains("groups.g.placements.here.memory: limits need"),
            "{out}"
        );
        assert!(out.stderr.contains("memory"), "{out}");
    }
}

#[test]
fn a_local_user_runs_the_worker_as_that_user_when_root() {
    let _shared = shared();
    let d = Distarch::new().config(
        "[groups.g]\ncommand = [\"sh\", \"-c\", \"echo uid=$(id -u) gid=$(id -g)\"]\n\
         placements.here = { transport = \"local\", instances = 1, user = \"nobody\", group = \"0\" }\n",
    );
    let out = d.run(&["launch"], LIMIT);
    // SAFETY-free: the effective uid of this test, through the procfs.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_string();
    if euid == "0" {
        assert_eq!(out.code, 0, "{out}");
        out.assert_has("INFO uid=65534 gid=0");
    } else {
        assert_eq!(out.code, 2, "{out}");
        assert!(
            out.stderr.contains("needs the master to run as root"),
            "{out}"
        );
    }
}

/// Docker: a killed master's reaper runs `distarch gc`, so the run's containers —
/// a plain program that ignores stdin and an SDK worker — are gone within 10 s.
#[test]
fn sigkill_of_the_master_removes_its_containers_within_10s() {
    use distarch_e2e::dockerd::Dockerd;
    use distarch_e2e::image::ImageBuilder;
    let _shared = shared();
    const IMAGE: &str = "distarch-test/worker:1";
    let d = Dockerd::start();
    ImageBuilder::new(IMAGE)
        .binary(&test_worker_bin(), "/worker")
        .binary(&example_worker_bin(), "/example-worker")
        .busybox()
        .entrypoint(&["/worker"])
        .build(&d);
    let run = run_id("orph-docker");
    let place = |extra: &str| {
        format!(
            "{{ transport = \"docker\", image = \"{IMAGE}\", host = {h}, network = \"none\", instances = 1{extra} }}",
            h = toml_str(d.host())
        )
    };
    let cfg = format!(
        "[groups.plain]\ncommand = [\"echo up; exec sleep 3600\"]\nplacements.box = {}\n\
         [groups.sdk]\ncommand = [\"/example-worker\"]\nplacements.box = {}\n",
        place(", entrypoint = [\"/bin/sh\", \"-c\"]"),
        place(", entrypoint = []"),
    );
    let dist = Distarch::new().config(&cfg);
    let mut running = dist.spawn(&["launch", "--run-id", &run]);
    running.expect_lines("INFO up", 1, LIMIT);
    running.expect_lines("INFO I am instance", 1, LIMIT);
    assert_eq!(d.run_containers(&run, false).len(), 2);
    running.signal("KILL");
    let _ = running.wait(LIMIT);
    assert!(
        d.wait_no_containers(&[&format!("distarch.run={run}")], true, LEFT_AFTER),
        "containers left 10 s after the master was killed: {:?}",
        d.run_containers(&run, true)
    );
}

/// Kubernetes (the test API server): a killed master's reaper runs `distarch gc`,
/// so the run's pods — a plain program that ignores stdin and an SDK worker — and
/// their containers are gone within 10 s.
#[test]
fn sigkill_of_the_master_removes_its_pods_within_10s() {
    use distarch_e2e::apiserver::KubeTarget;
    use distarch_e2e::dockerd::Dockerd;
    use distarch_e2e::image::ImageBuilder;
    let _shared = shared();
    const IMAGE: &str = "distarch-test/worker:1";
    let d = Dockerd::start();
    ImageBuilder::new(IMAGE)
        .binary(&test_worker_bin(), "/worker")
        .binary(&example_worker_bin(), "/example-worker")
        .busybox()
        .entrypoint(&["/worker"])
        .build(&d);
    let t = KubeTarget::fake(&d, IMAGE, &[]);
    let run = run_id("orph-k8s");
    let cfg = format!(
        "[groups.plain]\ncommand = [\"/bin/sh\", \"-c\", \"echo up; exec sleep 3600\"]\nplacements.k8s = {}\n\
         [groups.sdk]\ncommand = [\"/example-worker\"]\nplacements.k8s = {}\n",
        t.placement(1, ""),
        t.placement(1, ""),
    );
    let dist = Distarch::new().config(&cfg);
    let mut running = dist.spawn(&["launch", "--run-id", &run]);
    running.expect_lines("INFO up", 1, LIMIT);
    running.expect_lines("INFO I am instance", 1, LIMIT);
    let label = format!("distarch.run={run}");
    assert_eq!(d.containers(&[&label], false).len(), 2);
    running.signal("KILL");
    let _ = running.wait(LIMIT);
    assert!(
        d.wait_no_containers(&[&label], true, LEFT_AFTER),
        "pod containers left 10 s after the master was killed: {:?}",
        d.containers(&[&label], true)
    );
    let server = t.server.as_ref().expect("fake");
    let (status, pods) = server.get(&format!(
        "/api/v1/namespaces/{}/pods?labelSelector=distarch.run%3D{run}",
        t.namespace
    ));
    assert_eq!(status, 200, "{pods}");
    assert_eq!(pods["items"].as_array().map(Vec::len), Some(0), "{pods}");
}

#[test]
fn with_instance_cgroups_what_a_worker_leaves_ends_with_it() {
    let _shared = shared();
    if !cgroup2_writable() {
        eprintln!("skipped: cgroup v2 is not writable here");
        return;
    }
    let token = unique_token("orph-inst");
    let w = test_worker_bin().display().to_string();
    // `short` leaves a setsid'd child behind and ends; `long` keeps the run going.
    let script = format!("setsid '{w}' silent --tag {token} & sleep 0.5; echo leaving");
    let d = Distarch::new().config(&format!(
        "[groups.short]\ncommand = [\"sh\", \"-c\", {script}]\nplacements.here = {{ transport = \"local\", instances = 1, cgroup = \"instance\" }}\n\
         [groups.long]\ncommand = [{wt}, \"serve\"]\ninstances = 1\n",
        script = toml_str(script),
        wt = worker(),
    ));
    let mut running = d.spawn(&["launch"]);
    running.expect_lines(
        "[short] [localhost] [2/1] INFO distarch: ended: exit code 0",
        1,
        LIMIT,
    );
    // The run still goes on, and the child it left is gone already.
    assert_no_leftovers(&token, Duration::from_secs(5));
    assert!(running
        .stdout()
        .lines()
        .all(|l| !l.contains("all instances ended")));
    running.signal("INT");
    let out = running.wait(LIMIT);
    assert_eq!(out.code, 130, "{out}");
}
