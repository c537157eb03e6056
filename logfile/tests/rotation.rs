//! Rotation through the log writer: whole lines, at most `keep` old files, none lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use distarch_core::protocol::Level;
use distarch_core::{
    ByteSize, CommandLine, Config, Event, EventObserver, GroupConfig, InstanceLabel, LiveOutput,
    LogFileConfig, LogLines, LogStream, OutputSettings,
};
use distarch_logfile::LogFiles;
use std::sync::Arc;
use std::time::SystemTime;

fn lines(group: &str, from: u64, n: u64) -> Event {
    let label = Arc::new(InstanceLabel::new(
        Arc::from(group),
        Arc::from("h"),
        1,
        1,
        1,
        0,
    ));
    let mut l = LogLines::new(SystemTime::now(), label, Level::Info, LogStream::Stdout);
    for i in from..from + n {
        l.push(format!("line {i:08}").as_bytes(), false);
    }
    Event::Lines(l)
}

/// The live output settings of `config`, as a launcher holds them.
fn live(config: &Config) -> LiveOutput {
    LiveOutput::new(OutputSettings::of(&config.launcher))
}

fn numbers(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect()
}

#[test]
fn files_rotate_by_size_keep_whole_lines_and_group_files_get_their_group() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    let mut main = LogFileConfig::new(dir.path().join("run.log"));
    main.max_size = ByteSize(10_000);
    main.keep = 2;
    main.timestamps = false;
    config.launcher.log_file = Some(main);
    let mut web = GroupConfig::new(CommandLine::Argv(vec!["w".into()]));
    web.log_file = Some(LogFileConfig::new(dir.path().join("sub/web.log")));
    config.groups.insert("web".into(), web);
    let mut files = LogFiles::open(&config, &live(&config), |_, e| panic!("{e}")).unwrap();
    // Batches of 100 lines, written one by one (as the file thread does when idle).
    for batch in 0..20 {
        files.observe(&lines("web", batch * 100, 100));
        files.observe(&lines("db", 0, 1));
        files.sync();
    }
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let mut kept = Vec::new();
    for name in ["run.log.2", "run.log.1", "run.log"] {
        let text = read(name);
        assert!(text.ends_with('\n'));
        kept.extend(numbers(
            &text
                .lines()
                .filter(|l| l.starts_with("[web]"))
                .collect::<Vec<_>>()
                .join("\n"),
        ));
    }
    assert!(!dir.path().join("run.log.3").exists());
    let first = kept[0];
    assert_eq!(kept, (first..2000).collect::<Vec<_>>());
    let web = read("sub/web.log");
    assert!(!web.contains("[db]"));
    assert_eq!(numbers(&web), (0..2000).collect::<Vec<_>>());
    // Timestamps are on by default in files.
    assert!(
        web.starts_with("20")
            && web
                .lines()
                .all(|l| l.contains("Z [web] [h] [1/1] INFO line "))
    );
}

#[test]
fn reopen_writes_to_a_new_file_after_the_old_one_was_moved() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.launcher.log_file = Some(LogFileConfig::new(dir.path().join("run.log")));
    let mut files = LogFiles::open(&config, &live(&config), |_, e| panic!("{e}")).unwrap();
    files.observe(&lines("g", 0, 3));
    files.sync();
    std::fs::rename(dir.path().join("run.log"), dir.path().join("moved.log")).unwrap();
    files.reopen_handle().request();
    files.observe(&lines("g", 3, 3));
    files.sync();
    let moved = std::fs::read_to_string(dir.path().join("moved.log")).unwrap();
    let new = std::fs::read_to_string(dir.path().join("run.log")).unwrap();
    assert_eq!(numbers(&moved), [0, 1, 2]);
    assert_eq!(numbers(&new), [3, 4, 5]);
}

#[test]
fn a_reload_opens_the_file_again_and_applies_the_new_level() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.launcher.log_file = Some(LogFileConfig::new(dir.path().join("run.log")));
    let live = live(&config);
    let mut files = LogFiles::open(&config, &live, |_, e| panic!("{e}")).unwrap();
    files.observe(&lines("g", 0, 2));
    files.sync();
    std::fs::rename(dir.path().join("run.log"), dir.path().join("moved.log")).unwrap();
    // A reload that raises the level above the lines' (info) hides them; the
    // next one lowers it again. Each reload opens the file again.
    config.launcher.log_level = Level::Warn;
    live.set(OutputSettings::of(&config.launcher));
    files.observe(&lines("g", 2, 2));
    files.sync();
    config.launcher.log_level = Level::Info;
    live.set(OutputSettings::of(&config.launcher));
    files.observe(&lines("g", 4, 2));
    files.sync();
    let moved = std::fs::read_to_string(dir.path().join("moved.log")).unwrap();
    let new = std::fs::read_to_string(dir.path().join("run.log")).unwrap();
    assert_eq!(numbers(&moved), [0, 1]);
    assert_eq!(numbers(&new), [4, 5]);
}

#[test]
fn a_file_that_cannot_be_opened_is_an_error_naming_its_key() {
    let mut config = Config::default();
    config.launcher.log_file = Some(LogFileConfig::new("/proc/nope/run.log"));
    let err = LogFiles::open(&config, &live(&config), |_, _| {})
        .err()
        .expect("an error");
    assert!(err.to_string().contains("launcher.log_file"), "{err}");
}

#[test]
fn a_file_older_than_max_age_is_rotated_at_the_next_write() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut config = LogFileConfig::new(dir.path().join("run.log"));
    config.max_age = distarch_core::HumanDuration::from_millis(20);
    config.keep = 1;
    let mut file = distarch_logfile::RotatingFile::open(&config).unwrap();
    file.write_all(b"first\n").unwrap();
    file.write_all(b"second\n").unwrap();
    // The age is the feature under test: let it pass.
    std::thread::sleep(std::time::Duration::from_millis(30));
    file.write_all(b"third\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(30));
    file.write_all(b"fourth\n").unwrap();
    file.flush().unwrap();
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    // keep = 1: "first/second" went out with the second rotation.
    assert_eq!(read("run.log.1"), "third\n");
    assert_eq!(read("run.log"), "fourth\n");
    assert!(!dir.path().join("run.log.2").exists());
}
