//! Least privilege: after the sockets are bound (and before any thread is
//! started), switch to an unprivileged user and keep only the capabilities
//! warden needs: `CAP_NET_BIND_SERVICE` (rebinding port 53 is not needed,
//! but a packet layer may bind), `CAP_NET_RAW` (capture, TCP resets) and
//! `CAP_NET_ADMIN` (nftables). They stay in the permitted, effective,
//! inheritable and ambient sets (so a child `nft` keeps `CAP_NET_ADMIN`);
//! every other capability leaves the bounding set, and `no_new_privs` is set.
//!
//! Owns only the process credentials; it must run while the process is
//! single-threaded, because capability sets are per thread.

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid, User};
use thiserror::Error;

/// The capabilities warden keeps.
pub const KEEP: [Capability; 3] =
    [Capability::CAP_NET_BIND_SERVICE, Capability::CAP_NET_RAW, Capability::CAP_NET_ADMIN];

#[derive(Debug, Error)]
pub enum PrivilegeError {
    #[error("user {0:?} does not exist")]
    UnknownUser(String),
    #[error("cannot look up user {user:?}: {source}")]
    LookupUser { user: String, source: nix::Error },
    #[error("cannot shrink the capability bounding set: {0}")]
    Bounding(caps::errors::CapsError),
    #[error("cannot keep capabilities across the user switch: {0}")]
    KeepCaps(nix::Error),
    #[error("cannot set supplementary groups: {0}")]
    SetGroups(nix::Error),
    #[error("cannot switch to group {gid}: {source}")]
    SetGid { gid: u32, source: nix::Error },
    #[error("cannot switch to user {uid}: {source}")]
    SetUid { uid: u32, source: nix::Error },
    #[error("cannot set the {set} capability set: {source}")]
    Capabilities { set: &'static str, source: caps::errors::CapsError },
    #[error("cannot set no_new_privs: {0}")]
    NoNewPrivs(nix::Error),
}

/// What the process runs as after [`drop_privileges`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// The user switched to; `None` when the process stayed as started.
    pub switched_to: Option<String>,
}

/// Look a user up (for `warden check` and start-up alike).
pub fn lookup_user(name: &str) -> Result<User, PrivilegeError> {
    User::from_name(name)
        .map_err(|source| PrivilegeError::LookupUser { user: name.to_owned(), source })?
        .ok_or_else(|| PrivilegeError::UnknownUser(name.to_owned()))
}

/// Switch to `user` when running as root, then keep only [`KEEP`]. Not
/// root (systemd `User=`, a container): only the capability sets are
/// narrowed to [`KEEP`]. Call while single-threaded.
pub fn drop_privileges(user: Option<&str>) -> Result<Credentials, PrivilegeError> {
    let keep: CapsHashSet = KEEP.into_iter().collect();
    let target = match user {
        Some(name) if Uid::effective().is_root() => Some(lookup_user(name)?),
        _ => None,
    };
    if Uid::effective().is_root() || caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false) {
        shrink_bounding_set(&keep)?;
    }
    if let Some(user) = &target {
        switch_user(user)?;
    }
    set_capabilities(&keep)?;
    nix::sys::prctl::set_no_new_privs().map_err(PrivilegeError::NoNewPrivs)?;
    Ok(Credentials {
        uid: Uid::effective().as_raw(),
        gid: Gid::effective().as_raw(),
        switched_to: target.map(|u| u.name),
    })
}

fn shrink_bounding_set(keep: &CapsHashSet) -> Result<(), PrivilegeError> {
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap).map_err(PrivilegeError::Bounding)?;
        }
    }
    Ok(())
}

fn switch_user(user: &User) -> Result<(), PrivilegeError> {
    use nix::unistd::{setgroups, setresgid, setresuid};
    nix::sys::prctl::set_keepcaps(true).map_err(PrivilegeError::KeepCaps)?;
    setgroups(&[user.gid]).map_err(PrivilegeError::SetGroups)?;
    setresgid(user.gid, user.gid, user.gid)
        .map_err(|source| PrivilegeError::SetGid { gid: user.gid.as_raw(), source })?;
    setresuid(user.uid, user.uid, user.uid)
        .map_err(|source| PrivilegeError::SetUid { uid: user.uid.as_raw(), source })?;
    nix::sys::prctl::set_keepcaps(false).map_err(PrivilegeError::KeepCaps)
}

/// Permitted, effective, inheritable and ambient = `keep` ∩ what we have.
fn set_capabilities(keep: &CapsHashSet) -> Result<(), PrivilegeError> {
    let have = caps::read(None, CapSet::Permitted)
        .map_err(|source| PrivilegeError::Capabilities { set: "permitted", source })?;
    let want: CapsHashSet = have.intersection(keep).copied().collect();
    let set = |which: CapSet, name: &'static str| {
        caps::set(None, which, &want).map_err(|source| PrivilegeError::Capabilities { set: name, source })
    };
    caps::clear(None, CapSet::Ambient).map_err(|source| PrivilegeError::Capabilities { set: "ambient", source })?;
    set(CapSet::Effective, "effective")?;
    set(CapSet::Permitted, "permitted")?;
    set(CapSet::Inheritable, "inheritable")?;
    for cap in &want {
        caps::raise(None, CapSet::Ambient, *cap)
            .map_err(|source| PrivilegeError::Capabilities { set: "ambient", source })?;
    }
    Ok(())
}
