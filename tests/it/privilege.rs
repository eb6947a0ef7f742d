//! Privilege drop (root only): after start the daemon runs as the
//! configured user with CAP_NET_BIND_SERVICE, CAP_NET_RAW and CAP_NET_ADMIN
//! only, no_new_privs set, and still answers on a privileged port.

use std::net::{Ipv4Addr, SocketAddr};

use crate::support::*;

/// CAP_NET_BIND_SERVICE (10) | CAP_NET_ADMIN (12) | CAP_NET_RAW (13).
const KEPT: u64 = (1 << 10) | (1 << 12) | (1 << 13);

fn status_field(pid: u32, field: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let line = text.lines().find(|l| l.starts_with(&format!("{field}:"))).unwrap_or_else(|| panic!("no {field}"));
    line.split_once(':').map(|(_, v)| v.trim().to_owned()).unwrap_or_default()
}

fn caps(pid: u32, field: &str) -> u64 {
    u64::from_str_radix(&status_field(pid, field), 16).expect("hex capability mask")
}

#[test]
fn the_daemon_drops_to_the_configured_user_and_three_capabilities() {
    if !nix::unistd::Uid::effective().is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root: this test must run there");
        eprintln!("skipped: privilege drop needs root (run as root to test it)");
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody").expect("getpwnam").expect("user nobody exists");
    let up = FakeUpstream::start(Zone::new().a("www.example.org", Ipv4Addr::new(198, 18, 0, 10)));
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::chown(dir.path(), Some(nobody.uid.as_raw()), Some(nobody.gid.as_raw())).expect("chown");
    let privileged: SocketAddr = "127.0.0.121:53".parse().expect("addr");
    let w = Warden::start_in(dir, up.addr(), None, &["--user", "nobody", "--listen", &privileged.to_string()]);
    let pid = w.pid();
    let uid = nobody.uid.as_raw();
    assert_eq!(status_field(pid, "Uid"), format!("{uid}\t{uid}\t{uid}\t{uid}"));
    assert_eq!(status_field(pid, "Gid").split_whitespace().next(), Some(nobody.gid.as_raw().to_string().as_str()));
    for set in ["CapEff", "CapPrm", "CapAmb", "CapBnd"] {
        assert_eq!(caps(pid, set), KEPT, "{set} is {:#x}", caps(pid, set));
    }
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    // Still serving, on the privileged port too, and writing its audit log.
    assert_eq!(rcode(&query_udp(privileged, "s10.upd.kaspersky.com", RecordType::A)), ResponseCode::NXDomain);
    assert_eq!(a_records(&query_udp(w.addr, "www.example.org", RecordType::A)).len(), 1);
    assert_eq!(w.wait_records(1, |r| r["type"] == "contact").len(), 1, "{}", w.stderr());
}

#[test]
fn an_unknown_user_refuses_to_start() {
    let out = std::process::Command::new(warden::bin())
        .args(["run", "--listen", "127.0.0.1:0", "--audit-log", "/dev/null", "--user", "no-such-user-warden"])
        .output()
        .expect("run warden");
    if nix::unistd::Uid::effective().is_root() {
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-user-warden"), "{out:?}");
    }
}
