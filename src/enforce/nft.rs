//! Running `nft` with its JSON interface: apply a batch (`nft -j -f -`, one
//! atomic transaction) and read warden's table back
//! (`nft -j list table inet warden`), parsed with the `nftables` crate's
//! schema types. Blocking: call it from the enforcement thread or
//! `spawn_blocking`, never from the async reactor.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use nftables::schema::{NfListObject, NfObject, Nftables};
use serde_json::Value;

use super::EnforceError;
use super::names::{FAMILY, TABLE};
use super::ruleset::Expected;

/// The `nft` program to run.
#[derive(Debug, Clone)]
pub struct Nft {
    pub program: PathBuf,
}

impl Nft {
    pub fn new(program: impl Into<PathBuf>) -> Nft {
        Nft { program: program.into() }
    }

    /// Applies one batch atomically.
    pub fn apply(&self, step: &'static str, batch: &Value) -> Result<(), EnforceError> {
        let text = batch.to_string();
        let mut child = Command::new(&self.program)
            .args(["-j", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| EnforceError::Spawn { program: self.program.clone(), source })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(text.as_bytes()).map_err(|source| EnforceError::Io { step, source })?;
        }
        let out = child.wait_with_output().map_err(|source| EnforceError::Io { step, source })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return Err(EnforceError::Rejected { step, stderr });
        }
        Ok(())
    }

    /// `nft -j list table inet warden`, parsed.
    pub fn list_table(&self) -> Result<Nftables<'static>, EnforceError> {
        let out = Command::new(&self.program)
            .args(["-j", "list", "table", FAMILY, TABLE])
            .stdin(Stdio::null())
            .output()
            .map_err(|source| EnforceError::Spawn { program: self.program.clone(), source })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return Err(EnforceError::Rejected { step: "list table", stderr });
        }
        serde_json::from_slice(&out.stdout).map_err(EnforceError::ReadBack)
    }

    /// Reads the table back and checks every expected set and chain (with
    /// its number of rules) is there.
    pub fn verify(&self, expected: &Expected) -> Result<(), EnforceError> {
        check(&self.list_table()?, expected)
    }
}

/// Compares a listed table with what was built.
pub fn check(listed: &Nftables<'_>, expected: &Expected) -> Result<(), EnforceError> {
    let objects = listed.objects.iter().filter_map(|o| match o {
        NfObject::ListObject(l) => Some(l),
        _ => None,
    });
    let (mut sets, mut chains, mut rules) = (Vec::new(), Vec::new(), Vec::new());
    for object in objects {
        match object {
            NfListObject::Set(s) if s.table == TABLE => sets.push(s.name.to_string()),
            NfListObject::Chain(c) if c.table == TABLE => chains.push(c.name.to_string()),
            NfListObject::Rule(r) if r.table == TABLE => rules.push(r.chain.to_string()),
            _ => {}
        }
    }
    for set in &expected.sets {
        if !sets.iter().any(|s| s == set) {
            return Err(EnforceError::Verify(format!("set {set} missing")));
        }
    }
    for (chain, count) in &expected.chains {
        let found = rules.iter().filter(|c| c == chain).count();
        if !chains.iter().any(|c| c == chain) || found != *count {
            return Err(EnforceError::Verify(format!("chain {chain}: expected {count} rules, found {found}")));
        }
    }
    Ok(())
}
