//! `weir artifacts get REF [-o PATH]`: copies an artifact out of the
//! artifact store that holds it (the state directory's, or `--artifacts
//! URL`: a folder or `s3://…`, as `[artifacts] url` of `weir serve`). REF
//! is a digest (`sha256:<hex>` or its 64 hex) or an output of an execution,
//! `EXECUTION/NODE/OUTPUT` (a node inside a sub-workflow is `fit/train`):
//! a `file` output's bytes, a `directory` output's tree (with `-o`), or a
//! value output's JSON.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::exit::{self, Error, ExitStatus};
use super::store_args::{StoreArgs, block_on};
use crate::artifact::{self, ArtifactStore};
use crate::spec::{Digest, ExecutionId};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: ArtifactsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ArtifactsCommand {
    /// Copy an artifact (or an execution's output) to a file, a folder or
    /// stdout.
    Get(GetArgs),
}

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// `sha256:<hex>` (or the 64 hex), or `EXECUTION/NODE/OUTPUT`.
    pub reference: String,
    /// Where to write it (a directory artifact needs one); default: stdout.
    #[arg(short = 'o', long = "out", value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// The artifact store: a folder or an object store URL (`s3://bucket/prefix`);
    /// default: `<state-dir>/artifacts`.
    #[arg(
        long,
        env = "WEIR_ARTIFACTS",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub artifacts: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// What a reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Digest(Digest),
    Output {
        execution: ExecutionId,
        node: String,
        output: String,
    },
}

fn parse(reference: &str) -> Result<Target, Error> {
    let digest = artifact::parse_reference(reference)
        .or_else(|| artifact::parse_reference(&format!("sha256:{reference}")));
    if let Some(digest) = digest {
        return Ok(Target::Digest(digest));
    }
    let (execution, rest) = reference.split_once('/').unwrap_or((reference, ""));
    let (node, output) = rest.rsplit_once('/').unwrap_or(("", rest));
    if execution.is_empty() || node.is_empty() || output.is_empty() {
        return Err(Error::failed(format!(
            "`{reference}` is neither an artifact digest nor EXECUTION/NODE/OUTPUT"
        ))
        .with_help("e.g. `weir artifacts get sha256:3f2a…` or `weir artifacts get nightly-0123456789ab/train/model`"));
    }
    Ok(Target::Output {
        execution: ExecutionId::from(execution),
        node: node.to_owned(),
        output: output.to_owned(),
    })
}

pub fn run(args: &Args) -> exit::Result {
    match &args.command {
        ArtifactsCommand::Get(get) => block_on(run_get(get)),
    }
}

async fn run_get(args: &GetArgs) -> exit::Result {
    let digest = match parse(&args.reference)? {
        Target::Digest(digest) => digest,
        Target::Output {
            execution,
            node,
            output,
        } => match output_of(args, &execution, &node, &output).await? {
            Value::String(text) if artifact::parse_reference(&text).is_some() => {
                artifact::parse_reference(&text).expect("checked")
            }
            // A value, not a file: its JSON.
            value => {
                write_out(args.out.as_deref(), format!("{value:#}\n").as_bytes())?;
                return Ok(ExitStatus::Success);
            }
        },
    };
    let url = args
        .artifacts
        .clone()
        .unwrap_or_else(|| args.store.state_dir.join("artifacts").display().to_string());
    let store = artifact::open(&url)
        .map_err(|e| Error::failed(format!("the artifact store `{url}`: {e}")))?;
    if !store.contains(&digest) {
        return Err(Error::not_found(format!(
            "no artifact {} in `{url}`",
            artifact::reference(&digest)
        ))
        .with_help("name the store the daemon uses with --artifacts (its `[artifacts] url`)"));
    }
    match &args.out {
        Some(path) => fetch(store.as_ref(), &digest, path),
        None => {
            // Through a file of this process's own, removed at once.
            let path = std::env::temp_dir().join(format!(
                "weir-artifact-{}-{}",
                std::process::id(),
                digest.short()
            ));
            fetch(store.as_ref(), &digest, &path)?;
            let read = if path.is_dir() {
                Err(Error::failed(format!(
                    "{} is a directory: give -o PATH to write it",
                    artifact::reference(&digest)
                )))
            } else {
                std::fs::read(&path)
                    .map_err(|e| Error::failed(format!("cannot read the artifact: {e}")))
            };
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
            write_out(None, &read?)?;
            Ok(ExitStatus::Success)
        }
    }
}

/// Output `output` of node `node` of `execution`, as the store has it.
async fn output_of(
    args: &GetArgs,
    execution: &ExecutionId,
    node: &str,
    output: &str,
) -> Result<Value, Error> {
    let store = args.store.open_existing().await?;
    let nodes = store.nodes(execution).await.map_err(Error::failed)?;
    if nodes.is_empty()
        && store
            .execution(execution)
            .await
            .map_err(Error::failed)?
            .is_none()
    {
        return Err(Error::not_found(format!("no execution `{execution}`")));
    }
    let Some(state) = nodes.iter().find(|n| n.node == node) else {
        return Err(Error::not_found(format!(
            "execution `{execution}` has no node `{node}` (it has: {})",
            nodes
                .iter()
                .map(|n| n.node.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    state
        .outputs
        .as_ref()
        .and_then(|o| o.get(output))
        .cloned()
        .ok_or_else(|| {
            Error::not_found(format!(
                "node `{node}` of `{execution}` has no output `{output}` ({})",
                state.status
            ))
        })
}

fn fetch(store: &dyn ArtifactStore, digest: &Digest, path: &Path) -> exit::Result {
    store.fetch(digest, path).map_err(|e| {
        Error::failed(format!(
            "cannot copy {} to `{}`: {e}",
            artifact::reference(digest),
            path.display()
        ))
    })?;
    Ok(ExitStatus::Success)
}

fn write_out(path: Option<&Path>, bytes: &[u8]) -> Result<(), Error> {
    match path {
        Some(path) => std::fs::write(path, bytes)
            .map_err(|e| Error::failed(format!("cannot write `{}`: {e}", path.display()))),
        None => std::io::stdout()
            .write_all(bytes)
            .map_err(|e| Error::failed(format!("cannot write to stdout: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_is_a_digest_or_an_execution_s_output() {
        let hex = "ab".repeat(32);
        assert_eq!(
            parse(&format!("sha256:{hex}")).expect("a digest"),
            Target::Digest(Digest::from_hex(hex.clone()))
        );
        assert_eq!(
            parse(&hex).expect("bare hex"),
            Target::Digest(Digest::from_hex(hex))
        );
        assert_eq!(
            parse("nightly-1/fit/train/model").expect("an output"),
            Target::Output {
                execution: "nightly-1".into(),
                node: "fit/train".into(),
                output: "model".into(),
            }
        );
        for bad in ["nightly-1", "nightly-1/model", "/a/b", "a//b"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
