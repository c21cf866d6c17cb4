use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::bail_input;
use crate::cli::ConfigArgs;
use crate::hub::{UploadRequest, upload};

#[derive(Args, Debug)]
pub struct UploadArgs {
    #[command(flatten)]
    pub common: ConfigArgs,
    #[arg(
        long,
        value_name = "CHECKPOINT",
        default_value = "checkpoints/best.mpk"
    )]
    pub checkpoint: PathBuf,
    /// owner/name (default: huggingface.repo_id).
    #[arg(long)]
    pub repo_id: Option<String>,
    /// Hub token (default: HF_TOKEN, then the Hugging Face CLI's token file).
    #[arg(long)]
    pub token: Option<String>,
    /// Create the repository as private (also: huggingface.private).
    #[arg(long)]
    pub private: bool,
    #[arg(long, default_value = "main")]
    pub revision: String,
    #[arg(long)]
    pub commit_message: Option<String>,
}

pub fn run(args: UploadArgs) -> Result<()> {
    let config = args.common.load()?;
    let Some(repo_id) = args.repo_id.clone().or(config.huggingface.repo_id.clone()) else {
        bail_input!("no repository: pass --repo-id owner/name or set huggingface.repo_id");
    };
    let files = upload(&UploadRequest {
        checkpoint: &args.checkpoint,
        repo_id: &repo_id,
        token: args.token.clone(),
        private: args.private || config.huggingface.private,
        revision: &args.revision,
        commit_message: args.commit_message.clone(),
    })?;
    if !args.common.quiet {
        println!(
            "uploaded {} to {repo_id}: {}",
            args.checkpoint.display(),
            files.join(", ")
        );
    }
    Ok(())
}
