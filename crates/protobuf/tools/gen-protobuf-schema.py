#!/usr/bin/env python3
"""Build crates/protobuf/data/schema.json, the wire schema of the Kubernetes
protobuf messages ferrokube transcodes.

Two sources of message layouts are understood:

  --protos DIR   upstream generated.proto files laid out as
                 DIR/<proto package path>/generated.proto, e.g.
                 DIR/k8s.io/api/core/v1/generated.proto (comments are ignored)
  --prost DIR    the src/ directory of the k8s-pb crate (prost output of the
                 same .proto files); JSON names then come from --openapi, the
                 src/v1_33 directory of the k8s-openapi crate, because prost
                 snake-cases field names.

Pointer-ness and omitempty of scalar fields come from --go-fields
(data/go-fields.txt): one "@proto.package" line per package, then lines
"GoType: *ptrField !keptField" naming fields by their JSON name; "*" marks a
pointer scalar (zero value is meaningful), "!" a non-pointer scalar without
omitempty (zero value is still serialized).

Usage (from the workspace root):
  python3 crates/protobuf/tools/gen-protobuf-schema.py \
      --prost ~/.cargo/registry/src/*/k8s-pb-0.9.0/src \
      --openapi ~/.cargo/registry/src/*/k8s-openapi-0.29.0/src/v1_33 \
      --go-fields crates/protobuf/data/go-fields.txt \
      --out crates/protobuf/data/schema.json
"""

import argparse
import json
import os
import re
import sys

# Proto packages in the table, with the apiVersion their kinds are served under.
PACKAGES = {
    "k8s.io.api.core.v1": "v1",
    "k8s.io.api.apps.v1": "apps/v1",
    "k8s.io.api.batch.v1": "batch/v1",
    "k8s.io.api.autoscaling.v1": "autoscaling/v1",
    "k8s.io.api.autoscaling.v2": "autoscaling/v2",
    "k8s.io.api.coordination.v1": "coordination.k8s.io/v1",
    "k8s.io.api.discovery.v1": "discovery.k8s.io/v1",
    "k8s.io.api.events.v1": "events.k8s.io/v1",
    "k8s.io.api.policy.v1": "policy/v1",
    "k8s.io.api.networking.v1": "networking.k8s.io/v1",
    "k8s.io.api.storage.v1": "storage.k8s.io/v1",
    "k8s.io.api.rbac.v1": "rbac.authorization.k8s.io/v1",
    "k8s.io.api.authentication.v1": "authentication.k8s.io/v1",
    "k8s.io.api.authorization.v1": "authorization.k8s.io/v1",
    "k8s.io.api.certificates.v1": "certificates.k8s.io/v1",
    "k8s.io.api.scheduling.v1": "scheduling.k8s.io/v1",
    "k8s.io.api.node.v1": "node.k8s.io/v1",
    "k8s.io.api.admissionregistration.v1": "admissionregistration.k8s.io/v1",
    "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1": "apiextensions.k8s.io/v1",
    "k8s.io.apimachinery.pkg.apis.meta.v1": "meta.k8s.io/v1",
    "k8s.io.apimachinery.pkg.runtime": None,
    "k8s.io.apimachinery.pkg.util.intstr": None,
    "k8s.io.apimachinery.pkg.api.resource": None,
}

SCALARS = {"string", "int32", "int64", "bool", "bytes", "double"}

# JSON names that differ from the proto field names (JSONSchemaProps).
JSON_NAME_OVERRIDES = {
    ("JSONSchemaProps", "ref"): "$ref",
    ("JSONSchemaProps", "schema"): "$schema",
}

# Kinds (top-level objects) that have no metadata field but travel as objects.
EXTRA_KINDS = {
    "k8s.io.api.core.v1": ["PodLogOptions", "PodExecOptions", "PodAttachOptions",
                           "PodPortForwardOptions", "PodProxyOptions",
                           "NodeProxyOptions", "ServiceProxyOptions"],
    "k8s.io.apimachinery.pkg.apis.meta.v1": [
        "Status", "DeleteOptions", "CreateOptions", "UpdateOptions",
        "PatchOptions", "GetOptions", "ListOptions", "WatchEvent",
        "APIResourceList", "APIGroup", "APIGroupList", "APIVersions"],
    "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1": ["ConversionReview"],
}


# prost upper-camel-cases message names; these are the proto spellings.
PROST_RENAMES = {
    "Json": "JSON",
    "JsonSchemaProps": "JSONSchemaProps",
    "JsonSchemaPropsOrArray": "JSONSchemaPropsOrArray",
    "JsonSchemaPropsOrBool": "JSONSchemaPropsOrBool",
    "JsonSchemaPropsOrStringArray": "JSONSchemaPropsOrStringArray",
}

# Go embedded structs (json ",inline"): (message, field number). With
# --prost they are also detected from the openapi crate and compared.
INLINE_FIELDS = {
    ("k8s.io.api.admissionregistration.v1.NamedRuleWithOperations", 2),
    ("k8s.io.api.admissionregistration.v1.RuleWithOperations", 2),
    ("k8s.io.api.core.v1.ConfigMapEnvSource", 1),
    ("k8s.io.api.core.v1.ConfigMapKeySelector", 1),
    ("k8s.io.api.core.v1.ConfigMapProjection", 1),
    ("k8s.io.api.core.v1.ConfigMapVolumeSource", 1),
    ("k8s.io.api.core.v1.EphemeralContainer", 1),
    ("k8s.io.api.core.v1.PersistentVolumeSpec", 2),
    ("k8s.io.api.core.v1.Probe", 1),
    ("k8s.io.api.core.v1.SecretEnvSource", 1),
    ("k8s.io.api.core.v1.SecretKeySelector", 1),
    ("k8s.io.api.core.v1.SecretProjection", 1),
    ("k8s.io.api.core.v1.Volume", 2),
    ("k8s.io.api.networking.v1.IngressRule", 2),
}

# Proto field names prost's snake case cannot be turned back into.
FALLBACK_NAMES = {
    "scale_io": "scaleIO",
    "insecure_skip_tls_verify_backend": "insecureSkipTLSVerifyBackend",
    "desired_api_version": "desiredAPIVersion",
    "j_son_schemas": "JSONSchemas",
}


def camel_from_snake(name):
    parts = name.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def norm(name):
    return name.replace("r#", "").replace("_", "").replace("-", "").lower()


# ---------------------------------------------------------------- .proto input

def parse_protos(root):
    """Reads ROOT/<package path>/generated.proto, where the package path is the
    proto package without "k8s.io." (api/core/v1, apimachinery/pkg/runtime,
    apiextensions-apiserver/pkg/apis/apiextensions/v1), as laid out by k8s-pb."""
    messages = {}
    for pkg in PACKAGES:
        rel = pkg[len("k8s.io."):].replace(".", "/")
        candidates = [os.path.join(root, rel, "generated.proto"),
                      os.path.join(root, rel.replace("_", "-"), "generated.proto")]
        path = next((c for c in candidates if os.path.exists(c)), None)
        if path is None:
            print(f"WARNING: no generated.proto for {pkg}", file=sys.stderr)
            continue
        text = open(path, encoding="utf-8").read()
        text = re.sub(r"//[^\n]*", "", text)
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        for m in re.finditer(r"message\s+(\w+)\s*\{(.*?)\n\}", text, re.S):
            name, body = m.group(1), m.group(2)
            fields = []
            for f in re.finditer(
                    r"(optional|repeated)?\s*(map<\s*([\w.]+)\s*,\s*([\w.]+)\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)",
                    body):
                label, typ, mk, mv, fname, num = f.groups()
                if mk:
                    kind = ("map", mk, resolve_proto(mv, pkg))
                else:
                    kind = resolve_proto(typ, pkg)
                jname = JSON_NAME_OVERRIDES.get((name, fname), fname)
                if name == "JSONSchemaProps" and fname.startswith("xKubernetes"):
                    jname = re.sub(r"([A-Z])", lambda c: "-" + c.group(1).lower(), fname)
                fields.append({"num": int(num), "proto": fname, "json": jname,
                               "type": kind, "repeated": label == "repeated",
                               "inline": (f"{pkg}.{name}", int(num)) in INLINE_FIELDS})
            messages[f"{pkg}.{name}"] = fields
    return messages


def resolve_proto(typ, pkg):
    typ = typ.lstrip(".")
    if typ in SCALARS:
        return typ
    if "." in typ:
        return typ
    return f"{pkg}.{typ}"


# ---------------------------------------------------------------- prost input

def load_openapi_names(root):
    """Go type name -> {normalized rust field name: JSON name}."""
    names = {}
    for dirpath, _, files in os.walk(root):
        for fn in files:
            if not fn.endswith(".rs"):
                continue
            text = open(os.path.join(dirpath, fn), encoding="utf-8").read()
            for sm in re.finditer(r"pub struct (\w+)\s*\{", text):
                struct = sm.group(1)
                keys = dict((k, j) for j, k in re.findall(r'"([^"]+)" => Field::(Key_\w+),', text))
                entry = names.setdefault(struct, {})
                for k, j in keys.items():
                    entry[norm(k[len("Key_"):])] = j
    return names


def prost_module(pkg):
    rest = pkg[len("k8s.io."):]
    return rest.split(".")


def parse_prost(root, openapi):
    go_names = {}  # lower-case name -> Go spelling, from the openapi crate
    for struct in openapi:
        go_names.setdefault(struct.lower(), struct)
    raw = {}
    for pkg in PACKAGES:
        mod = prost_module(pkg)
        path = os.path.join(root, *mod, "mod.rs")
        text = open(path, encoding="utf-8").read()
        text = "\n".join(l for l in text.split("\n") if not l.strip().startswith("///"))
        for sm in re.finditer(r"pub struct (\w+)\s*\{\}|pub struct (\w+)\s*\{(.*?)\n\}", text, re.S):
            sname = sm.group(1) or sm.group(2)
            body = sm.group(3) or ""
            fields = []
            for chunk in body.split("#[prost(")[1:]:
                fm = re.match(r"([^)]*)\)\]\s*pub ([\w#]+):\s*(.*)$", chunk.strip(), re.S)
                attr, fname, ftype = fm.groups()
                ftype = re.sub(r"\s+", "", ftype).rstrip(",")
                ftype = re.sub(r",>", ">", ftype)
                tag = int(re.search(r'tag\s*=\s*"(\d+)"', attr).group(1))
                repeated = bool(re.search(r"\brepeated\b", attr))
                mm = re.search(r'btree_map\s*=\s*"(\w+),\s*(\w+)"', attr)
                if mm:
                    kt, vt = mm.groups()
                    if vt == "message":
                        inner = re.search(r"BTreeMap<[^,]+,(.*)>$", ftype).group(1)
                        vt = rust_path(inner, mod)
                    kind = ("map", kt, vt)
                else:
                    first = attr.split(",")[0].strip()
                    first = first.split("=")[0].strip()
                    if first == "message":
                        inner = ftype
                        for wrap in ("::core::option::Option<", "::prost::alloc::vec::Vec<",
                                     "::prost::alloc::boxed::Box<"):
                            if inner.startswith(wrap):
                                inner = inner[len(wrap):-1]
                        for wrap in ("::prost::alloc::boxed::Box<",):
                            if inner.startswith(wrap):
                                inner = inner[len(wrap):-1]
                        kind = rust_path(inner, mod)
                    elif first in SCALARS:
                        kind = first
                    else:
                        sys.exit(f"unknown prost attribute {attr} in {pkg}.{sname}")
                fields.append({"num": tag, "rust": fname, "type": kind, "repeated": repeated})
            raw[(pkg, sname)] = fields
    # Real (Go/proto) message names.
    rename = {}
    for (pkg, sname) in raw:
        rename[(pkg, sname)] = PROST_RENAMES.get(sname) or go_names.get(sname.lower(), sname)
    full = {f"{pkg}.{sname}": f"{pkg}.{rename[(pkg, sname)]}" for (pkg, sname) in raw}
    by_full = {f"{pkg}.{rename[(pkg, sname)]}": fields for (pkg, sname), fields in raw.items()}
    # Embedded Go structs (json ",inline") are separate proto messages; the
    # openapi crate flattens them into the parent, so a message field whose
    # name the parent's openapi schema lacks, while the child's fields are all
    # there, is inline.
    inline = set()
    child_names = {}
    for (pkg, sname), fields in raw.items():
        goname = rename[(pkg, sname)]
        jmap = openapi.get(goname)
        if not jmap:
            continue
        for f in fields:
            t = full.get(f["type"], f["type"]) if isinstance(f["type"], str) else None
            if not t or t in SCALARS or f["repeated"] or norm(f["rust"]) in jmap:
                continue
            child = by_full.get(t)
            if child and (sum(norm(c["rust"]) in jmap for c in child) * 2 > len(child)
                          or (f"{pkg}.{goname}", f["num"]) in INLINE_FIELDS):
                inline.add((f"{pkg}.{goname}", f["num"]))
                child_names.setdefault(t, {}).update(jmap)
    for missing in sorted(INLINE_FIELDS - inline):
        print("PROBLEM: inline field not detected:", missing, file=sys.stderr)
    for extra in sorted(inline - INLINE_FIELDS):
        print("PROBLEM: undeclared inline field:", extra, file=sys.stderr)
    inline |= INLINE_FIELDS
    messages = {}
    fallbacks = []
    for (pkg, sname), fields in raw.items():
        goname = rename[(pkg, sname)]
        jmap = openapi.get(goname) or child_names.get(f"{pkg}.{goname}", {})
        out = []
        for f in fields:
            key = norm(f["rust"])
            override = JSON_NAME_OVERRIDES.get((goname, f["rust"].replace("r#", "")))
            if override:
                jname = override
            elif key in jmap:
                jname = jmap[key]
            else:
                jname = FALLBACK_NAMES.get(f["rust"], camel_from_snake(f["rust"].replace("r#", "")))
                if (f"{pkg}.{goname}", f["num"]) not in inline and f["rust"] not in ("metadata", "items"):
                    fallbacks.append(f"{pkg}.{goname}.{jname}")
            t = f["type"]
            if isinstance(t, tuple):
                t = ("map", t[1], full.get(t[2], t[2]))
            else:
                t = full.get(t, t)
            out.append({"num": f["num"], "json": jname, "type": t, "repeated": f["repeated"],
                        "inline": (f"{pkg}.{goname}", f["num"]) in inline})
        messages[f"{pkg}.{goname}"] = out
    return messages, fallbacks


def rust_path(path, mod):
    if path in SCALARS:
        return path
    segs = path.split("::")
    cur = list(mod)
    if segs[0] != "super":
        return "k8s.io." + ".".join(cur + segs)
    while segs and segs[0] == "super":
        cur.pop()
        segs = segs[1:]
    return "k8s.io." + ".".join(cur + segs)


# ---------------------------------------------------------------- Go facts

def load_go_fields(path):
    facts = {}
    pkg = None
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            pkg = line[1:]
            continue
        name, _, rest = line.partition(":")
        entry = facts.setdefault(f"{pkg}.{name.strip()}", {})
        for tok in rest.split():
            entry[tok[1:]] = entry.get(tok[1:], "") + ("p" if tok[0] == "*" else "k")
    return facts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--protos")
    ap.add_argument("--prost")
    ap.add_argument("--openapi")
    ap.add_argument("--go-fields", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    if args.protos:
        messages = parse_protos(args.protos)
        fallbacks = []
    else:
        messages, fallbacks = parse_prost(args.prost, load_openapi_names(args.openapi))

    facts = load_go_fields(args.go_fields)
    problems = []
    lower = {k.lower(): k for k in messages}
    for gname, entry in facts.items():
        mname = lower.get(gname.lower())
        if not mname:
            problems.append(f"go-fields names unknown message {gname}")
            continue
        jnames = {f["json"] for f in messages[mname]}
        for j in entry:
            if j not in jnames:
                problems.append(f"go-fields names unknown field {gname}.{j}")
    covered = {lower.get(g.lower()) for g in facts}
    uncovered = []

    table = {}
    kinds = {}
    for mname in sorted(messages):
        pkg, _, short = mname.rpartition(".")
        fact = facts.get(mname) or next((v for k, v in facts.items() if k.lower() == mname.lower()), {})
        rows = []
        has_scalar = False
        for f in sorted(messages[mname], key=lambda f: f["num"]):
            t = f["type"]
            if isinstance(t, tuple):
                tname = f"map<{t[1]},{t[2]}>"
            else:
                tname = t
            flags = ""
            if f.get("inline"):
                flags += "i"
            if f["repeated"]:
                flags += "r"
            if isinstance(t, str) and t in SCALARS and not f["repeated"]:
                has_scalar = True
                fl = fact.get(f["json"], "")
                if "p" in fl:
                    flags += "p"
                elif "k" in fl:
                    flags += "k"
            rows.append([f["num"], f["json"], tname, flags] if flags else [f["num"], f["json"], tname])
        if has_scalar and mname not in covered and PACKAGES.get(pkg) not in (None,):
            uncovered.append(mname)
        table[mname] = rows
        gv = PACKAGES.get(pkg)
        first = messages[mname][0] if messages[mname] else None
        is_kind = bool(first and first["json"] == "metadata" and first["num"] == 1 and
                       isinstance(first["type"], str) and first["type"].endswith(("v1.ObjectMeta", "v1.ListMeta")))
        if gv and (is_kind or short in EXTRA_KINDS.get(pkg, [])):
            kinds.setdefault(gv, {})[short] = mname

    out = {"messages": table, "kinds": kinds}
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write("{\"kinds\":")
        json.dump(kinds, fh, separators=(",", ":"), sort_keys=True)
        fh.write(",\n\"messages\":{\n")
        names = sorted(table)
        for i, name in enumerate(names):
            fh.write(json.dumps(name) + ":" + json.dumps(table[name], separators=(",", ":")))
            fh.write(",\n" if i + 1 < len(names) else "\n")
        fh.write("}}\n")

    nfields = sum(len(v) for v in table.values())
    print(f"{len(table)} messages, {nfields} fields, {sum(len(v) for v in kinds.values())} kinds",
          file=sys.stderr)
    for p in problems:
        print("PROBLEM:", p, file=sys.stderr)
    for u in uncovered:
        print("NO GO FACTS:", u, file=sys.stderr)
    for f in fallbacks:
        print("FALLBACK JSON NAME:", f, file=sys.stderr)


if __name__ == "__main__":
    main()
