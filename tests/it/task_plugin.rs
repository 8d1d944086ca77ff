//! A task type written only here, in the tests (issue 15): registered with
//! one `.with(Echo)`, its body is validated through the schema generated
//! for it and through its own checks, with positions, and tasks of it get
//! versions covering the repository file it names (`template`); a commit
//! of them is registered, and an engine given the type runs them with the
//! local executor, reading the template at the task's commit. Nothing
//! under src/ names it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use weir::task::{
    Context, Destination, Finding, Launch, LaunchError, TaskType, TaskTypes, TaskView,
    check_template, interpolate,
};
use weir::validate::{Options, Report};

use crate::common::{Backend, validate_files_with};

/// What to echo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EchoBody {
    /// May interpolate `{{ inputs.x }}`.
    text: String,
    /// A file of the repository whose `{}` is replaced by the text: a
    /// repository file, so its content is part of the task's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    template: Option<String>,
}

/// `echo` tasks: the output `text` is `text`, inputs interpolated as data.
struct Echo;

impl TaskType for Echo {
    const NAME: &'static str = "echo";
    type Body = EchoBody;

    fn check(&self, body: &EchoBody, task: &TaskView<'_>) -> Vec<Finding> {
        let mut found = check_template(&body.text, "/text", task);
        if task
            .output_type("text")
            .is_none_or(|t| t.to_string() != "string")
        {
            found.push(Finding::invalid(
                "",
                "an echo task declares `outputs: { text: { type: string } }`",
            ));
        }
        found
    }

    fn launch(&self, body: &EchoBody, context: &Context<'_>) -> Result<Launch, LaunchError> {
        let mut text = interpolate(&body.text, context, Destination::Data)?;
        if body.template.is_some() {
            text = context.file("template")?.trim_end().replace("{}", &text);
        }
        Ok(Launch {
            program: "python3".into(),
            args: vec![
                "-c".into(),
                "import json, os; json.dump({'text': os.environ['ECHO']}, \
                 open(os.path.join(os.environ['WEIR_OUTPUTS'], 'outputs.json'), 'w'))"
                    .into(),
            ],
            env: BTreeMap::from([("ECHO".into(), text)]),
            files: Vec::new(),
            notice: None,
            working_dir: None,
        })
    }

    fn repository_files(&self, body: &EchoBody) -> Vec<(&'static str, String)> {
        body.template
            .iter()
            .map(|path| ("template", path.clone()))
            .collect()
    }
}

const GREET: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: greet, project: p }
spec:
  inputs: { who: { type: string } }
  outputs: { text: { type: string } }
  echo: { text: "hello {{ inputs.who }}" }
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: hello, project: p }
spec:
  inputs: { who: { type: string } }
  nodes:
    - { id: greet, task: greet, inputs: { who: "{{ inputs.who }}" } }
"#;

const BROKEN: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: mute, project: p }
spec:
  inputs: { who: { type: string } }
  echo:
    text: "hello {{ inputs.whom }}"
"#;

fn validate_with(types: TaskTypes, text: &str) -> Report {
    let options = Options {
        task_types: types,
        ..Options::default()
    };
    validate_files_with(&[("echo.yaml", text)], &options)
}

fn codes_at(report: &Report) -> Vec<(String, u32, u32)> {
    report
        .diagnostics
        .iter()
        .map(|d| {
            let pos = d.pos.expect("a position");
            (d.code.id().to_owned(), pos.line, pos.column)
        })
        .collect()
}

#[test]
fn a_type_registered_in_a_test_is_validated_and_versioned() {
    let report = validate_with(TaskTypes::builtin().with(Echo), GREET);
    assert!(report.is_valid(), "{:#?}", report.diagnostics);
    assert!(report.entities.iter().all(|e| e.digest.is_some()));

    // Its schema is generated beside the built-in bodies.
    let schema = TaskTypes::builtin().with(Echo).schema();
    assert_eq!(
        schema["definitions"]["TaskSpec"]["properties"]["echo"]["anyOf"][0]["$ref"],
        json!("#/definitions/EchoBody")
    );
    assert_eq!(
        schema["definitions"]["TaskSpec"]["errorMessage"],
        json!(
            "a task needs exactly one body: `container`, `script`, `notebook`, `sql`, `spark` or `echo`"
        )
    );
}

#[test]
fn its_checks_report_at_their_place_in_the_body() {
    let report = validate_with(TaskTypes::builtin().with(Echo), BROKEN);
    // The missing output at the body `spec.echo` (its block starts at line
    // 7, column 5), the unknown input at the value of `text`, with the
    // suggestion validation adds.
    assert_eq!(
        codes_at(&report),
        [("W040".to_owned(), 7, 5), ("W018".to_owned(), 7, 11)]
    );
    let unknown = &report.diagnostics[1];
    assert_eq!(unknown.help.as_deref(), Some("did you mean `who`?"));
}

#[test]
fn without_it_the_body_is_an_unknown_field() {
    let report = validate_with(TaskTypes::builtin(), GREET);
    let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code.id()).collect();
    assert!(codes.contains(&"W008"), "{:#?}", report.diagnostics);
}

#[test]
fn its_launch_writes_inputs_as_data() {
    let spec = serde_json::from_value(json!({
        "inputs": { "who": { "type": "string" } },
        "outputs": { "text": { "type": "string" } },
        "echo": { "text": "hello {{ inputs.who }}" },
    }))
    .expect("a spec");
    let inputs = BTreeMap::from([("who".to_owned(), json!("'; rm -rf / #"))]);
    let launch = TaskTypes::builtin()
        .with(Echo)
        .launch(&Context {
            spec: &spec,
            inputs: &inputs,
            files: &Default::default(),
        })
        .expect("a launch");
    assert_eq!(launch.env["ECHO"], "hello '; rm -rf / #");
    assert!(!launch.args[1].contains("rm -rf"));
}

const LETTER: &str = r#"apiVersion: weir.dev/v1alpha1
kind: Task
metadata: { name: letter, project: p }
spec:
  inputs: { who: { type: string } }
  outputs: { text: { type: string } }
  echo:
    text: "{{ inputs.who }}"
    template: letters/dear.txt
---
apiVersion: weir.dev/v1alpha1
kind: Workflow
metadata: { name: write-letter, project: p }
spec:
  inputs: { who: { type: string } }
  nodes:
    - { id: letter, task: letter, inputs: { who: "{{ inputs.who }}" } }
"#;

/// The digest of task `name` in a valid report.
fn version_of(report: &Report, name: &str) -> String {
    let task = report
        .entities
        .iter()
        .find(|e| e.id.name == name)
        .unwrap_or_else(|| panic!("no {name}"));
    task.digest.as_ref().expect("a version").as_str().to_owned()
}

/// A repository file of a type written here: missing, it is W039 at the
/// body's field naming it; present, its content is part of the task's
/// version, read from a folder and from a Git commit alike.
#[test]
fn its_repository_file_must_exist_and_versions_the_task() {
    let types = TaskTypes::builtin().with(Echo);
    let report = validate_with(types.clone(), LETTER);
    let missing: Vec<_> = report
        .diagnostics
        .iter()
        .map(|d| {
            let pos = d.pos.expect("a position");
            (d.code.id(), pos.line, pos.column, d.help.as_deref())
        })
        .collect();
    assert_eq!(
        missing,
        [(
            "W039",
            9,
            15,
            Some(
                "the path is relative to the source's root folder (the one given to `weir validate`)"
            )
        )],
        "{:#?}",
        report.diagnostics
    );
    assert!(
        report.diagnostics[0].message.contains("letters/dear.txt"),
        "{}",
        report.diagnostics[0].message
    );
    // A `.yaml` file is read as definitions, never run: said as such,
    // not as a file that does not exist.
    let report = validate_with(
        types.clone(),
        &LETTER.replace("letters/dear.txt", "./letters/dear.yaml"),
    );
    let said: Vec<_> = report
        .diagnostics
        .iter()
        .map(|d| (d.code.id(), d.message.as_str(), d.help.as_deref()))
        .collect();
    assert_eq!(
        said,
        [(
            "W039",
            "the `template` file `./letters/dear.yaml` is a definition file, not a file a task runs",
            Some(
                "every `.yaml` and `.yml` file of the source is read as weir definitions: give the task's file another extension"
            )
        )]
    );

    let options = Options {
        task_types: types,
        ..Options::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("letter.yaml"), LETTER).expect("write");
    std::fs::create_dir(dir.path().join("letters")).expect("mkdir");
    let on_disk = |template: &str| {
        std::fs::write(dir.path().join("letters/dear.txt"), template).expect("write");
        let tree = weir::source::dir::read_tree(dir.path(), 1 << 20).expect("a tree");
        let report = weir::validate::validate(tree, &options);
        assert!(report.is_valid(), "{:#?}", report.diagnostics);
        version_of(&report, "letter")
    };
    // A FIFO beside it is never opened (it would wait for a writer): only
    // the files tasks name are read.
    let status = std::process::Command::new("mkfifo")
        .arg(dir.path().join("letters/pipe.txt"))
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    let first = on_disk("Dear {}\n");
    assert_eq!(
        on_disk("Dear {}\n"),
        first,
        "the same content, the same version"
    );
    let second = on_disk("Hello {}\n");
    assert_ne!(
        second, first,
        "the template's content is part of the version"
    );

    // Named, it is refused without being read (W003).
    std::fs::write(
        dir.path().join("letter.yaml"),
        LETTER.replace("letters/dear.txt", "letters/pipe.txt"),
    )
    .expect("write");
    let tree = weir::source::dir::read_tree(dir.path(), 1 << 20).expect("a tree");
    let report = weir::validate::validate(tree, &options);
    let codes: Vec<(&str, &std::path::Path)> = report
        .diagnostics
        .iter()
        .map(|d| (d.code.id(), d.file.as_path()))
        .collect();
    assert_eq!(
        codes,
        [("W003", std::path::Path::new("letters/pipe.txt"))],
        "{:#?}",
        report.diagnostics
    );

    // A Git source gives the same versions as the folder.
    let repo = crate::common::GitRepo::new();
    repo.write("letter.yaml", LETTER);
    repo.write("letters/dear.txt", "Hello {}\n");
    repo.commit("A letter");
    let spec = weir::source::git::SourceSpec {
        repo: repo.path().display().to_string(),
        branch: None,
        path: String::new(),
        credentials: Default::default(),
    };
    let state = tempfile::tempdir().expect("tempdir");
    let source = weir::source::git::GitSource::open(&spec, state.path()).expect("source");
    let head = source.head().expect("head");
    let tree = source.read_tree(&head.id, 1 << 20).expect("a tree");
    let report = weir::validate::validate(tree, &options);
    assert!(report.is_valid(), "{:#?}", report.diagnostics);
    assert_eq!(version_of(&report, "letter"), second);
}

/// A commit that changes only the template: a sync against the previous
/// commit's snapshot (which reads only what changed) gives the task the
/// same new version as reading the whole tree; a commit touching neither
/// keeps it.
#[test]
fn a_changed_repository_file_alone_versions_the_task_again_incrementally() {
    let options = weir::reconcile::Options {
        validate: Options {
            task_types: TaskTypes::builtin().with(Echo),
            ..Options::default()
        },
        ..weir::reconcile::Options::default()
    };
    let repo = crate::common::GitRepo::new();
    repo.write("letter.yaml", LETTER);
    repo.write("letters/dear.txt", "Dear {}\n");
    repo.write("notes.txt", "unrelated");
    repo.commit("A letter");
    let state = tempfile::tempdir().expect("tempdir");
    let spec = weir::source::git::SourceSpec {
        repo: repo.path().display().to_string(),
        branch: None,
        path: String::new(),
        credentials: Default::default(),
    };
    let source = weir::source::git::GitSource::open(&spec, state.path()).expect("source");
    let load = |base: Option<&weir::reconcile::snapshot::Snapshot>| {
        weir::reconcile::load(&source, &options, base).expect("load")
    };
    let letter = weir::spec::EntityRef::new("p", weir::spec::Kind::Task, "letter");
    let first = load(None);
    let before = first.active[&letter].clone();

    repo.write("letters/dear.txt", "Hello {}\n");
    repo.commit("Friendlier");
    let changed = load(first.snapshot.as_ref());
    assert!(changed.base.is_some(), "loaded against the snapshot");
    let whole = load(None);
    assert_eq!(changed.active, whole.active);
    assert_ne!(changed.active[&letter], before);

    repo.write("notes.txt", "still unrelated");
    repo.commit("Notes");
    let unrelated = load(changed.snapshot.as_ref());
    assert!(unrelated.base.is_some(), "loaded against the snapshot");
    assert_eq!(unrelated.active, whole.active);
}

/// Registered through a real commit with the type in the options, and run
/// by an engine given the type: the local executor runs the launch the
/// type builds, with the template read at the task's commit (not the
/// working copy), and the output is what it wrote. Engine and executors
/// are used as they are.
async fn it_runs_through_an_engine(b: Backend) {
    let repo = crate::common::GitRepo::new();
    repo.write("letter.yaml", LETTER);
    repo.write("letters/dear.txt", "Dear {},\n");
    repo.commit("A letter");
    // What runs is the commit's template, not the working copy's.
    repo.write("letters/dear.txt", "uncommitted {}");
    assert_eq!(
        write_letter(&b, &repo).await.as_deref(),
        Ok("Dear Ada; rm -rf /,")
    );
}

crate::common::on_every_backend!(it_runs_through_an_engine);

/// A repository file that is a symbolic link runs its target, as
/// validation read it (and versioned the task by it), not the link's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_repository_file_runs_its_target() {
    let b = crate::common::backend(crate::common::TestDb::sqlite()).await;
    let repo = crate::common::GitRepo::new();
    repo.write("letter.yaml", LETTER);
    repo.write("shared/dear.txt", "Dearest {},\n");
    std::fs::create_dir(repo.path().join("letters")).expect("mkdir");
    std::os::unix::fs::symlink("../shared/dear.txt", repo.path().join("letters/dear.txt"))
        .expect("symlink");
    repo.commit("A linked letter");
    assert_eq!(
        write_letter(&b, &repo).await.as_deref(),
        Ok("Dearest Ada; rm -rf /,")
    );
}

/// Registers `repo`'s head with the `echo` type, runs `write-letter` for
/// a hostile name, and returns the letter (or the node's error).
async fn write_letter(b: &Backend, repo: &crate::common::GitRepo) -> Result<String, String> {
    let ran = crate::common::run_head(
        repo,
        TaskTypes::builtin().with(Echo),
        b,
        "write-letter",
        json!({ "who": "Ada; rm -rf /" }),
    )
    .await;
    match (ran.status.as_str(), &ran.nodes[0].outputs) {
        ("succeeded", Some(outputs)) => Ok(outputs["text"].as_str().expect("a text").to_owned()),
        _ => Err(ran.error("letter")),
    }
}

/// A repository file that is not UTF-8 text fails the attempt, saying so,
/// rather than reaching the task altered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_file_that_is_not_text_is_refused_not_altered() {
    let b = crate::common::backend(crate::common::TestDb::sqlite()).await;
    let repo = crate::common::GitRepo::new();
    repo.write("letter.yaml", LETTER);
    std::fs::create_dir(repo.path().join("letters")).expect("mkdir");
    std::fs::write(repo.path().join("letters/dear.txt"), b"Dear \xff{}").expect("write");
    repo.commit("A letter in Latin-1");
    assert_eq!(
        write_letter(&b, &repo).await,
        Err("cannot read the task's `template` file: `letters/dear.txt` is not UTF-8 text (invalid byte at offset 5)".to_owned())
    );
}

/// A page of the repository, under the key the notebook type uses for
/// its own notebook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PageBody {
    path: String,
}

struct Page;

impl TaskType for Page {
    const NAME: &'static str = "page";
    type Body = PageBody;

    fn launch(&self, _body: &PageBody, context: &Context<'_>) -> Result<Launch, LaunchError> {
        Ok(Launch {
            program: "cat".into(),
            args: Vec::new(),
            env: BTreeMap::from([("PAGE".into(), context.file("notebook")?.to_owned())]),
            files: Vec::new(),
            notice: None,
            working_dir: None,
        })
    }

    fn repository_files(&self, body: &PageBody) -> Vec<(&'static str, String)> {
        vec![("notebook", body.path.clone())]
    }
}

/// Only the notebook type checks its own notebook (W031): another type's
/// file under the same key is W039 like any repository file.
#[test]
fn a_file_keyed_like_a_notebook_is_checked_for_every_other_type() {
    let text = "apiVersion: weir.dev/v1alpha1\nkind: Task\nmetadata: { name: page, project: p }\nspec:\n  page: { path: pages/missing.md }\n";
    let report = validate_with(TaskTypes::builtin().with(Page), text);
    assert_eq!(
        codes_at(&report),
        [("W039".to_owned(), 5, 17)],
        "{:#?}",
        report.diagnostics
    );
}
