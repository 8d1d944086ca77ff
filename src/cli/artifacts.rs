//! `weir artifacts get REF [-o PATH]`: copies an artifact out of the
//! artifact store that holds it (the state directory's, or `--artifacts
//! URL`: a folder or `s3://…`, as `[artifacts] url` of `weir serve`). REF
//! is a digest (`sha256:<hex>` or its 64 hex) or an output of an execution,
//! `EXECUTION/NODE/OUTPUT` (a node inside a sub-workflow is `fit/train`):
//! a `file` output's bytes, a `directory` output's tree (with `-o`), or a
//! value output's JSON. With `--server`, a running daemon resolves the
//! output and sends a file's bytes out of its own artifact store (`GET
//! /api/v1/artifacts/{digest}`): no store credentials needed.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::exit::{self, Error, ExitStatus};
use super::origin::{ReadError, ServerArgs};
use super::store_args::{StoreArgs, block_on};
use crate::artifact::{self, ArtifactStore};
use crate::http::client::Client;
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
        value_name = "URL",
        conflicts_with = "server"
    )]
    pub artifacts: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub server: ServerArgs,
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
    if let Some(digest) = artifact::parse_named(reference) {
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
        ArtifactsCommand::Get(get) => match get.server.client()? {
            Some(client) => get_through(&client, get),
            None => block_on(run_get(get)),
        },
    }
}

/// What a reference comes to: an artifact's digest, or a value output
/// (written out as its JSON, there and then).
fn digest_of(
    args: &GetArgs,
    nodes: impl FnOnce(&ExecutionId) -> Result<Option<Vec<NodeOutputs>>, Error>,
) -> Result<Option<Digest>, Error> {
    let (execution, node, output) = match parse(&args.reference)? {
        Target::Digest(digest) => return Ok(Some(digest)),
        Target::Output {
            execution,
            node,
            output,
        } => (execution, node, output),
    };
    let Some(nodes) = nodes(&execution)? else {
        return Err(Error::not_found(format!("no execution `{execution}`")));
    };
    match output_of(&nodes, &execution, &node, &output)? {
        Value::String(text) if artifact::parse_reference(&text).is_some() => {
            Ok(artifact::parse_reference(&text))
        }
        // A value, not a file: its JSON.
        value => {
            write_out(args.out.as_deref(), format!("{value:#}\n").as_bytes())?;
            Ok(None)
        }
    }
}

/// `--server`: the daemon resolves the output and sends the bytes.
fn get_through(client: &Client, args: &GetArgs) -> exit::Result {
    let digest = digest_of(args, |id| {
        let view = client.execution_all(id).map_err(ReadError::from)?;
        Ok(view.map(|v| {
            v.nodes
                .into_iter()
                .map(|n| NodeOutputs {
                    node: n.id,
                    status: n.status.to_string(),
                    outputs: n.outputs,
                })
                .collect()
        }))
    })?;
    let Some(digest) = digest else {
        return Ok(ExitStatus::Success);
    };
    let mut body = client.artifact(&digest).map_err(ReadError::from)?;
    let copied = match &args.out {
        Some(path) => std::fs::File::create(path)
            .map_err(|e| Error::failed(format!("cannot write `{}`: {e}", path.display())))
            .and_then(|mut file| copy(&mut body, &mut file, &path.display().to_string())),
        None => copy(&mut body, &mut std::io::stdout().lock(), "stdout"),
    };
    copied.map(|()| ExitStatus::Success)
}

/// Copies the server's body to `to`, telling a failed read (the server)
/// from a failed write (here).
fn copy(
    body: &mut impl std::io::Read,
    to: &mut impl std::io::Write,
    named: &str,
) -> Result<(), Error> {
    let mut buffer = vec![0; 256 * 1024];
    loop {
        let n = body.read(&mut buffer).map_err(|e| {
            Error::failed(format!("the artifact stopped coming from the server: {e}"))
        })?;
        if n == 0 {
            return to
                .flush()
                .map_err(|e| Error::failed(format!("cannot write to {named}: {e}")));
        }
        to.write_all(&buffer[..n])
            .map_err(|e| Error::failed(format!("cannot write to {named}: {e}")))?;
    }
}

async fn run_get(args: &GetArgs) -> exit::Result {
    let nodes = match parse(&args.reference)? {
        Target::Digest(_) => None,
        Target::Output { execution, .. } => Some(stored_outputs(args, &execution).await?),
    };
    let Some(digest) = digest_of(args, |_| Ok(nodes.flatten()))? else {
        return Ok(ExitStatus::Success);
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

/// A node's outputs, as the store or a server has them.
struct NodeOutputs {
    node: String,
    status: String,
    outputs: Option<Value>,
}

/// The nodes of `execution` and their outputs, as the store has them;
/// `None` when there is no such execution.
async fn stored_outputs(
    args: &GetArgs,
    execution: &ExecutionId,
) -> Result<Option<Vec<NodeOutputs>>, Error> {
    let store = args.store.open_existing().await?;
    let nodes = store.nodes(execution).await.map_err(Error::failed)?;
    if nodes.is_empty()
        && store
            .execution(execution)
            .await
            .map_err(Error::failed)?
            .is_none()
    {
        return Ok(None);
    }
    Ok(Some(
        nodes
            .into_iter()
            .map(|n| NodeOutputs {
                node: n.node,
                status: n.status.to_string(),
                outputs: n.outputs,
            })
            .collect(),
    ))
}

/// Output `output` of node `node` of `execution`.
fn output_of(
    nodes: &[NodeOutputs],
    execution: &ExecutionId,
    node: &str,
    output: &str,
) -> Result<Value, Error> {
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
