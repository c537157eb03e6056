//! Property test: adversarial arguments, environment values and working directory
//! names go through the real sshd and the remote login shell, and reach the worker
//! byte for byte (the worker prints them in hex, one a line).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use distarch_core::ExitStatus;
use distarch_transport_ssh::SshTransport;
use proptest::prelude::*;
use serde_json::json;

/// Strings made to break naive quoting: shell metacharacters, quotes, newlines,
/// control characters and non-ASCII text, but no NUL (no argv can carry one).
fn nasty() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("'\\''".to_string()),
        Just("$(touch /tmp/distarch-pwned)".to_string()),
        Just("`id`".to_string()),
        Just("${HOME}".to_string()),
        Just("; exit 7;".to_string()),
        Just("&& false ||".to_string()),
        Just("\n".to_string()),
        Just("\\".to_string()),
        Just("*".to_string()),
        Just("~".to_string()),
        Just("-".to_string()),
        Just(" ".to_string()),
        Just("\t".to_string()),
        Just("!".to_string()),
        Just("#".to_string()),
        Just("=".to_string()),
        Just("é€😀".to_string()),
        "[\\x01-\\x7f]{0,4}",
        any::<char>()
            .prop_filter("no NUL", |c| *c != '\0')
            .prop_map(|c| c.to_string()),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|v| v.concat())
}

#[test]
fn adversarial_values_arrive_byte_for_byte() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut fx = SshFixture::new();
    let a = fx.start("127.0.0.2");
    fx.trust(a);
    let entry = fx.server(a).entry();
    let settings = settings(&fx, json!({}));
    let t = SshTransport::new();
    let base = fx.dir().join("wd");
    std::fs::create_dir(&base).unwrap();
    let config = ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(args in prop::collection::vec(nasty(), 0..4), value in nasty(), dir in nasty())| {
        // A directory named after the adversarial string (as one path component).
        let dir_name: String = format!("d{}", dir.replace('/', "_"));
        let workdir = base.join(&dir_name);
        std::fs::create_dir_all(&workdir).unwrap();
        let mut argv = vec![
            "sh".to_string(),
            "-c".to_string(),
            // Hex, one value a line: the test is about what reaches the worker.
            r#"for v in "$PWD" "$NASTY" "$@"; do printf '%s' "$v" | od -An -v -tx1 | tr -d ' \n'; echo; done"#.to_string(),
            "sh".to_string(),
        ];
        argv.extend(args.iter().cloned());
        let argv_ref: Vec<&str> = argv.iter().map(|s| s.as_str()).collect();
        let mut spec = spec(&settings, &entry, &argv_ref);
        spec.env.insert("NASTY".into(), value.clone());
        spec.workdir = Some(workdir.clone());
        let f = rt.block_on(run_to_end(&t, &spec));
        prop_assert_eq!(&f.exit, &ExitStatus::Exited(0), "stderr: {}", String::from_utf8_lossy(&f.stderr));
        let mut expected = String::new();
        for v in std::iter::once(workdir.display().to_string()).chain([value.clone()]).chain(args.iter().cloned()) {
            for b in v.as_bytes() {
                expected.push_str(&format!("{b:02x}"));
            }
            expected.push('\n');
        }
        prop_assert_eq!(String::from_utf8_lossy(&f.stdout), expected);
    });
    assert!(!std::path::Path::new("/tmp/distarch-pwned").exists());
}
