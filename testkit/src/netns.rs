//! A network namespace joined to this one by a veth pair, for partition tests: a
//! server started inside it (see [`crate::sshd::SshFixture::start_in`]) is
//! reachable at [`Netns::inner_ip`], and [`Netns::partition`] makes the namespace
//! drop every packet (iptables DROP inside it; nothing outside the namespace is
//! touched) until [`Netns::heal`]. Only the namespace's own address is ever
//! targeted. Dropping the value deletes the namespace and its veth pair.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// One namespace and its link.
pub struct Netns {
    /// Namespace name (`ip netns`).
    pub name: String,
    /// Address of the namespace's end.
    pub inner_ip: String,
    outer: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// Creates a namespace with a /30 link: 10.213.N.1 here, 10.213.N.2 inside.
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = (std::process::id() + NEXT.fetch_add(1, Ordering::SeqCst)) % 250;
        let name = format!("dtns-{}-{n}", std::process::id());
        let (outer, inner) = (
            format!("dtv{n}o{}", std::process::id() % 1000),
            format!("dtv{n}i{}", std::process::id() % 1000),
        );
        let (outer_ip, inner_ip) = (format!("10.213.{n}.1"), format!("10.213.{n}.2"));
        ip(&["netns", "add", &name]);
        let ns = Netns {
            name: name.clone(),
            inner_ip: inner_ip.clone(),
            outer: outer.clone(),
        };
        ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ]);
        ip(&["link", "set", &inner, "netns", &name]);
        ip(&["addr", "add", &format!("{outer_ip}/30"), "dev", &outer]);
        ip(&["link", "set", &outer, "up"]);
        for args in [
            vec!["addr", "add", &format!("{inner_ip}/30"), "dev", &inner],
            vec!["link", "set", &inner, "up"],
            vec!["link", "set", "lo", "up"],
        ] {
            let mut full = vec!["netns", "exec", &name, "ip"];
            full.extend(args);
            ip(&full);
        }
        ns
    }

    fn iptables(&self, args: &[&str]) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "iptables"])
            .args(args)
            .output()
            .expect("run iptables");
        assert!(
            out.status.success(),
            "iptables {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Drops every packet in and out of the namespace (connections stay open,
    /// silent, as in a real partition).
    pub fn partition(&self) {
        self.iptables(&["-A", "INPUT", "-j", "DROP"]);
        self.iptables(&["-A", "OUTPUT", "-j", "DROP"]);
    }

    /// Lets packets flow again.
    pub fn heal(&self) {
        self.iptables(&["-F"]);
    }
}

impl Default for Netns {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.outer])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
