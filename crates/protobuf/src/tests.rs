//! Tests against hand-built wire bytes shaped like Go's marshaller output
//! (every non-pointer scalar written, zero or not), checked against the JSON
//! upstream serves for the same objects.

use serde_json::{json, Value};

use super::*;

// Hand-written wire helpers, independent of the crate's own writer.
fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Length-delimited field.
fn ld(field: u32, body: &[u8]) -> Vec<u8> {
    let mut out = varint(u64::from(field) << 3 | 2);
    out.extend(varint(body.len() as u64));
    out.extend_from_slice(body);
    out
}

fn s(field: u32, text: &str) -> Vec<u8> {
    ld(field, text.as_bytes())
}

/// Varint field.
fn v(field: u32, value: u64) -> Vec<u8> {
    let mut out = varint(u64::from(field) << 3);
    out.extend(varint(value));
    out
}

/// map<string,string> entry.
fn entry(field: u32, key: &str, value: &str) -> Vec<u8> {
    ld(field, &[s(1, key), s(2, value)].concat())
}

fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut out = b"k8s\0".to_vec();
    out.extend(ld(1, &[s(1, api_version), s(2, kind)].concat()));
    out.extend(ld(2, raw));
    out.extend(s(3, ""));
    out.extend(s(4, ""));
    out
}

/// ObjectMeta as Go writes it: all non-pointer strings and the generation,
/// an empty creationTimestamp, then labels.
fn object_meta(name: &str, namespace: &str, labels: &[(&str, &str)]) -> Vec<u8> {
    let mut m = [
        s(1, name),
        s(2, ""),
        s(3, namespace),
        s(4, ""),
        s(5, ""),
        s(6, ""),
        v(7, 0),
        ld(8, &[]),
    ]
    .concat();
    for (k, val) in labels {
        m.extend(entry(11, k, val));
    }
    m
}

#[test]
fn configmap_from_kubectl() {
    // kubectl create configmap x --from-literal=a=b
    let raw = [ld(1, &object_meta("x", "", &[])), entry(2, "a", "b")].concat();
    let body = envelope("v1", "ConfigMap", &raw);
    // Spell out the first bytes to pin the envelope layout.
    assert_eq!(&body[..8], b"k8s\0\x0a\x0f\x0a\x02");
    assert_eq!(
        decode(&body).unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "x", "creationTimestamp": null},
            "data": {"a": "b"}
        })
    );
}

#[test]
fn configmap_exact_bytes() {
    let body: &[u8] = b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09ConfigMap\x12\x1b\
        \x0a\x11\x0a\x01x\x12\x00\x1a\x00\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\
        \x12\x06\x0a\x01a\x12\x01b\x1a\x00\x22\x00";
    assert_eq!(
        decode(body).unwrap(),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "creationTimestamp": null}, "data": {"a": "b"}})
    );
}

fn container_port(port: u64) -> Vec<u8> {
    [s(1, ""), v(2, 0), v(3, port), s(4, "TCP"), s(5, "")].concat()
}

fn nginx_container() -> Vec<u8> {
    [
        s(1, "nginx"),
        s(2, "nginx"),
        s(5, ""),
        ld(6, &container_port(80)),
        ld(6, &container_port(443)),
        ld(8, &[]),
        s(13, ""),
        s(14, ""),
        v(16, 0),
        v(17, 0),
        v(18, 0),
        s(20, ""),
    ]
    .concat()
}

fn pod_spec(container: &[u8]) -> Vec<u8> {
    [
        ld(2, container),
        s(3, ""),
        s(6, ""),
        s(8, ""),
        s(9, ""),
        s(10, ""),
        v(11, 0),
        v(12, 0),
        v(13, 0),
        s(16, ""),
        s(17, ""),
        s(19, ""),
    ]
    .concat()
}

#[test]
fn deployment_with_zero_replicas() {
    let selector = ld(1, &[s(1, "app"), s(2, "web")].concat());
    let template = [
        ld(1, &object_meta("", "", &[("app", "web")])),
        ld(2, &pod_spec(&nginx_container())),
    ]
    .concat();
    let spec = [
        v(1, 0), // *int32 replicas = 0
        ld(2, &selector),
        ld(3, &template),
        ld(4, &[]), // strategy {}
        v(5, 0),    // minReadySeconds 0
        v(7, 0),    // paused false
    ]
    .concat();
    let raw = [
        ld(1, &object_meta("web", "default", &[("app", "web")])),
        ld(2, &spec),
        ld(3, &[]),
    ]
    .concat();
    let got = decode(&envelope("apps/v1", "Deployment", &raw)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": null, "labels": {"app": "web"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "nginx",
                        "image": "nginx",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP"}],
                        "resources": {}
                    }]}
                },
                "strategy": {}
            },
            "status": {}
        })
    );
    assert_eq!(decode(&encode(&got).unwrap()).unwrap(), got);
}

#[test]
fn service_target_ports() {
    let int_port = [v(1, 0), v(2, 8080), s(3, "")].concat();
    let str_port = [v(1, 1), v(2, 0), s(3, "http")].concat();
    let port1 = [
        s(1, "web"),
        s(2, "TCP"),
        v(3, 80),
        ld(4, &int_port),
        v(5, 0),
    ]
    .concat();
    let port2 = [
        s(1, "alt"),
        s(2, "TCP"),
        v(3, 0),
        ld(4, &str_port),
        v(5, 30080),
    ]
    .concat();
    let spec = [
        ld(1, &port1),
        ld(1, &port2),
        entry(2, "app", "web"),
        s(3, ""),
        s(4, "ClusterIP"),
    ]
    .concat();
    let raw = [
        ld(1, &object_meta("web", "", &[])),
        ld(2, &spec),
        ld(3, &ld(1, &[])),
    ]
    .concat();
    let got = decode(&envelope("v1", "Service", &raw)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "creationTimestamp": null},
            "spec": {
                "ports": [
                    {"name": "web", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "alt", "protocol": "TCP", "port": 0, "targetPort": "http", "nodePort": 30080}
                ],
                "selector": {"app": "web"},
                "type": "ClusterIP"
            },
            "status": {"loadBalancer": {}}
        })
    );
    assert_eq!(decode(&encode(&got).unwrap()).unwrap(), got);
}

#[test]
fn secret_bytes_are_base64() {
    let data = ld(2, &[s(1, "password"), ld(2, b"s3cr\0t")].concat());
    let raw = [
        ld(1, &object_meta("db", "", &[])),
        data,
        entry(4, "x", "y"),
        s(3, "Opaque"),
        v(5, 0),
    ]
    .concat();
    let got = decode(&envelope("v1", "Secret", &raw)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "creationTimestamp": null},
            "data": {"password": "czNjcgB0"},
            "stringData": {"x": "y"},
            "type": "Opaque",
            "immutable": false
        })
    );
    let again = encode(&got).unwrap();
    assert_eq!(decode(&again).unwrap(), got);
}

#[test]
fn self_subject_access_review_from_kubectl_auth_can_i() {
    // kubectl auth can-i create pods -n default
    let attrs = [
        s(1, "default"),
        s(2, "create"),
        s(3, ""),
        s(4, ""),
        s(5, "pods"),
        s(6, ""),
        s(7, ""),
    ]
    .concat();
    let spec = ld(1, &attrs);
    let status = [v(1, 0), s(2, ""), s(3, ""), v(4, 0)].concat();
    let raw = [
        ld(1, &object_meta("", "", &[])),
        ld(2, &spec),
        ld(3, &status),
    ]
    .concat();
    let got = decode(&envelope(
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        &raw,
    ))
    .unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {"creationTimestamp": null},
            "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}},
            "status": {"allowed": false}
        })
    );
}

#[test]
fn eviction_and_token_request() {
    let delete_options = [v(1, 0), ld(2, b"")].concat(); // gracePeriodSeconds: 0 (pointer), preconditions {}
    let raw = [
        ld(1, &object_meta("web-1", "default", &[])),
        ld(2, &delete_options),
    ]
    .concat();
    let got = decode(&envelope("policy/v1", "Eviction", &raw)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": null},
            "deleteOptions": {"gracePeriodSeconds": 0, "preconditions": {}}
        })
    );
    let spec = [s(1, "api"), v(4, 3600)].concat();
    let status = [s(1, ""), ld(2, &[])].concat();
    let raw = [
        ld(1, &object_meta("", "", &[])),
        ld(2, &spec),
        ld(3, &status),
    ]
    .concat();
    let got = decode(&envelope("authentication.k8s.io/v1", "TokenRequest", &raw)).unwrap();
    assert_eq!(
        got["spec"],
        json!({"audiences": ["api"], "expirationSeconds": 3600})
    );
    assert_eq!(
        got["status"],
        json!({"token": "", "expirationTimestamp": null})
    );
}

#[test]
fn timestamps_and_micro_timestamps() {
    let meta = [
        s(1, "p"),
        v(7, 3),
        ld(8, &[v(1, 1_700_000_000), v(2, 0)].concat()),
        ld(9, &v(1, 1_700_000_030)),
        v(10, 0),
    ]
    .concat();
    let raw = [ld(1, &meta)].concat();
    let got = decode(&envelope("v1", "Pod", &raw)).unwrap();
    assert_eq!(
        got["metadata"],
        json!({
            "name": "p",
            "generation": 3,
            "creationTimestamp": "2023-11-14T22:13:20Z",
            "deletionTimestamp": "2023-11-14T22:13:50Z",
            "deletionGracePeriodSeconds": 0
        })
    );
    let spec = [
        s(1, "node-a"),
        v(2, 40),
        ld(4, &[v(1, 1_700_000_000), v(2, 123_456_789)].concat()),
        v(5, 0),
    ]
    .concat();
    let raw = [
        ld(1, &object_meta("node-a", "kube-node-lease", &[])),
        ld(2, &spec),
    ]
    .concat();
    let got = decode(&envelope("coordination.k8s.io/v1", "Lease", &raw)).unwrap();
    assert_eq!(
        got["spec"],
        json!({
            "holderIdentity": "node-a",
            "leaseDurationSeconds": 40,
            "renewTime": "2023-11-14T22:13:20.123456Z",
            "leaseTransitions": 0
        })
    );
    assert_eq!(decode(&encode(&got).unwrap()).unwrap(), got);
}

#[test]
fn durations() {
    let s = schema::schema().unwrap();
    let name = format!("{}.Duration", schema::META);
    let dec = |ns: i64| decode::decode_message(s, &name, &v(1, ns as u64), "d", 0).unwrap();
    assert_eq!(dec(3_723_000_000_000), json!("1h2m3s"));
    assert_eq!(dec(500_000_000), json!("500ms"));
    assert_eq!(dec(0), json!("0s"));
    assert_eq!(dec(-1_500_000_000), json!("-1.5s"));
    let enc = encode::encode_message(s, &name, &json!("1m30s"), "d", 0).unwrap();
    assert_eq!(enc, v(1, 90_000_000_000));
}

#[test]
fn lists_and_packed_repeated_scalars() {
    let item = |n: &str| [ld(1, &object_meta(n, "", &[])), entry(2, "k", n)].concat();
    let list_meta = [s(1, ""), s(2, "42"), s(3, "")].concat();
    let raw = [ld(1, &list_meta), ld(2, &item("a")), ld(2, &item("b"))].concat();
    let got = decode(&envelope("v1", "ConfigMapList", &raw)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMapList",
            "metadata": {"resourceVersion": "42"},
            "items": [
                {"metadata": {"name": "a", "creationTimestamp": null}, "data": {"k": "a"}},
                {"metadata": {"name": "b", "creationTimestamp": null}, "data": {"k": "b"}}
            ]
        })
    );
    // supplementalGroups (repeated int64) packed, runAsUser 0 (pointer).
    let packed: Vec<u8> = [varint(1000), varint(2000)].concat();
    let sc = [v(2, 0), ld(4, &packed), v(4, 3000)].concat();
    let spec = [ld(14, &sc)].concat();
    let got = decode(&envelope("v1", "Pod", &[ld(2, &spec)].concat())).unwrap();
    assert_eq!(
        got["spec"]["securityContext"],
        json!({"runAsUser": 0, "supplementalGroups": [1000, 2000, 3000]})
    );
}

#[test]
fn inline_structs_flatten() {
    let volume = [
        s(1, "cfg"),
        ld(
            2,
            &ld(19, &[ld(1, &s(1, "app-config")), v(3, 420)].concat()),
        ),
    ]
    .concat();
    let probe = [
        ld(
            1,
            &ld(
                2,
                &[
                    s(1, "/healthz"),
                    ld(2, &[v(1, 0), v(2, 8080), s(3, "")].concat()),
                ]
                .concat(),
            ),
        ),
        v(2, 5),
    ]
    .concat();
    let container = [s(1, "app"), ld(10, &probe)].concat();
    let spec = [ld(1, &volume), ld(2, &container)].concat();
    let got = decode(&envelope("v1", "Pod", &ld(2, &spec))).unwrap();
    assert_eq!(
        got["spec"],
        json!({
            "volumes": [{"name": "cfg", "configMap": {"name": "app-config", "defaultMode": 420}}],
            "containers": [{"name": "app", "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "initialDelaySeconds": 5}}]
        })
    );
    assert_eq!(decode(&encode(&got).unwrap()).unwrap(), got);
}

#[test]
fn owner_references_and_negative_ints() {
    let owner = [
        s(1, "ReplicaSet"),
        s(3, "web-1"),
        s(4, "uid-1"),
        s(5, "apps/v1"),
        v(6, 1),
        v(7, 0),
    ]
    .concat();
    let meta = [s(1, "web-1-abc"), ld(13, &owner)].concat();
    let status = ld(
        8,
        &[
            s(1, "c"),
            ld(2, &ld(3, &[v(1, u64::MAX), v(2, 0)].concat())),
            v(4, 0),
            v(5, 0),
            s(6, ""),
            s(7, ""),
        ]
        .concat(),
    );
    let got = decode(&envelope(
        "v1",
        "Pod",
        &[ld(1, &meta), ld(3, &status)].concat(),
    ))
    .unwrap();
    assert_eq!(
        got["metadata"]["ownerReferences"],
        json!([{"kind": "ReplicaSet", "name": "web-1", "uid": "uid-1", "apiVersion": "apps/v1", "controller": true, "blockOwnerDeletion": false}])
    );
    assert_eq!(
        got["status"]["containerStatuses"],
        json!([{"name": "c", "state": {"terminated": {"exitCode": -1}}, "ready": false, "restartCount": 0, "image": "", "imageID": ""}])
    );
    assert_eq!(decode(&encode(&got).unwrap()).unwrap(), got);
}

#[test]
fn crd_schema_round_trip() {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com", "creationTimestamp": null},
        "spec": {
            "group": "example.com",
            "names": {"plural": "widgets", "kind": "Widget"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                                 "additionalProperties": false, "default": {"size": 1}},
                        "size": {"type": "integer", "minimum": 0.0, "maximum": 10.5},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "ref": {"$ref": "#/definitions/x", "enum": ["a", 1]}
                    },
                    "required": ["spec"]
                }}
            }]
        },
        "status": {"acceptedNames": {"plural": "", "kind": ""}}
    });
    assert_eq!(decode(&encode(&crd).unwrap()).unwrap(), crd);
}

#[test]
fn watch_event_embeds_an_envelope() {
    let cm = envelope("v1", "ConfigMap", &ld(1, &object_meta("x", "", &[])));
    let raw = [s(1, "ADDED"), ld(2, &ld(1, &cm))].concat();
    let got = decode(&envelope("v1", "WatchEvent", &raw)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "WatchEvent",
            "type": "ADDED",
            "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "creationTimestamp": null}}
        })
    );
}

#[test]
fn encode_writes_go_layout() {
    let obj = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "labels": {"b": "2", "a": "1"}, "unknownField": 1},
        "data": {"a": "b"},
        "extra": true
    });
    let meta = [s(1, "x"), entry(11, "a", "1"), entry(11, "b", "2")].concat();
    let expected = envelope(
        "v1",
        "ConfigMap",
        &[ld(1, &meta), entry(2, "a", "b")].concat(),
    );
    assert_eq!(encode(&obj).unwrap(), expected);
}

#[test]
fn supports_known_kinds() {
    assert!(supports("v1", "ConfigMap"));
    assert!(supports("v1", "ConfigMapList"));
    assert!(supports("batch/v1", "CronJob"));
    assert!(supports(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition"
    ));
    assert!(!supports("v1", "Widget"));
    assert!(!supports("example.com/v1", "Widget"));
}

#[test]
fn errors_are_descriptive() {
    assert!(matches!(
        decode(b"{\"kind\":\"x\"}"),
        Err(ProtoError::MissingMagic)
    ));
    let err = decode(&envelope("example.com/v1", "Widget", &[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no protobuf serialization is known for kind \"Widget\" in \"example.com/v1\""
    );
    assert!(matches!(
        decode(&envelope("", "", &[])),
        Err(ProtoError::MissingTypeMeta)
    ));
    let mut truncated = envelope("v1", "ConfigMap", &ld(1, &object_meta("x", "", &[])));
    truncated.truncate(truncated.len() - 8);
    assert!(decode(&truncated).is_err());
    let bad_wire = envelope("v1", "ConfigMap", &v(1, 5));
    assert_eq!(
        decode(&bad_wire).unwrap_err().to_string(),
        "ConfigMap.metadata: expected length-delimited wire type, got wire type 0"
    );
    let err = encode(
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": "three"}}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Deployment.spec.replicas: expected an integer, got a string"
    );
    assert!(matches!(encode(&json!([1])), Err(ProtoError::NotAnObject)));
    let mut compressed = b"k8s\0".to_vec();
    compressed.extend(
        [
            ld(1, &[s(1, "v1"), s(2, "ConfigMap")].concat()),
            ld(2, b""),
            s(3, "gzip"),
        ]
        .concat(),
    );
    assert!(
        matches!(decode(&compressed), Err(ProtoError::UnsupportedContentEncoding(e)) if e == "gzip")
    );
}

#[test]
fn unknown_fields_are_skipped() {
    let raw = [ld(1, &object_meta("x", "", &[])), s(99, "future"), v(98, 7)].concat();
    let got: Value = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "creationTimestamp": null}})
    );
}
