//! End-to-end tests of the worker SDKs under `distarch launch`: the original
//! library's README `script1.php`, ported to the PHP SDK by changing its
//! constructor line, locally and over SSH (a real sshd on 127.0.0.1, see
//! testkit/src/sshd.rs); and the Python SDK's example worker in Docker
//! containers, from an image built out of the Debian python3 installed here.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use distarch_e2e::dockerd::Dockerd;
use distarch_e2e::image::ImageBuilder;
use distarch_e2e::sshd::SshFixture;
use distarch_e2e::*;
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

/// The command of the ported script1.php: the SDK's autoloader prepended, and the
/// one argument the original script still checks for.
fn script1_command(token: &str) -> String {
    let root = repo_root();
    let autoload = root.join("sdk/php/autoload.php");
    let script = root.join("examples/php/script1.php");
    format!(
        "[\"php\", \"-d\", {}, {}, {}]",
        toml_str(format!("auto_prepend_file={}", autoload.display())),
        toml_str(script.display().to_string()),
        toml_str(token),
    )
}

fn script1_config(placement: &str, token: &str) -> String {
    format!(
        "[launcher]\nmax_running_time = \"3s\"\nstop_grace = \"5s\"\n\
         [groups.\"First Group\"]\ncommand = {}\nparams = {{ message = \"Hello World!\" }}\n\
         placements.p = {placement}\n",
        script1_command(token)
    )
}

/// What each instance of script1.php says, with the label the master gives it.
fn assert_script1_ran(out: &Output, host: &str, ids: std::ops::RangeInclusive<u32>, count: u32) {
    assert_eq!(out.code, 0, "{out}");
    for id in ids {
        let label = format!("[First Group] [{host}] [{id}/{id}]");
        out.assert_has(&format!("{label} INFO My ID : {id}"));
        out.assert_has(&format!("{label} INFO My Group ID : {id}"));
        out.assert_has(&format!(
            "{label} INFO There are a total of {count} processes in my group named \"First Group\""
        ));
        out.assert_has(&format!("{label} INFO Hello World!"));
        // Stopped by the stop frame at max_running_time, `ended` sent, exit 0.
        out.assert_has(&format!(
            "{label} INFO distarch: ended after a stop request: exit code 0"
        ));
    }
}

#[test]
fn the_ported_script1_php_runs_locally() {
    let token = unique_token("script1local");
    let out = Distarch::new()
        .config(&script1_config(
            "{ transport = \"local\", instances = 3 }",
            &token,
        ))
        .run(&["launch"], LIMIT);
    assert_script1_ran(&out, "localhost", 1..=3, 3);
    assert_no_leftovers(&token, Duration::from_secs(10));
}

#[test]
fn the_ported_script1_php_runs_over_ssh() {
    let mut fx = SshFixture::new();
    fx.start("127.0.0.1");
    fx.trust_all();
    let token = unique_token("script1ssh");
    let placement = format!(
        "{{ transport = \"ssh\", instances = 2, {} }}",
        fx.placement_settings(&[0])
    );
    let out = Distarch::new()
        .config(&script1_config(&placement, &token))
        .run(&["launch"], LIMIT);
    assert_script1_ran(&out, &fx.server(0).entry(), 1..=2, 2);
    let gone = wait_until(Duration::from_secs(10), || {
        fx.remote_pids(0, &token).is_empty()
    });
    assert!(gone, "left on the host: {:?}", fx.remote_pids(0, &token));
}

const PYTHON_IMAGE: &str = "distarch-test/python-sdk:1";

/// An image with Debian's python3 (binary, libraries, standard library), the
/// Python SDK installed in dist-packages, the example worker at /app/worker.py,
/// and python3 as the entrypoint.
fn build_python_image(d: &Dockerd) {
    let root = repo_root();
    let python = Path::new("/usr/bin/python3");
    let version = std::process::Command::new(python)
        .args([
            "-c",
            "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')",
        ])
        .output()
        .expect("run /usr/bin/python3 (apt-get install python3)");
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let stdlib = format!("/usr/lib/python{version}");
    let skip = [
        "test",
        "__pycache__",
        "idlelib",
        "tkinter",
        "turtledemo",
        "ensurepip",
        "lib2to3",
        "pydoc_data",
    ];
    ImageBuilder::new(PYTHON_IMAGE)
        .binary(python, "/usr/bin/python3")
        .tree(Path::new(&stdlib), &stdlib, &skip)
        .tree(
            &root.join("sdk/python/src/distarch_worker"),
            "/usr/lib/python3/dist-packages/distarch_worker",
            &skip,
        )
        .binary(&root.join("examples/python-worker.py"), "/app/worker.py")
        .busybox()
        .entrypoint(&["/usr/bin/python3"])
        .build(d);
}

#[test]
fn the_python_sdk_worker_runs_in_docker_containers() {
    let d = Dockerd::start();
    build_python_image(&d);
    let cfg = format!(
        "[launcher]\nmax_running_time = \"4s\"\nstop_grace = \"5s\"\n\
         [groups.py]\ncommand = [\"/app/worker.py\"]\nparams = {{ message = \"Hello from a container\" }}\n\
         placements.box = {{ transport = \"docker\", image = \"{PYTHON_IMAGE}\", host = {}, network = \"none\", instances = 2 }}\n",
        toml_str(d.host())
    );
    let out = Distarch::new().config(&cfg).run(&["launch"], LIMIT);
    assert_eq!(out.code, 0, "{out}");
    for id in 1..=2 {
        let label = format!("[py] [docker] [{id}/{id}]");
        // The identity log frame sent through `logging` (fields after the message).
        out.assert_has(&format!("{label} INFO Hello from a container"));
        out.assert_has(&format!(
            "{label} INFO instance {id} is {id} of 2 in group py on docker"
        ));
        out.assert_has(&format!("{label} INFO working: step 1"));
        out.assert_has(&format!("{label} INFO stopping: stop requested"));
        out.assert_has(&format!(
            "{label} INFO distarch: ended after a stop request: exit code 0"
        ));
    }
}
