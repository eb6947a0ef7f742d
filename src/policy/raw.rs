//! The policy file as written: serde types that mirror the TOML one to one,
//! with source spans kept for error messages. Unknown keys are rejected here;
//! meaning is checked in `compile`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::Action;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub policy: RawHeader,
    #[serde(default)]
    pub categories: BTreeMap<Spanned<String>, String>,
    #[serde(default)]
    pub phases: Vec<Spanned<RawPhase>>,
    #[serde(default)]
    pub rules: Vec<Spanned<RawRules>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeader {
    pub id: Spanned<String>,
    pub title: String,
    pub legal_basis: String,
    pub reference_url: String,
    #[serde(default)]
    pub blocked_ede: EdeCode,
    #[serde(default)]
    pub description: Option<String>,
}

/// Extended DNS Error code (RFC 8914) carried by refusals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EdeCode {
    /// 15: the operator has blocked the name.
    Blocked,
    /// 16: blocked because of an external requirement (law, regulation).
    #[default]
    Censored,
    /// 17: blocked because the client asked for it (a filtering service).
    Filtered,
}

impl EdeCode {
    pub fn info_code(self) -> u16 {
        match self {
            EdeCode::Blocked => 15,
            EdeCode::Censored => 16,
            EdeCode::Filtered => 17,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPhase {
    pub name: Spanned<String>,
    #[serde(default)]
    pub start: Option<Spanned<String>>,
    pub default: Action,
    #[serde(default)]
    pub actions: BTreeMap<Spanned<String>, Action>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub prohibition: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRules {
    pub category: Spanned<String>,
    /// Sources and reasons, for readers of the file; not used at run time.
    #[serde(default)]
    #[allow(dead_code)]
    pub note: Option<String>,
    #[serde(default)]
    pub domains: Vec<Spanned<String>>,
    #[serde(default)]
    pub hosts: Vec<Spanned<String>>,
    #[serde(default)]
    pub wildcards: Vec<Spanned<String>>,
    #[serde(default)]
    pub networks: Vec<Spanned<String>>,
}
