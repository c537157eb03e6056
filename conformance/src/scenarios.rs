//! The scenarios: each starts the worker under test once, plays the master, and
//! checks one rule of docs/protocol.md (docs/conformance.md lists them).

use crate::session::{Fail, Line, Session};
use crate::vectors::Vectors;
use distarch_protocol::{Level, WorkerFrame};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What every scenario gets.
pub struct Ctx<'a> {
    /// The worker command.
    pub command: &'a [String],
    /// The shared vectors.
    pub vectors: &'a Vectors,
    /// How long a worker may take to exit after `stop` or the end of stdin.
    pub grace: Duration,
    /// How long a worker may take to start and say `ready`.
    pub startup: Duration,
}

type Check = Box<dyn Fn(&Ctx<'_>) -> Result<String, Fail>>;

/// One named check.
pub struct Scenario {
    /// Name printed on its line.
    pub name: String,
    check: Check,
}

impl Scenario {
    fn new(
        name: impl Into<String>,
        check: impl Fn(&Ctx<'_>) -> Result<String, Fail> + 'static,
    ) -> Self {
        Scenario {
            name: name.into(),
            check: Box::new(check),
        }
    }

    /// Runs the check; `Ok` carries an optional note.
    pub fn run(&self, ctx: &Ctx<'_>) -> Result<String, Fail> {
        (self.check)(ctx)
    }
}

const LEVELS: [Level; 5] = [
    Level::Trace,
    Level::Debug,
    Level::Info,
    Level::Warn,
    Level::Error,
];
pub(crate) const STOP: &[u8] = b"\x1e{\"type\":\"stop\"}\n";
/// Identity members of the `identity` log, besides `params`.
const IDENTITY: [&str; 7] = [
    "id",
    "group",
    "group_id",
    "group_count",
    "host",
    "run_id",
    "restart",
];

fn slug(name: &str) -> String {
    name.replace(' ', "-")
}

/// Every scenario, in the order they run.
pub fn all(v: &Vectors) -> Vec<Scenario> {
    let mut out = vec![
        Scenario::new("hello-first", hello_first),
        Scenario::new("ready-once", |c| {
            let mut s = start(c, &json_map(json!({})))?;
            prelude(c, &mut s)?;
            s.write(STOP)?;
            clean_end(c, &mut s)?;
            Ok(String::new())
        }),
    ];
    for (i, e) in v.envs.valid.iter().enumerate() {
        out.push(Scenario::new(
            format!("env/valid/{}", slug(&e.name)),
            move |c| env_valid(c, i),
        ));
    }
    for (i, e) in v.envs.broken.iter().enumerate() {
        out.push(Scenario::new(
            format!("env/broken/{}", slug(&e.name)),
            move |c| env_broken(c, i),
        ));
    }
    for (i, p) in v.params.params.iter().enumerate() {
        out.push(Scenario::new(
            format!("params/{}", slug(&p.name)),
            move |c| params_round_trip(c, i),
        ));
    }
    out.push(Scenario::new("log/levels-and-fields", log_levels));
    out.push(Scenario::new("status", status));
    out.push(Scenario::new("ping/rate-limit", ping_rate));
    out.push(Scenario::new("group-count", group_count));
    out.push(Scenario::new(
        "jobs/credit-and-answers",
        crate::jobs::credit_and_answers,
    ));
    for (i, q) in v.stdin.sequences.iter().enumerate() {
        out.push(Scenario::new(
            format!("stdin/{}", slug(&q.name)),
            move |c| stdin_sequence(c, i),
        ));
    }
    out
}

fn json_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The first valid environment, with `params`.
fn env_with(c: &Ctx<'_>, params: &Map<String, Value>) -> BTreeMap<String, String> {
    let mut env = c
        .vectors
        .envs
        .valid
        .first()
        .map(|e| e.env.clone())
        .unwrap_or_default();
    env.insert(
        "DISTARCH_PARAMS".into(),
        Value::Object(params.clone()).to_string(),
    );
    env
}

pub(crate) fn start(c: &Ctx<'_>, params: &Map<String, Value>) -> Result<Session, Fail> {
    Session::start(c.command, &env_with(c, params))
}

/// Hello first, then the identity log (the first log frame whose fields hold every
/// identity member and `params`), then `ready`. Returns the hello line and
/// the identity fields.
pub(crate) fn prelude(c: &Ctx<'_>, s: &mut Session) -> Result<(Line, Map<String, Value>), Fail> {
    let hello = s.expect("a first line", c.startup, |l| !l.is_blank())?;
    if !matches!(hello.frame(), Some(WorkerFrame::Hello { .. })) {
        return Err(format!(
            "the first line is not a hello frame: {}",
            hello.show()
        ));
    }
    let mut early_ready = false;
    let identity = s.expect("the identity log frame", c.startup, |l| {
        early_ready |= matches!(l.frame(), Some(WorkerFrame::Ready));
        matches!(l.frame(), Some(WorkerFrame::Log { fields: Some(f), .. })
            if IDENTITY.iter().chain(["params"].iter()).all(|k| f.contains_key(*k)))
    })?;
    if early_ready {
        return Err("`ready` came before the identity log".into());
    }
    let Some(WorkerFrame::Log {
        fields: Some(fields),
        ..
    }) = identity.frame().cloned()
    else {
        return Err("unreachable: identity without fields".into());
    };
    s.expect("`ready`", c.startup, |l| {
        matches!(l.frame(), Some(WorkerFrame::Ready))
    })?;
    Ok((hello, fields))
}

/// Exit 0 within the grace; `ended` is the last line and appears once; `ready` once.
pub(crate) fn clean_end(c: &Ctx<'_>, s: &mut Session) -> Result<(), Fail> {
    let Some(status) = s.wait_exit(c.grace) else {
        return Err(format!(
            "still running {:.1?} after stop{}",
            c.grace,
            s.context()
        ));
    };
    if status.code() != Some(0) {
        return Err(format!("exited with {status}, not 0{}", s.context()));
    }
    s.drain(Duration::from_secs(2));
    ended_last(s)
}

fn ended_last(s: &Session) -> Result<(), Fail> {
    let count =
        |f: fn(&WorkerFrame) -> bool| s.visible().filter(|l| l.frame().is_some_and(f)).count();
    let ready = count(|f| matches!(f, WorkerFrame::Ready));
    if ready != 1 {
        return Err(format!("`ready` was sent {ready} times, not once"));
    }
    let ended = count(|f| matches!(f, WorkerFrame::Ended));
    match s.visible().last() {
        Some(l) if matches!(l.frame(), Some(WorkerFrame::Ended)) && ended == 1 => Ok(()),
        Some(l) if ended == 1 => Err(format!("`ended` is not the last line; last: {}", l.show())),
        _ => Err(format!(
            "`ended` was sent {ended} times, not once, before a clean exit"
        )),
    }
}

fn hello_first(c: &Ctx<'_>) -> Result<String, Fail> {
    let mut s = start(c, &Map::new())?;
    let (hello, _) = prelude(c, &mut s)?;
    let Some(WorkerFrame::Hello {
        protocol,
        sdk,
        version,
    }) = hello.frame().cloned()
    else {
        return Err("unreachable: hello".into());
    };
    if protocol != 1 {
        return Err(format!("hello says protocol {protocol}, not 1"));
    }
    s.write(STOP)?;
    clean_end(c, &mut s)?;
    Ok(format!(
        "{} {}",
        sdk.unwrap_or_else(|| "(no sdk)".into()),
        version.unwrap_or_default()
    ))
}

fn env_valid(c: &Ctx<'_>, i: usize) -> Result<String, Fail> {
    let e = c.vectors.envs.valid.get(i).ok_or("no such vector")?;
    let mut s = Session::start(c.command, &e.env)?;
    let (_, fields) = prelude(c, &mut s)?;
    for name in IDENTITY.iter().chain(["params"].iter()) {
        let want = e.expect.get(*name);
        let got = fields.get(*name);
        if want != got {
            return Err(format!(
                "identity field `{name}` is {}, expected {}",
                got.map_or("missing".into(), Value::to_string),
                want.map_or("missing".into(), Value::to_string)
            ));
        }
    }
    s.write(STOP)?;
    clean_end(c, &mut s)?;
    Ok(String::new())
}

fn env_broken(c: &Ctx<'_>, i: usize) -> Result<String, Fail> {
    let e = c.vectors.envs.broken.get(i).ok_or("no such vector")?;
    let mut s = Session::start(c.command, &e.env)?;
    let Some(status) = s.wait_exit(c.grace) else {
        return Err(format!(
            "still running after {:.1?}{}",
            c.grace,
            s.context()
        ));
    };
    if status.success() {
        return Err("exited with 0: a broken environment must fail".into());
    }
    s.drain(Duration::from_secs(2));
    s.wait_stderr(Duration::from_secs(2));
    if s.visible()
        .any(|l| matches!(l.frame(), Some(WorkerFrame::Ready)))
    {
        return Err("sent `ready` with a broken environment".into());
    }
    let stderr = s.stderr();
    if !stderr.contains(&e.names) {
        return Err(format!(
            "stderr does not name {} ({status}): {:?}",
            e.names,
            stderr.lines().next().unwrap_or("(empty)")
        ));
    }
    Ok(format!("{status}"))
}

fn params_round_trip(c: &Ctx<'_>, i: usize) -> Result<String, Fail> {
    let p = c.vectors.params.params.get(i).ok_or("no such vector")?;
    let mut s = start(c, &p.params)?;
    let (_, fields) = prelude(c, &mut s)?;
    match fields.get("params") {
        Some(Value::Object(got)) if *got == p.params => {}
        Some(other) => {
            let shown: String = other.to_string().chars().take(120).collect();
            return Err(format!("params came back different: {shown}"));
        }
        None => return Err("the identity log has no `params`".into()),
    }
    s.write(STOP)?;
    clean_end(c, &mut s)?;
    Ok(String::new())
}

pub(crate) fn scenario_params(name: &str) -> Map<String, Value> {
    json_map(json!({ "conformance": name }))
}

fn log_levels(c: &Ctx<'_>) -> Result<String, Fail> {
    let mut s = start(c, &scenario_params("levels"))?;
    prelude(c, &mut s)?;
    for level in LEVELS {
        let name = format!("log {level}");
        let want = c.vectors.worker_line(&name).ok_or("missing log vectors")?;
        let got = s.expect("a log frame", c.startup, |l| {
            matches!(l.frame(), Some(WorkerFrame::Log { .. }))
        })?;
        if got.raw != want.as_bytes() {
            return Err(format!(
                "expected {}, got {}",
                want.replace('\u{1e}', "␞"),
                got.show()
            ));
        }
    }
    s.write(STOP)?;
    clean_end(c, &mut s)?;
    Ok(String::new())
}

fn status(c: &Ctx<'_>) -> Result<String, Fail> {
    let want = c
        .vectors
        .worker_line("status")
        .ok_or("missing status vector")?;
    let text = c
        .vectors
        .frames
        .worker
        .iter()
        .find(|v| v.name == "status")
        .and_then(|v| v.frame.get("text").cloned())
        .unwrap_or_default();
    let mut params = scenario_params("status");
    params.insert("text".into(), text);
    let mut s = start(c, &params)?;
    prelude(c, &mut s)?;
    let got = s.expect("a status frame", c.startup, |l| {
        matches!(l.frame(), Some(WorkerFrame::Status { .. }))
    })?;
    if got.raw != want.as_bytes() {
        return Err(format!(
            "expected {}, got {}",
            want.replace('\u{1e}', "␞"),
            got.show()
        ));
    }
    s.write(STOP)?;
    clean_end(c, &mut s)?;
    Ok(String::new())
}

fn ping_rate(c: &Ctx<'_>) -> Result<String, Fail> {
    const WINDOW: Duration = Duration::from_millis(3500);
    let mut s = start(c, &scenario_params("ping"))?;
    prelude(c, &mut s)?;
    let end = Instant::now() + WINDOW;
    let mut pings = Vec::new();
    while let Some(line) = s.next_line(end) {
        if matches!(line.frame(), Some(WorkerFrame::Ping)) {
            pings.push(line.at);
        }
    }
    if pings.len() < 2 {
        return Err(format!(
            "{} ping(s) in {WINDOW:.1?} of pinging: at least one a second is expected",
            pings.len()
        ));
    }
    let min_gap = pings
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .min()
        .unwrap_or_default();
    if pings.len() > 5 || min_gap < Duration::from_millis(800) {
        return Err(format!(
            "{} pings in {WINDOW:.1?}, {min_gap:.2?} apart at least: not rate-limited to one a second",
            pings.len()
        ));
    }
    s.write(STOP)?;
    clean_end(c, &mut s)?;
    Ok(format!("{} pings, ≥ {:.2?} apart", pings.len(), min_gap))
}

fn group_count(c: &Ctx<'_>) -> Result<String, Fail> {
    let mut s = start(c, &scenario_params("group_count"))?;
    prelude(c, &mut s)?;
    for count in [5u64, 2] {
        s.write(format!("\x1e{{\"type\":\"group_count\",\"count\":{count}}}\n").as_bytes())?;
        s.expect(
            &format!("a `group_count` log with count {count}"),
            c.startup,
            |l| {
                matches!(l.frame(), Some(WorkerFrame::Log { message, fields: Some(f), .. })
                if message == "group_count" && f.get("count") == Some(&Value::from(count)))
            },
        )?;
    }
    s.write(STOP)?;
    clean_end(c, &mut s)?;
    Ok(String::new())
}

fn stdin_sequence(c: &Ctx<'_>, i: usize) -> Result<String, Fail> {
    let q = c.vectors.stdin.sequences.get(i).ok_or("no such vector")?;
    let mut s = start(c, &Map::new())?;
    prelude(c, &mut s)?;
    for chunk in &q.chunks {
        s.write(chunk.as_bytes())?;
        // Separate writes arrive as separate reads.
        std::thread::sleep(Duration::from_millis(20));
    }
    if q.close {
        s.close_stdin();
    }
    match q.expect.as_str() {
        "stop" => {
            clean_end(c, &mut s)?;
            Ok(String::new())
        }
        "exit" => {
            let Some(status) = s.wait_exit(c.grace + Duration::from_secs(1)) else {
                return Err(format!(
                    "still running {:.1?} after the end of stdin{}",
                    c.grace,
                    s.context()
                ));
            };
            s.drain(Duration::from_secs(2));
            if status.success() {
                ended_last(&s)?;
            }
            Ok(format!("{status}"))
        }
        "running" => {
            if let Some(status) = s.wait_exit(Duration::from_secs(1)) {
                return Err(format!("exited ({status}) though nothing asked it to stop"));
            }
            if s.visible()
                .any(|l| matches!(l.frame(), Some(WorkerFrame::Ended)))
            {
                return Err("sent `ended` though nothing asked it to stop".into());
            }
            s.write(STOP)?;
            clean_end(c, &mut s)?;
            Ok(String::new())
        }
        other => Err(format!("unknown expectation `{other}` in stdin.json")),
    }
}
