//! Runs the real `warden` binary on loopback for a test, and reads its
//! audit log.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_warden")
}

/// A running `warden run`, stopped (SIGTERM) on drop.
pub struct Warden {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub audit: PathBuf,
    pub dir: tempfile::TempDir,
    stderr: Arc<Mutex<String>>,
}

impl Warden {
    /// Start with `--listen 127.0.0.1:0 --upstream UPSTREAM --audit-log
    /// DIR/audit.jsonl`, the given policy text (None: built-in) and extra
    /// arguments; waits until it listens.
    pub fn start(upstream: SocketAddr, policy: Option<&str>, extra: &[&str]) -> Warden {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, upstream, policy, extra)
    }

    /// Like `start`, in an existing directory (to restart on the same log).
    pub fn start_in(dir: tempfile::TempDir, upstream: SocketAddr, policy: Option<&str>, extra: &[&str]) -> Warden {
        let audit = dir.path().join("audit.jsonl");
        let mut cmd = Command::new(bin());
        cmd.args(["run", "--listen", "127.0.0.1:0", "--host", "test-gw"])
            .arg("--upstream")
            .arg(upstream.to_string())
            .arg("--audit-log")
            .arg(&audit)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(text) = policy {
            let file = dir.path().join("policy.toml");
            std::fs::write(&file, text).expect("write policy");
            cmd.arg("--policy").arg(file);
        }
        let mut child = cmd.spawn().expect("spawn warden");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().expect("stderr");
        let log = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1).and_then(|s| s.split_whitespace().next()) {
                    let _ = tx.send(addr.to_owned());
                }
                log.lock().expect("log lock").push_str(&(line + "\n"));
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a.parse().expect("listen address"),
            Err(_) => {
                let _ = child.kill();
                panic!("warden did not start:\n{}", stderr.lock().expect("log lock"));
            }
        };
        Warden { child: Some(child), addr, audit, dir, stderr }
    }

    /// Process id of the running daemon.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Send a signal (`HUP`, `TERM`, …) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} failed");
    }

    /// Wait (up to 10 s) for a stderr line containing `needle`; the rest of that line.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(rest) = self.stderr().lines().find_map(|l| l.split_once(needle).map(|(_, r)| r.to_owned())) {
                return rest;
            }
            assert!(Instant::now() < deadline, "no log line with {needle:?}:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("log lock").clone()
    }

    /// SIGTERM and wait (bounded) for a clean exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("warden did not stop within 15 s:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop and hand back the directory (log and policy stay).
    pub fn into_dir(mut self) -> tempfile::TempDir {
        self.stop();
        let dir = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, dir)
    }

    /// Audit records as JSON, waiting up to 3 s for at least `min` of them
    /// that satisfy `pred` (the writer flushes at least every second).
    pub fn wait_records(&self, min: usize, pred: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let records: Vec<_> = read_records(&self.audit).into_iter().filter(|r| pred(r)).collect();
            if records.len() >= min || Instant::now() > deadline {
                return records;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Warden {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every complete line of an audit log, parsed. The daemon appends whole
/// lines, but a reader racing a multi-page `write(2)` can see the first
/// pages of it (the file grows page by page): bytes after the last newline
/// are a write in flight, not a record. Whether the log is intact once the
/// daemon stopped is `warden audit verify`'s question, not this helper's.
pub fn read_records(path: &Path) -> Vec<serde_json::Value> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(&[][..], |end| &bytes[..=end]);
    std::str::from_utf8(complete)
        .unwrap_or_else(|e| panic!("audit log {} is not UTF-8: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("unparseable audit line {l:?}: {e}")))
        .collect()
}

/// Contact records only.
pub fn contacts(records: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    records.iter().filter(|r| r["type"] == "contact").collect()
}
