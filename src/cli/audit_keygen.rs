//! `warden audit keygen`: make the Ed25519 key pair for signed checkpoints.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::audit::sign;

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Directory for the key pair (must exist; keep it outside the log directory).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

pub fn keygen(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let (secret, public) = sign::keygen(&args.out)?;
    let id = sign::key_id(&sign::load_public_key(&public)?);
    println!("secret key: {} (mode 0600; set [audit] signing_key to it)", secret.display());
    println!("public key: {} (give it to reviewers: warden audit verify --key)", public.display());
    println!("key id:     {id}");
    Ok(ExitCode::SUCCESS)
}
