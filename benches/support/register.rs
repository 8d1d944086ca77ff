//! Registering a generated repository's head into a store, as a first
//! `weir sync` does (the benchmarks that then create executions: `create`,
//! `console`).

use weir::reconcile::{self, Outcome};
use weir::source::git::{GitSource, SourceSpec};
use weir::store::Store;

/// Reconciles the head of `main` of the repository at `repo_dir` (its
/// definitions under `defs/`) into `store`; panics when it is refused.
pub async fn register(store: &dyn Store, repo_dir: &std::path::Path, state: &std::path::Path) {
    let spec = SourceSpec {
        repo: repo_dir.display().to_string(),
        branch: Some("main".into()),
        path: "defs".into(),
        credentials: Default::default(),
    };
    let source = GitSource::open(&spec, state).expect("source");
    let loaded = reconcile::load(&source, &reconcile::Options::default(), None).expect("load");
    match reconcile::register(store, loaded, chrono::Utc::now())
        .await
        .expect("register")
    {
        Outcome::Reconciled { .. } => {}
        Outcome::Rejected { report, .. } => panic!("invalid: {:?}", report.diagnostics.first()),
        Outcome::Untrusted { refusal, .. } => panic!("{refusal}"),
    }
}
