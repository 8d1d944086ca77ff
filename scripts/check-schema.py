#!/usr/bin/env python3
"""Check schema/weir.schema.json with Python's reference JSON Schema library.

weir validates with the Rust `jsonschema` crate; editors and pre-commit hooks
use other validators. This script holds the committed schema against the
draft-07 meta-schema and validates every example document with
python-jsonschema, and checks that a document with an unknown field and one
with a wrong kind are rejected (so the check cannot pass vacuously).

YAML is read as YAML 1.2 would read it: `on`/`off`/`yes`/`no` are strings
(PyYAML follows YAML 1.1, where `on:` would become the key `true`).
"""

import importlib.metadata
import pathlib
import re
import sys

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core booleans only."""


Yaml12Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def main() -> int:
    schema = yaml.safe_load((ROOT / "schema/weir.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)

    failures = 0
    documents = 0
    for path in sorted((ROOT / "examples/repo").rglob("*.y*ml")):
        for doc in yaml.load_all(path.read_text(), Loader=Yaml12Loader):
            if doc is None:
                continue
            documents += 1
            for error in validator.iter_errors(doc):
                failures += 1
                where = "/".join(str(p) for p in error.absolute_path)
                print(f"{path.relative_to(ROOT)}: /{where}: {error.message}", file=sys.stderr)

    must_fail = [
        {"apiVersion": "weir.dev/v1alpha1", "kind": "Task", "metadata": {"name": "x"},
         "spec": {"script": {"interpreter": "bash", "source": "true"}, "retires": 3}},
        {"apiVersion": "weir.dev/v1alpha1", "kind": "Cronjob", "metadata": {"name": "x"}, "spec": {}},
        {"apiVersion": "weir.dev/v1alpha1", "kind": "LaunchPlan", "metadata": {"name": "x"},
         "spec": {"workflow": "w", "schedule": {"cron": "* * * * *", "every": "1h"}}},
    ]
    for doc in must_fail:
        if validator.is_valid(doc):
            failures += 1
            print(f"schema accepted an invalid document: {doc}", file=sys.stderr)

    if documents == 0:
        print("check-schema: no example documents found", file=sys.stderr)
        return 1
    if failures == 0:
        version = importlib.metadata.version("jsonschema")
        print(f"check-schema: {documents} example documents valid under python-jsonschema {version}, "
              f"{len(must_fail)} invalid ones rejected")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
