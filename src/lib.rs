//! egress-warden: a network egress policy enforcer.
//!
//! Data flow (see ARCHITECTURE.md):
//!
//! ```text
//! policies/*.toml ─► policy::compile ─► Policy (matcher tables)
//! client ─DNS─► dns::Server ─► Policy::decide ─► Verdict ─► answer / upstream
//!                                   └──────────► audit::AuditHandle ─► JSONL hash chain
//! ```
//!
//! * [`policy`]: the policy model, validation, schedule and `decide`.
//! * [`matcher`]: compact name and CIDR tables behind `decide`.
//! * [`dns`]: the DNS filtering proxy (listeners, upstream, answers).
//! * [`packet`]: capture and parsers (SNI, HTTP Host, DNS to other resolvers).
//! * [`enforce`]: warden's nftables table and TCP resets.
//! * [`audit`]: audit records, hash chain, the single log writer.
//! * [`config`]: the daemon's settings (TOML file + command-line overrides).
//! * [`cli`]: the `warden` subcommands.

#![forbid(unsafe_code)]

pub mod audit;
pub mod cli;
pub mod config;
pub mod dns;
pub mod enforce;
pub mod export;
#[doc(hidden)]
pub mod fuzzing;
pub mod matcher;
pub mod metrics;
pub mod packet;
pub mod policy;
pub mod privilege;
pub mod reload;
pub mod time;
