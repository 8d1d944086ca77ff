//! `deploy/base` is what `kubectl apply -k deploy/base` installs, and the
//! `Dockerfile` builds the image it runs. Checked here, file by file as
//! kustomize reads them:
//!
//! - every manifest is its Kubernetes type (k8s-openapi, Kubernetes 1.32)
//!   with no field lost on the way (a misspelled field would be dropped
//!   silently by the type, and by the API server);
//! - the kustomization lists every manifest but the example Secret;
//! - the RBAC is one namespaced Role naming each verb the executor uses;
//! - the Deployment keeps two replicas, its probes and the restricted
//!   security context, and mounts what its weir.toml names;
//! - `kubernetes-validate --strict` accepts each file against Kubernetes'
//!   own schemas (skipped when it is not installed, except on CI).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding};
use serde_json::Value;

use crate::common::root;

/// The Kubernetes version the manifests are checked against: the oldest the
/// `k8s-openapi` feature in Cargo.toml knows.
const KUBERNETES_VERSION: &str = "1.32.0";

/// Not a Kubernetes object: kustomize's own file.
const KUSTOMIZATION: &str = "kustomization.yaml";
/// Documents the Secret; left out of the kustomization on purpose.
const SECRET_EXAMPLE: &str = "secret.example.yaml";

fn base() -> PathBuf {
    root().join("deploy/base")
}

/// Every `*.yaml` of `deploy/base`, sorted, by file name.
fn yaml_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(base())
        .expect("deploy/base exists")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .into_string()
                .expect("utf-8")
        })
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    names.sort();
    names
}

/// One document of a manifest file.
struct Document {
    file: String,
    json: Value,
}

/// The documents of every manifest (all but the kustomization).
fn documents() -> Vec<Document> {
    let mut documents = Vec::new();
    for file in yaml_files().into_iter().filter(|f| f != KUSTOMIZATION) {
        let text = std::fs::read_to_string(base().join(&file)).expect("readable");
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("deploy/base/{file} is not YAML: {e}"));
        assert!(!docs.is_empty(), "deploy/base/{file} has no document");
        documents.extend(docs.into_iter().map(|json| Document {
            file: file.clone(),
            json,
        }));
    }
    documents
}

/// A manifest as its typed Kubernetes object.
#[expect(
    clippy::large_enum_variant,
    reason = "a dozen objects per test: boxing buys nothing"
)]
enum Object {
    Namespace(Namespace),
    ServiceAccount(ServiceAccount),
    Role(Role),
    RoleBinding(RoleBinding),
    ConfigMap(ConfigMap),
    Deployment(Deployment),
    Service(Service),
    PodDisruptionBudget(PodDisruptionBudget),
    Secret(Secret),
}

/// Parses a document into the type its `apiVersion` and `kind` name; an
/// unknown kind is an error, so is a field the type does not have.
fn typed(doc: &Document) -> Result<Object, String> {
    let api_version = doc.json["apiVersion"].as_str().unwrap_or_default();
    let kind = doc.json["kind"].as_str().unwrap_or_default();
    Ok(match (api_version, kind) {
        ("v1", "Namespace") => Object::Namespace(exact(doc)?),
        ("v1", "ServiceAccount") => Object::ServiceAccount(exact(doc)?),
        ("rbac.authorization.k8s.io/v1", "Role") => Object::Role(exact(doc)?),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => Object::RoleBinding(exact(doc)?),
        ("v1", "ConfigMap") => Object::ConfigMap(exact(doc)?),
        ("apps/v1", "Deployment") => Object::Deployment(exact(doc)?),
        ("v1", "Service") => Object::Service(exact(doc)?),
        ("policy/v1", "PodDisruptionBudget") => Object::PodDisruptionBudget(exact(doc)?),
        ("v1", "Secret") => Object::Secret(exact(doc)?),
        _ => {
            let file = &doc.file;
            return Err(format!(
                "deploy/base/{file}: unexpected {api_version} {kind}"
            ));
        }
    })
}

/// Deserializes `doc` into `T` and requires `T` to serialize back to the
/// very same document: k8s-openapi ignores unknown fields, so a misspelled
/// one shows only as a difference.
fn exact<T>(doc: &Document) -> Result<T, String>
where
    T: k8s_openapi::Resource + serde::de::DeserializeOwned + serde::Serialize,
{
    let what = format!("deploy/base/{} ({})", doc.file, T::KIND);
    let object: T = serde_json::from_value(doc.json.clone()).map_err(|e| format!("{what}: {e}"))?;
    let back = serde_json::to_value(&object).expect("k8s-openapi types serialize");
    match first_difference(&doc.json, &back, String::new()) {
        None => Ok(object),
        Some(path) => Err(format!(
            "{what}: `{path}` is lost when parsed as a {}: a misspelled or unknown field, \
             or a value of the wrong type",
            T::KIND
        )),
    }
}

/// The JSON pointer of the first place where `a` and `b` differ.
fn first_difference(a: &Value, b: &Value, path: String) -> Option<String> {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|key| {
                let (x, y) = (a.get(key), b.get(key));
                let path = format!("{path}/{key}");
                match (x, y) {
                    (Some(x), Some(y)) => first_difference(x, y, path),
                    _ => Some(path),
                }
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, format!("{path}/{i}"))),
        _ if a == b => None,
        _ => Some(if path.is_empty() { "/".into() } else { path }),
    }
}

/// Every manifest, typed; panics with every error at once.
fn objects() -> Vec<Object> {
    let (objects, errors): (Vec<_>, Vec<_>) =
        documents().iter().map(typed).partition(Result::is_ok);
    let errors: Vec<String> = errors.into_iter().filter_map(Result::err).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    objects.into_iter().filter_map(Result::ok).collect()
}

fn the<T>(pick: impl Fn(Object) -> Option<T>) -> T {
    let mut found: Vec<T> = objects().into_iter().filter_map(pick).collect();
    assert_eq!(found.len(), 1, "expected exactly one such object");
    found.pop().expect("one")
}

fn deployment() -> Deployment {
    the(|o| match o {
        Object::Deployment(d) => Some(d),
        _ => None,
    })
}

fn strings(items: &[String]) -> Vec<&str> {
    items.iter().map(String::as_str).collect()
}

#[test]
fn every_manifest_is_its_kubernetes_type_with_no_field_lost() {
    let documents = documents();
    assert_eq!(objects().len(), documents.len());
    let kinds: BTreeSet<&str> = documents
        .iter()
        .map(|d| d.json["kind"].as_str().unwrap_or_default())
        .collect();
    let expected = [
        "ConfigMap",
        "Deployment",
        "Namespace",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Secret",
        "Service",
        "ServiceAccount",
    ];
    assert_eq!(kinds, BTreeSet::from(expected));
}

#[test]
fn everything_lives_in_the_namespace_the_base_creates() {
    let namespace = the(|o| match o {
        Object::Namespace(n) => Some(n),
        _ => None,
    });
    let name = namespace.metadata.name.expect("a name");
    assert_eq!(name, "weir");
    for doc in documents().iter().filter(|d| d.json["kind"] != "Namespace") {
        assert_eq!(
            doc.json["metadata"]["namespace"].as_str(),
            Some(name.as_str()),
            "deploy/base/{}: {} {}",
            doc.file,
            doc.json["kind"],
            doc.json["metadata"]["name"]
        );
    }
}

#[test]
fn the_example_secret_has_the_keys_the_deployment_reads() {
    let secret = the(|o| match o {
        Object::Secret(s) => Some(s),
        _ => None,
    });
    assert_eq!(secret.metadata.name.as_deref(), Some("weir"));
    let keys: BTreeSet<&str> = secret
        .string_data
        .iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["database-url", "github-webhook-secret"])
    );

    let deployment = deployment();
    let pod = deployment
        .spec
        .and_then(|s| s.template.spec)
        .expect("pod spec");
    let from_env = pod
        .containers
        .iter()
        .flat_map(|c| c.env.iter().flatten())
        .filter_map(|e| {
            let r = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
            Some((r.name.as_str(), r.key.as_str()))
        });
    let from_volumes = pod
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.secret.as_ref())
        .flat_map(|s| {
            let name = s.secret_name.as_deref().unwrap_or_default();
            s.items
                .iter()
                .flatten()
                .map(move |i| (name, i.key.as_str()))
        });
    let read: BTreeSet<(&str, &str)> = from_env.chain(from_volumes).collect();
    let expected: BTreeSet<(&str, &str)> = keys.iter().map(|k| ("weir", *k)).collect();
    assert_eq!(read, expected);
}

#[test]
fn a_misspelled_field_is_caught() {
    let doc = Document {
        file: "deployment.yaml".into(),
        json: serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": "weir" },
            "spec": { "replica": 2, "selector": {}, "template": {} },
        }),
    };
    let Err(error) = typed(&doc) else {
        panic!("`replica` was accepted")
    };
    assert!(error.contains("`/spec/replica`"), "{error}");
}

#[test]
fn the_kustomization_lists_every_manifest_but_the_example_secret() {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Kustomization {
        api_version: String,
        kind: String,
        resources: Vec<String>,
    }
    let text = std::fs::read_to_string(base().join(KUSTOMIZATION)).expect("kustomization");
    let kustomization: Kustomization = serde_saphyr::from_str(&text).expect("a kustomization");
    assert_eq!(kustomization.api_version, "kustomize.config.k8s.io/v1beta1");
    assert_eq!(kustomization.kind, "Kustomization");
    let listed: BTreeSet<&str> = kustomization.resources.iter().map(String::as_str).collect();
    assert_eq!(listed.len(), kustomization.resources.len(), "listed twice");
    for resource in &listed {
        assert!(
            base().join(resource).is_file(),
            "{KUSTOMIZATION} lists {resource}, which does not exist"
        );
    }
    let files = yaml_files();
    let expected: BTreeSet<&str> = files
        .iter()
        .map(String::as_str)
        .filter(|f| ![KUSTOMIZATION, SECRET_EXAMPLE].contains(f))
        .collect();
    assert_eq!(listed, expected);
}

#[test]
fn rbac_is_one_namespaced_role_that_names_each_verb() {
    let documents = documents();
    for doc in &documents {
        let kind = doc.json["kind"].as_str().unwrap_or_default();
        assert!(
            !kind.starts_with("Cluster"),
            "deploy/base/{}: {kind} reaches beyond the namespace",
            doc.file
        );
    }
    let role = the(|o| match o {
        Object::Role(r) => Some(r),
        _ => None,
    });
    assert_eq!(role.metadata.namespace.as_deref(), Some("weir"));
    let rules = role.rules.unwrap_or_default();
    for rule in &rules {
        let names = [
            rule.api_groups.as_deref().unwrap_or_default(),
            rule.resources.as_deref().unwrap_or_default(),
            &rule.verbs,
        ];
        assert!(
            !names.iter().any(|n| n.iter().any(|s| s.contains('*'))),
            "a wildcard in {rule:?}"
        );
        assert!(rule.non_resource_urls.is_none(), "{rule:?}");
    }
    // Exactly what the Kubernetes executor calls: Jobs per node attempt,
    // SparkApplications for spark tasks, their pods and logs, the
    // leader's Lease, Events.
    let granted: Vec<(&str, &str, Vec<&str>)> = rules
        .iter()
        .flat_map(|rule: &PolicyRule| {
            let groups = rule.api_groups.as_deref().unwrap_or_default();
            let resources = rule.resources.as_deref().unwrap_or_default();
            groups.iter().flat_map(move |g| {
                resources
                    .iter()
                    .map(move |r| (g.as_str(), r.as_str(), strings(&rule.verbs)))
            })
        })
        .collect();
    assert_eq!(
        granted,
        [
            (
                "batch",
                "jobs",
                vec!["create", "get", "list", "watch", "delete"]
            ),
            (
                "sparkoperator.k8s.io",
                "sparkapplications",
                vec!["create", "get", "list", "delete"]
            ),
            ("", "pods", vec!["get", "list", "watch"]),
            ("", "pods/log", vec!["get"]),
            (
                "coordination.k8s.io",
                "leases",
                vec!["get", "create", "update"]
            ),
            ("", "events", vec!["create", "patch"]),
        ]
    );

    let binding = the(|o| match o {
        Object::RoleBinding(b) => Some(b),
        _ => None,
    });
    assert_eq!(
        (
            binding.role_ref.kind.as_str(),
            binding.role_ref.name.as_str()
        ),
        ("Role", "weir")
    );
    let subjects: Vec<(&str, &str, Option<&str>)> = binding
        .subjects
        .iter()
        .flatten()
        .map(|s| (s.kind.as_str(), s.name.as_str(), s.namespace.as_deref()))
        .collect();
    assert_eq!(subjects, [("ServiceAccount", "weir", Some("weir"))]);

    // Task pods run as `weir-task`: bound to nothing, and without a token.
    let accounts: Vec<ServiceAccount> = objects()
        .into_iter()
        .filter_map(|o| match o {
            Object::ServiceAccount(a) => Some(a),
            _ => None,
        })
        .collect();
    let task = accounts
        .iter()
        .find(|a| a.metadata.name.as_deref() == Some("weir-task"))
        .expect("the ServiceAccount weir-task");
    assert_eq!(task.automount_service_account_token, Some(false));
}

#[test]
fn the_deployment_runs_two_restricted_replicas() {
    let deployment = deployment();
    let spec = deployment.spec.expect("spec");
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.expect("pod spec");
    assert_eq!(pod.service_account_name.as_deref(), Some("weir"));
    assert_eq!(pod.termination_grace_period_seconds, Some(60));

    let security = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.run_as_user, Some(65532));
    assert_eq!(
        security.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        Some("RuntimeDefault")
    );

    let [container] = pod.containers.as_slice() else {
        panic!("one container")
    };
    assert_eq!(container.name, "weir");
    let probe_path = |probe: &Option<k8s_openapi::api::core::v1::Probe>| {
        probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(
        probe_path(&container.liveness_probe).as_deref(),
        Some("/healthz")
    );
    assert_eq!(
        probe_path(&container.readiness_probe).as_deref(),
        Some("/readyz")
    );

    let security = container
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    let dropped = security
        .capabilities
        .as_ref()
        .and_then(|c| c.drop.as_deref())
        .unwrap_or_default();
    assert_eq!(strings(dropped), ["ALL"]);

    let resources = container.resources.as_ref().expect("resources");
    let requests = resources.requests.as_ref().expect("requests");
    assert!(requests.contains_key("cpu") && requests.contains_key("memory"));
    let limits = resources.limits.as_ref().expect("limits");
    assert!(limits.contains_key("memory"));

    // The database URL comes from the Secret, never from the ConfigMap.
    let env = container.env.as_deref().unwrap_or_default();
    let weir_db = env.iter().find(|e| e.name == "WEIR_DB").expect("WEIR_DB");
    let secret = weir_db
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("WEIR_DB from a secretKeyRef");
    assert_eq!(
        (secret.name.as_str(), secret.key.as_str()),
        ("weir", "database-url")
    );
}

#[test]
fn the_deployment_mounts_what_its_weir_toml_names() {
    let config_map = the(|o| match o {
        Object::ConfigMap(c) => Some(c),
        _ => None,
    });
    assert_eq!(config_map.metadata.name.as_deref(), Some("weir-config"));
    let text = config_map
        .data
        .as_ref()
        .and_then(|d| d.get("weir.toml"))
        .expect("weir.toml in the ConfigMap");
    let config: toml::Table = toml::from_str(text).expect("weir.toml is TOML");

    let deployment = deployment();
    let pod = deployment
        .spec
        .and_then(|s| s.template.spec)
        .expect("pod spec");
    let container = &pod.containers[0];
    let args = strings(container.args.as_deref().unwrap_or_default());
    assert_eq!(args, ["serve", "--config", "/etc/weir/weir.toml"]);

    let mounts = container.volume_mounts.as_deref().unwrap_or_default();
    let volumes = pod.volumes.as_deref().unwrap_or_default();
    // The volume mounted at `dir`.
    let volume_at = |dir: &str| {
        let mount = mounts
            .iter()
            .find(|m| m.mount_path == dir)
            .unwrap_or_else(|| panic!("nothing is mounted at {dir}"));
        volumes
            .iter()
            .find(|v| v.name == mount.name)
            .unwrap_or_else(|| panic!("no volume {}", mount.name))
    };
    let config_volume = volume_at("/etc/weir");
    assert_eq!(
        config_volume.config_map.as_ref().map(|c| c.name.as_str()),
        Some("weir-config")
    );
    assert_eq!(config["state_dir"].as_str(), Some("/var/lib/weir"));
    assert!(volume_at("/var/lib/weir").empty_dir.is_some());

    let secret_file = config["secrets"]["github_webhook_secret"]["file"]
        .as_str()
        .expect("the webhook secret is a file");
    let (dir, key) = secret_file.rsplit_once('/').expect("a path");
    let secret = volume_at(dir).secret.as_ref().expect("a Secret volume");
    assert_eq!(secret.secret_name.as_deref(), Some("weir"));
    assert!(
        secret
            .items
            .iter()
            .flatten()
            .any(|i| i.key == key && i.path == key),
        "{secret_file} is not the Secret's key {key}"
    );

    let env: BTreeSet<&str> = container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(config["database"]["env"].as_str(), Some("WEIR_DB"));
    assert!(env.contains("WEIR_DB") && env.contains("POD_NAME") && env.contains("POD_NAMESPACE"));

    // The port weir listens on is the container's `http`, which the probes
    // and the Service use.
    let listen = config["listen"].as_str().expect("listen");
    let port = container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("http"))
        .expect("a port named http");
    assert!(
        listen.ends_with(&format!(":{}", port.container_port)),
        "{listen}"
    );
    assert_eq!(
        config["kubernetes"]["service_account"].as_str(),
        Some("weir-task")
    );
}

#[test]
fn the_service_and_the_budget_select_the_pods() {
    let deployment = deployment();
    let pod_labels = deployment
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.labels)
        .expect("pod labels");
    let service = the(|o| match o {
        Object::Service(s) => Some(s),
        _ => None,
    });
    let spec = service.spec.expect("spec");
    let selector = spec.selector.expect("selector");
    assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
    let ports = spec.ports.unwrap_or_default();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].port, 7878);

    let budget = the(|o| match o {
        Object::PodDisruptionBudget(b) => Some(b),
        _ => None,
    });
    let spec = budget.spec.expect("spec");
    let selector = spec
        .selector
        .and_then(|s| s.match_labels)
        .expect("matchLabels");
    assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
    assert_eq!(
        spec.min_available,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
}

#[test]
fn the_image_runs_as_the_user_the_deployment_names() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
    for expected in [
        "USER 65532:65532",
        r#"ENTRYPOINT ["/usr/local/bin/weir"]"#,
        r#"CMD ["serve", "--config", "/etc/weir/weir.toml"]"#,
    ] {
        assert!(
            lines.contains(&expected),
            "the Dockerfile lacks `{expected}`"
        );
    }
}

#[test]
fn kubernetes_validate_strict_accepts_every_manifest() {
    let files: Vec<PathBuf> = yaml_files()
        .into_iter()
        .filter(|f| f != KUSTOMIZATION)
        .map(|f| base().join(f))
        .collect();
    let Some(out) = kubernetes_validate(&files) else {
        return;
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A WARN is a document it found no schema for (a wrong apiVersion, say),
    // which it lets pass.
    assert!(
        out.status.success() && !text.contains("WARN"),
        "kubernetes-validate --strict:\n{text}"
    );
    assert_eq!(
        text.matches(" passed ").count(),
        documents().len(),
        "{text}"
    );
}

/// Runs `kubernetes-validate --strict` on `files`; `None` (skip) when it is
/// not installed, a failure when `CI=true`.
fn kubernetes_validate(files: &[PathBuf]) -> Option<std::process::Output> {
    let result = std::process::Command::new("kubernetes-validate")
        .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION])
        .args(files.iter().map(PathBuf::as_path).map(Path::as_os_str))
        .output();
    match result {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "kubernetes-validate is needed on CI (pip install kubernetes-validate)"
            );
            eprintln!("kubernetes-validate not installed: skipping the schema check of deploy/");
            None
        }
        Err(e) => panic!("cannot run kubernetes-validate: {e}"),
    }
}

/// The ConfigMap's weir.toml is one the daemon accepts, as the pod sees it
/// (the Secret's file mounted, `WEIR_DB` and `POD_NAME` set).
#[test]
fn the_daemon_accepts_the_configmaps_weir_toml() {
    use weir::daemon::{Executor, config};

    let config_map = the(|o| match o {
        Object::ConfigMap(c) => Some(c),
        _ => None,
    });
    let text = config_map
        .data
        .as_ref()
        .and_then(|d| d.get("weir.toml"))
        .expect("weir.toml in the ConfigMap")
        .clone();
    let secrets = tempfile::tempdir().expect("tempdir");
    let webhook = secrets.path().join("github-webhook-secret");
    std::fs::write(&webhook, "s3cret\n").expect("write");
    let text = text.replace(
        "/run/secrets/weir/github-webhook-secret",
        webhook.to_str().expect("utf-8"),
    );
    let env = |name: &str| match name {
        "WEIR_DB" => Some("postgres://weir:pw@postgres:5432/weir".to_owned()),
        "POD_NAME" => Some("weir-5d9c7-abcde".to_owned()),
        _ => None,
    };
    let parsed = config::parse(&text, std::path::Path::new("weir.toml"), &env)
        .unwrap_or_else(|e| panic!("the daemon refuses the ConfigMap's weir.toml: {e}"));
    assert_eq!(parsed.db_url, "postgres://weir:pw@postgres:5432/weir");
    let Executor::Kubernetes(kube) = &parsed.executor else {
        panic!("executor: {:?}", parsed.executor)
    };
    assert_eq!(kube.settings.namespace, "weir");
    assert_eq!(kube.identity, "weir-5d9c7-abcde");
    assert!(
        parsed
            .artifacts
            .as_deref()
            .is_some_and(|a| a.starts_with("s3://"))
    );
}
