//! Checkpoint signatures: the Ed25519 key pair (`warden audit keygen`), the
//! exact bytes a checkpoint signs, and checking a checkpoint against a
//! public key. It knows nothing of files other than the two key files.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use super::record::Checkpoint;

/// Why a key could not be made, read, or a checkpoint does not check.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot get random bytes for a new key: {0}")]
    Random(String),
    #[error("{path} already exists; refusing to overwrite a key")]
    Exists { path: PathBuf },
    #[error("cannot write key file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read key file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a warden key file (expected one line of 64 hex digits)")]
    Format { path: PathBuf },
    #[error("{path}: not a valid Ed25519 public key")]
    BadPublicKey { path: PathBuf },
    #[error("signed by key {found}, not by the given key {expected}")]
    OtherKey { expected: String, found: String },
    #[error("the signature is not 128 hex digits")]
    SigFormat,
    #[error("the signature does not match the signed chain head")]
    BadSignature,
}

/// File names `keygen` writes into its directory.
pub const SECRET_FILE: &str = "audit-signing.key";
pub const PUBLIC_FILE: &str = "audit-signing.pub";

/// Makes a new key pair in `dir`: the secret key with mode 0600, the public
/// key with 0644. Refuses to overwrite either.
pub fn keygen(dir: &Path) -> Result<(PathBuf, PathBuf), SignError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| SignError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    let (secret, public) = (dir.join(SECRET_FILE), dir.join(PUBLIC_FILE));
    for path in [&secret, &public] {
        if path.exists() {
            return Err(SignError::Exists { path: path.clone() });
        }
    }
    let id = key_id(&key.verifying_key());
    let text = format!("# warden audit checkpoint signing key (Ed25519 seed), key id {id}\n{}\n", hex::encode(seed));
    write_new(&secret, &text, 0o600)?;
    let text = format!("# warden audit checkpoint public key (Ed25519), key id {id}\n{}\n", hex(&key));
    write_new(&public, &text, 0o644)?;
    Ok((secret, public))
}

fn hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().as_bytes())
}

fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), SignError> {
    let err = |source| SignError::Write { path: path.to_owned(), source };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let mut file = options.open(path).map_err(err)?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(err)
}

/// The 32 bytes of a key file: its one line that is not a `#` comment.
fn read_key_bytes(path: &Path) -> Result<[u8; 32], SignError> {
    let text = fs::read_to_string(path).map_err(|source| SignError::Read { path: path.to_owned(), source })?;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    let format = || SignError::Format { path: path.to_owned() };
    let line = lines.next().ok_or_else(format)?;
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(line, &mut bytes).map_err(|_| format())?;
    if lines.next().is_some() {
        return Err(format());
    }
    Ok(bytes)
}

pub fn load_signing_key(path: &Path) -> Result<SigningKey, SignError> {
    read_key_bytes(path).map(|seed| SigningKey::from_bytes(&seed))
}

pub fn load_public_key(path: &Path) -> Result<VerifyingKey, SignError> {
    let bytes = read_key_bytes(path)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| SignError::BadPublicKey { path: path.to_owned() })
}

/// First 16 hex digits of SHA-256 over the public key bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// The bytes a checkpoint signs: gateway, chain head and the checkpoint's
/// own `ts` exactly as written.
pub fn signed_bytes(host: &str, seq: u64, hash: &str, ts: &str) -> Vec<u8> {
    format!("warden-audit-checkpoint-v1\n{host}\n{seq}\n{hash}\n{ts}\n").into_bytes()
}

/// Signs the chain head `(seq, hash)` of `host` at `ts`.
pub fn sign(key: &SigningKey, host: &str, seq: u64, hash: &str, ts: &str) -> Checkpoint {
    let sig = key.sign(&signed_bytes(host, seq, hash, ts));
    Checkpoint { seq, hash: hash.to_owned(), key: key_id(&key.verifying_key()), sig: hex::encode(sig.to_bytes()) }
}

/// Checks a checkpoint's signature with `key`.
pub fn verify(key: &VerifyingKey, host: &str, ts: &str, cp: &Checkpoint) -> Result<(), SignError> {
    let expected = key_id(key);
    if cp.key != expected {
        return Err(SignError::OtherKey { expected, found: cp.key.clone() });
    }
    let mut bytes = [0u8; 64];
    hex::decode_to_slice(&cp.sig, &mut bytes).map_err(|_| SignError::SigFormat)?;
    let sig = Signature::from_bytes(&bytes);
    key.verify(&signed_bytes(host, cp.seq, &cp.hash, ts), &sig).map_err(|_| SignError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_private_key_only_the_owner_reads_and_signatures_check() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = keygen(dir.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(matches!(keygen(dir.path()), Err(SignError::Exists { .. })));
        let key = load_signing_key(&secret).unwrap();
        let vk = load_public_key(&public).unwrap();
        let cp = sign(&key, "gw1", 7, &"a".repeat(64), "2024-09-29T04:00:00.000Z");
        verify(&vk, "gw1", "2024-09-29T04:00:00.000Z", &cp).unwrap();
        let moved = verify(&vk, "gw1", "2024-09-29T05:00:00.000Z", &cp);
        assert!(matches!(moved, Err(SignError::BadSignature)));
        let other = Checkpoint { hash: "b".repeat(64), ..cp };
        assert!(matches!(verify(&vk, "gw1", "2024-09-29T04:00:00.000Z", &other), Err(SignError::BadSignature)));
    }
}
