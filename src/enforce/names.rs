//! Every name warden uses in nftables, in one place. warden owns exactly
//! one table, `inet warden`, and never names anything outside it.

pub const FAMILY: &str = "inet";
pub const TABLE: &str = "warden";

/// Static vendor networks (interval sets) from the policy's IP rules whose
/// action is `block` now.
pub const VENDOR4: &str = "vendor4";
pub const VENDOR6: &str = "vendor6";
/// Networks inside those that the policy lets through (more specific
/// monitor/allow rules, e.g. mail relays): matched first, `return`.
pub const EXEMPT4: &str = "exempt4";
pub const EXEMPT6: &str = "exempt6";
/// Learned vendor addresses, each with its own timeout.
pub const LEARNED4: &str = "learned4";
pub const LEARNED6: &str = "learned6";
/// Blocked TCP flows `client . server . port`, each with its own timeout.
pub const FLOWS4: &str = "flows4";
pub const FLOWS6: &str = "flows6";

/// Base chain on the forward hook (gateway and sidecar).
pub const FORWARD: &str = "forward";
/// Base chain on the output hook (sidecar: the router's own traffic).
pub const OUTPUT: &str = "output";
/// Base chain on the NAT prerouting hook (DNS redirect).
pub const PREROUTING: &str = "prerouting";
/// Regular chain with the address rules, jumped to from the base chains.
pub const ENFORCE: &str = "enforce";
