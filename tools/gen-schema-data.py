#!/usr/bin/env python3
"""Regenerate the OpenAPI extension tables in crates/schema/data.

Reads the upstream Kubernetes OpenAPI v2 definitions as shipped (converted to
JSON Schema) in the PyPI package `kubernetes-validate`, walks every definition
reachable by `$ref` from the kinds ferrokube serves, and writes:

  patch_strategies.json  x-kubernetes-patch-strategy / x-kubernetes-patch-merge-key
  list_types.json        x-kubernetes-list-type / x-kubernetes-list-map-keys and
                         x-kubernetes-map-type (per property, and per definition
                         under the key ".")
  unions.json            x-kubernetes-unions (only written when present)

Only extension values are copied; descriptions and other prose are not.

Usage:
  pip download kubernetes-validate==1.37.0 --no-deps -d /tmp/kv
  python3 tools/gen-schema-data.py /tmp/kv/kubernetes_validate-1.37.0-py3-none-any.whl
  python3 tools/gen-schema-data.py --check WHEEL   # compare only, exit 1 on drift

Standard library only.
"""

import argparse
import difflib
import json
import sys
import zipfile
from pathlib import Path

DEFAULT_VERSION = "v1.33.0"
DEFS_MEMBER = "kubernetes_validate/kubernetes-json-schema/{version}-local/_definitions.json"
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "crates" / "schema" / "data"

# Kinds whose definitions (and everything they reference) are in scope.
# The matching `<Kind>List` definitions are added automatically when present,
# and so is every meta/v1 definition.
ROOT_KINDS = {
    "io.k8s.api.core.v1": [
        "Pod", "Service", "Endpoints", "ConfigMap", "Secret", "ServiceAccount",
        "Node", "Namespace", "Event", "ReplicationController", "LimitRange",
        "ResourceQuota", "PersistentVolume", "PersistentVolumeClaim", "PodTemplate",
    ],
    "io.k8s.api.apps.v1": [
        "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "ControllerRevision",
    ],
    "io.k8s.api.batch.v1": ["Job", "CronJob"],
    "io.k8s.api.coordination.v1": ["Lease"],
    "io.k8s.api.discovery.v1": ["EndpointSlice"],
    "io.k8s.api.events.v1": ["Event"],
    "io.k8s.api.policy.v1": ["PodDisruptionBudget"],
    "io.k8s.api.autoscaling.v1": ["HorizontalPodAutoscaler"],
    "io.k8s.api.autoscaling.v2": ["HorizontalPodAutoscaler"],
    "io.k8s.api.networking.v1": ["Ingress", "IngressClass", "NetworkPolicy"],
    "io.k8s.api.storage.v1": ["StorageClass"],
    "io.k8s.api.rbac.v1": ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"],
    "io.k8s.api.certificates.v1": ["CertificateSigningRequest"],
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1": ["CustomResourceDefinition"],
}
META_PREFIX = "io.k8s.apimachinery.pkg.apis.meta.v1."

# Extension keys this script knows about, by where they may appear.
PROPERTY_EXTS = {
    "x-kubernetes-patch-strategy",
    "x-kubernetes-patch-merge-key",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
}
DEFINITION_EXTS = {
    "x-kubernetes-map-type",
    "x-kubernetes-unions",
    "x-kubernetes-group-version-kind",  # not extracted: kind registry lives elsewhere
}
LIST_TYPES = {"atomic", "set", "map"}
MAP_TYPES = {"atomic", "granular"}
PATCH_STRATEGIES = {"merge", "replace", "retainKeys", "merge,retainKeys"}


class SpecError(Exception):
    """The input does not look the way this script expects."""


def load_definitions(source: Path, version: str) -> dict:
    """Return the `$defs` mapping for `version` from a wheel, an unpacked wheel or a file."""
    member = DEFS_MEMBER.format(version=version)
    if source.is_dir():
        with open(source / member, encoding="utf-8") as f:
            doc = json.load(f)
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as z:
            try:
                raw = z.read(member)
            except KeyError:
                raise SpecError(f"{source} has no member {member}") from None
        doc = json.loads(raw)
    else:
        with open(source, encoding="utf-8") as f:
            doc = json.load(f)
    defs = doc.get("$defs", doc.get("definitions"))
    if not isinstance(defs, dict):
        raise SpecError("no $defs/definitions object in input")
    return defs


def roots(defs: dict) -> list:
    """Definition names the reachability walk starts from."""
    names = [f"{prefix}.{kind}" for prefix, kinds in ROOT_KINDS.items() for kind in kinds]
    missing = [n for n in names if n not in defs]
    if missing:
        raise SpecError(f"root kinds missing from spec: {missing}")
    names += [n + "List" for n in list(names) if n + "List" in defs]
    names += sorted(n for n in defs if n.startswith(META_PREFIX))
    return names


def refs(node):
    """Yield the definition names of every `$ref` inside `node`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value.rsplit("/", 1)[-1]
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def reachable(defs: dict) -> set:
    """Every definition reachable by `$ref` from the roots."""
    seen = set()
    stack = roots(defs)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        if name not in defs:
            raise SpecError(f"dangling $ref to {name}")
        seen.add(name)
        stack.extend(refs(defs[name]))
    return seen


def stray_extensions(node, path, found):
    """Collect `x-kubernetes-*` keys nested below property level (not handled here)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("x-kubernetes-"):
                found.append(f"{path}/{key}")
            stray_extensions(value, f"{path}/{key}", found)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            stray_extensions(value, f"{path}/{i}", found)


def check(cond, msg):
    if not cond:
        raise SpecError(msg)


def extract(defs: dict, names: set):
    """Build the three tables for the definitions in `names`."""
    patch, lists, unions = {}, {}, {}
    problems = []
    for name in sorted(names):
        schema = defs[name]
        for key in schema:
            if key.startswith("x-") and key not in DEFINITION_EXTS:
                problems.append(f"{name}: unhandled definition extension {key}")
        map_type = schema.get("x-kubernetes-map-type")
        if map_type is not None:
            check(map_type in MAP_TYPES, f"{name}: map-type {map_type!r}")
            lists.setdefault(name, {})["."] = {"mapType": map_type}
        if "x-kubernetes-unions" in schema:
            value = schema["x-kubernetes-unions"]
            check(isinstance(value, list), f"{name}: unions not a list")
            unions[name] = value
        for field, prop in sorted(schema.get("properties", {}).items()):
            if not isinstance(prop, dict):
                continue
            for key in prop:
                if key.startswith("x-") and key not in PROPERTY_EXTS:
                    problems.append(f"{name}.{field}: unhandled property extension {key}")
            for key, value in prop.items():
                if not key.startswith("x-"):
                    stray_extensions(value, f"{name}.{field}/{key}", problems)

            strategy = prop.get("x-kubernetes-patch-strategy")
            merge_key = prop.get("x-kubernetes-patch-merge-key")
            if strategy is not None or merge_key is not None:
                check(strategy in PATCH_STRATEGIES, f"{name}.{field}: strategy {strategy!r}")
                entry = {"strategy": strategy}
                if merge_key is not None:
                    check(isinstance(merge_key, str), f"{name}.{field}: merge key {merge_key!r}")
                    entry["key"] = merge_key
                patch.setdefault(name, {})[field] = entry

            entry = {}
            list_type = prop.get("x-kubernetes-list-type")
            map_keys = prop.get("x-kubernetes-list-map-keys")
            if list_type is not None:
                check(list_type in LIST_TYPES, f"{name}.{field}: list-type {list_type!r}")
                entry["listType"] = list_type
            if map_keys is not None:
                check(list_type == "map", f"{name}.{field}: map keys without list-type map")
                check(isinstance(map_keys, list) and map_keys
                      and all(isinstance(k, str) for k in map_keys),
                      f"{name}.{field}: map keys {map_keys!r}")
                entry["listMapKeys"] = list(map_keys)
            elif list_type == "map":
                problems.append(f"{name}.{field}: list-type map without map keys")
            prop_map_type = prop.get("x-kubernetes-map-type")
            if prop_map_type is not None:
                check(prop_map_type in MAP_TYPES, f"{name}.{field}: map-type {prop_map_type!r}")
                entry["mapType"] = prop_map_type
            if entry:
                lists.setdefault(name, {})[field] = entry
    return patch, lists, unions, problems


def render(value, expand: int, indent: int = 0) -> str:
    """JSON text: objects expanded one key per line for `expand` levels, compact below."""
    if expand > 0 and isinstance(value, dict) and value:
        pad = "  " * (indent + 1)
        items = [
            f"{pad}{json.dumps(k)}: {render(v, expand - 1, indent + 1)}"
            for k, v in sorted(value.items())
        ]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False)


def sort_unions(value):
    """Sort object keys inside union descriptors (lists keep their order)."""
    if isinstance(value, dict):
        return {k: sort_unions(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sort_unions(v) for v in value]
    return value


def summary_notes(patch: dict, lists: dict) -> list:
    """Facts worth a human look: disagreements between the patch and list markers."""
    notes = []
    for name in sorted(set(patch) | set(lists)):
        for field in sorted(set(patch.get(name, {})) | set(lists.get(name, {}))):
            if field == ".":
                continue
            p = patch.get(name, {}).get(field)
            lt = lists.get(name, {}).get(field, {})
            if p and "key" in p:
                if lt.get("listType") != "map":
                    notes.append(f"{name}.{field}: patch merge key {p['key']!r} "
                                 f"but list-type {lt.get('listType')!r}")
                elif lt.get("listMapKeys") != [p["key"]]:
                    notes.append(f"{name}.{field}: patch merge key {p['key']!r} "
                                 f"but list-map-keys {lt.get('listMapKeys')!r}")
            elif p and p["strategy"].startswith("merge") and "listType" in lt:
                if lt["listType"] != "set":
                    notes.append(f"{name}.{field}: strategy {p['strategy']!r} without key, "
                                 f"list-type {lt['listType']!r}")
            elif lt.get("listType") == "map" and not p:
                notes.append(f"{name}.{field}: list-type map keys {lt['listMapKeys']!r}, "
                             f"no patch directive")
    return notes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path,
                        help="kubernetes-validate wheel (or its unpacked directory, "
                             "or a _definitions.json file)")
    parser.add_argument("--version", default=DEFAULT_VERSION,
                        help=f"schema directory to read (default {DEFAULT_VERSION})")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT,
                        help=f"where the JSON files go (default {DEFAULT_OUT})")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; report differences and exit 1 if any")
    parser.add_argument("--notes", action="store_true",
                        help="also list patch/list marker disagreements on stderr")
    args = parser.parse_args(argv)

    try:
        defs = load_definitions(args.source, args.version)
        names = reachable(defs)
        patch, lists, unions, problems = extract(defs, names)
    except (OSError, SpecError, json.JSONDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    outputs = {
        "patch_strategies.json": render(patch, 2) + "\n",
        "list_types.json": render(lists, 2) + "\n",
    }
    if unions:
        outputs["unions.json"] = render(sort_unions(unions), 1) + "\n"

    drift = False
    for file, text in outputs.items():
        path = args.out_dir / file
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old == text:
            status = "unchanged"
        elif args.check:
            drift = True
            status = "DIFFERS" if old is not None else "MISSING"
            sys.stderr.writelines(difflib.unified_diff(
                (old or "").splitlines(keepends=True), text.splitlines(keepends=True),
                f"a/{file}", f"b/{file}"))
        else:
            path.write_text(text, encoding="utf-8")
            status = "written" if old is None else "updated"
        print(f"{file}: {status}", file=sys.stderr)
    if not unions and (args.out_dir / "unions.json").exists():
        print("unions.json: spec has no reachable unions; existing file left alone",
              file=sys.stderr)

    count = lambda table, pred: sum(1 for t in table.values() for f, e in t.items() if pred(f, e))
    print(f"{args.version}: {len(defs)} definitions, {len(names)} reachable", file=sys.stderr)
    print(f"patch directives: {count(patch, lambda f, e: True)} fields in {len(patch)} definitions",
          file=sys.stderr)
    for kind in ("atomic", "set", "map"):
        print(f"list-type {kind}: {count(lists, lambda f, e, k=kind: e.get('listType') == k)}",
              file=sys.stderr)
    print(f"property map-type: {count(lists, lambda f, e: f != '.' and 'mapType' in e)}, "
          f"definition map-type: {count(lists, lambda f, e: f == '.')}; "
          f"list_types.json covers {len(lists)} definitions", file=sys.stderr)
    print(f"unions: {len(unions)} definitions", file=sys.stderr)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    if args.notes:
        for note in summary_notes(patch, lists):
            print(f"note: {note}", file=sys.stderr)
    return 1 if drift else 0


if __name__ == "__main__":
    sys.exit(main())
