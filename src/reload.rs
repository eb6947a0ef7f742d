//! Policy reloads: on SIGHUP and when the policy file changes on disk.
//!
//! Owns the policy in force. A reload reads and compiles the new policy on
//! a blocking thread (never on the query path), then swaps it in atomically
//! (`arc-swap`): queries in flight keep the `Arc` they loaded and finish on
//! the old policy. Subscribers (the nftables layer) get every new policy
//! through a `tokio::sync::watch` channel. A policy that fails to load
//! changes nothing: the last good one stays in force, every error is logged
//! and an audit record of type `policy` says why. Fail closed, never open.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;

use crate::audit::{AuditHandle, Record, RecordType};
use crate::metrics::Metrics;
use crate::policy::{self, Policy, PolicyError};

/// What asked for the reload (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Signal,
    File,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Signal => "signal",
            Trigger::File => "file",
        }
    }
}

/// The policy in force and the means to replace it.
pub struct Reloader {
    current: Arc<ArcSwap<Policy>>,
    tx: watch::Sender<Arc<Policy>>,
    file: Option<PathBuf>,
    blocklists: Vec<PathBuf>,
    audit: AuditHandle,
    metrics: Metrics,
    /// One reload at a time, so the last one started is the one in force.
    busy: Mutex<()>,
}

impl Reloader {
    /// `file`: where reloads read from (`None`: the built-in policy).
    pub fn new(policy: Policy, file: Option<PathBuf>, audit: AuditHandle, metrics: Metrics) -> Reloader {
        let policy = Arc::new(policy);
        let (tx, _) = watch::channel(policy.clone());
        let current = Arc::new(ArcSwap::new(policy));
        Reloader { current, tx, file, blocklists: Vec::new(), audit, metrics, busy: Mutex::new(()) }
    }

    /// Blocklist files reloaded with the policy.
    pub fn with_blocklists(mut self, blocklists: Vec<PathBuf>) -> Reloader {
        self.blocklists = blocklists;
        self
    }

    /// The swap cell the query path reads (`load()` per query).
    pub fn current(&self) -> Arc<ArcSwap<Policy>> {
        self.current.clone()
    }

    /// Every policy put in force from now on; the current one is marked seen.
    /// For layers that must follow the policy (nftables sets).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Policy>> {
        self.tx.subscribe()
    }

    /// Load, compile and swap in the policy file. On error the old policy
    /// stays and the error is returned after being logged and audited.
    pub async fn reload(&self, trigger: Trigger) -> Result<Arc<Policy>, PolicyError> {
        let _one = self.busy.lock().await;
        let (file, lists) = (self.file.clone(), self.blocklists.clone());
        let loaded = tokio::task::spawn_blocking(move || load(file.as_deref(), &lists)).await;
        let loaded = loaded.unwrap_or_else(|e| {
            Err(PolicyError::Read { path: "<reload task>".into(), source: std::io::Error::other(e) })
        });
        let ts = chrono::Utc::now();
        match loaded {
            Ok(p) => {
                let p = Arc::new(p);
                let message = format!("policy reloaded ({}): {} {}", trigger.as_str(), p.meta.id, p.meta.hash);
                tracing::info!(policy = %p.meta.id, hash = %p.meta.hash, "{message}");
                self.current.store(p.clone());
                self.tx.send_replace(p.clone());
                self.metrics.reload(trigger.as_str(), true);
                self.audit.submit(Record::event(ts, RecordType::Policy, message).with_policy(&p.meta.id, &p.meta.hash));
                Ok(p)
            }
            Err(e) => {
                let old = self.current.load();
                let message = format!(
                    "policy reload ({}) rejected, keeping {} {}: {e}",
                    trigger.as_str(),
                    old.meta.id,
                    old.meta.hash
                );
                tracing::error!("{message}");
                self.metrics.reload(trigger.as_str(), false);
                self.audit
                    .submit(Record::event(ts, RecordType::Policy, message).with_policy(&old.meta.id, &old.meta.hash));
                Err(e)
            }
        }
    }

    /// Poll the policy file's metadata every `interval` and reload once a
    /// change has stayed unchanged for one more interval (so a file being
    /// written is not read half-way). Returns at `shutdown`, or at once
    /// when the policy is the built-in one.
    pub async fn watch(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        let Some(file) = self.file.clone() else { return };
        let mut seen = fingerprint(&file);
        let mut pending: Fingerprint = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            let now = fingerprint(&file);
            if now.is_none() || now == seen {
                pending = None;
                continue;
            }
            if pending != now {
                pending = now;
                continue;
            }
            seen = now;
            pending = None;
            let _ = self.reload(Trigger::File).await;
        }
    }
}

fn load(file: Option<&Path>, blocklists: &[PathBuf]) -> Result<Policy, PolicyError> {
    policy::load(file, blocklists).map(|(policy, _)| policy)
}

/// What identifies a version of the file: follows symlinks, so a swapped
/// symlink (Kubernetes ConfigMap) or a rename-over (editors) counts.
type Fingerprint = Option<(SystemTime, u64, u64)>;

fn fingerprint(path: &Path) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}
