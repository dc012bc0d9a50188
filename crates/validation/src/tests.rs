//! Per-kind tests: defaulting plus create preparation of minimal objects
//! compared with the objects upstream 1.33 stores, and tables of invalid
//! objects with upstream's exact error strings.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::{FieldError, KindRules};

fn obj<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

/// Defaults and prepares an object for creation, returning its JSON.
fn created<T: KindRules + Serialize + DeserializeOwned>(v: Value) -> Value {
    let mut o: T = obj(v);
    o.default();
    o.prepare_for_create();
    let mut v = serde_json::to_value(&o).unwrap();
    if let Some(m) = v.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

/// Defaults and validates an object as on create.
fn create_errors<T: KindRules + DeserializeOwned>(v: Value) -> Vec<String> {
    let mut o: T = obj(v);
    o.default();
    o.prepare_for_create();
    msgs(o.validate())
}

fn update_errors<T: KindRules + DeserializeOwned>(old: Value, new: Value) -> Vec<String> {
    let mut o: T = obj(old);
    o.default();
    o.prepare_for_create();
    let mut n: T = obj(new);
    n.default();
    n.prepare_for_update(&o);
    msgs(n.validate_update(&o))
}

fn msgs(errs: Vec<FieldError>) -> Vec<String> {
    let mut seen = Vec::new();
    for e in errs {
        let m = e.to_string();
        if !seen.contains(&m) {
            seen.push(m);
        }
    }
    seen
}

fn assert_has(errs: &[String], want: &str) {
    assert!(
        errs.iter().any(|e| e == want),
        "missing error\n  want: {want}\n  got:  {errs:#?}"
    );
}

fn with_meta(kind_meta: Value, rest: Value) -> Value {
    let mut out = rest;
    out["metadata"] = kind_meta;
    out
}

fn pod(spec: Value) -> Value {
    json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec})
}

fn defaulted_container(name: &str, image: &str, policy: &str) -> Value {
    json!({
        "name": name,
        "image": image,
        "imagePullPolicy": policy,
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File"
    })
}

fn defaulted_template_spec(containers: Value) -> Value {
    json!({
        "containers": containers,
        "dnsPolicy": "ClusterFirst",
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "terminationGracePeriodSeconds": 30
    })
}

// ---------------------------------------------------------------------- Pod

#[test]
fn pod_defaults() {
    let got = created::<k8s_openapi::api::core::v1::Pod>(pod(
        json!({"containers": [{"name": "c", "image": "nginx"}]}),
    ));
    let want = json!({
        "metadata": {"name": "p", "namespace": "default", "generation": 1},
        "spec": {
            "containers": [defaulted_container("c", "nginx", "Always")],
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": true,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "terminationGracePeriodSeconds": 30
        },
        "status": {"phase": "Pending", "qosClass": "BestEffort"}
    });
    assert_eq!(got, want);
}

#[test]
fn pod_defaults_full() {
    let got = created::<k8s_openapi::api::core::v1::Pod>(pod(json!({
        "serviceAccount": "builder",
        "containers": [{
            "name": "c", "image": "nginx:1.25",
            "ports": [{"containerPort": 80}],
            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
            "livenessProbe": {"httpGet": {"port": 80}},
            "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
        }],
        "volumes": [
            {"name": "a"},
            {"name": "b", "secret": {"secretName": "s"}},
            {"name": "c", "configMap": {"name": "cm"}},
            {"name": "d", "hostPath": {"path": "/tmp"}},
            {"name": "e", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}
        ]
    })));
    let c = &got["spec"]["containers"][0];
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}])
    );
    assert_eq!(
        c["resources"],
        json!({"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "500m", "memory": "128Mi"}})
    );
    assert_eq!(
        c["livenessProbe"],
        json!({"httpGet": {"path": "/", "port": 80, "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(
        c["env"][0]["valueFrom"]["fieldRef"],
        json!({"apiVersion": "v1", "fieldPath": "spec.nodeName"})
    );
    let v = &got["spec"]["volumes"];
    assert_eq!(v[0], json!({"name": "a", "emptyDir": {}}));
    assert_eq!(
        v[1],
        json!({"name": "b", "secret": {"secretName": "s", "defaultMode": 420}})
    );
    assert_eq!(
        v[2],
        json!({"name": "c", "configMap": {"name": "cm", "defaultMode": 420}})
    );
    assert_eq!(
        v[3],
        json!({"name": "d", "hostPath": {"path": "/tmp", "type": ""}})
    );
    assert_eq!(
        v[4],
        json!({"name": "e", "projected": {"defaultMode": 420, "sources": [{"serviceAccountToken": {"expirationSeconds": 3600, "path": "token"}}]}})
    );
    assert_eq!(got["spec"]["serviceAccountName"], "builder");
    assert_eq!(got["spec"]["serviceAccount"], "builder");
    assert_eq!(got["status"]["qosClass"], "Guaranteed");
}

#[test]
fn pod_qos_and_gates() {
    let got = created::<k8s_openapi::api::core::v1::Pod>(pod(json!({
        "schedulingGates": [{"name": "example.com/gate"}],
        "containers": [{"name": "c", "image": "nginx", "resources": {"requests": {"cpu": "100m"}}}]
    })));
    assert_eq!(got["status"]["qosClass"], "Burstable");
    assert_eq!(
        got["status"]["conditions"],
        json!([{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated", "message": "Scheduling is blocked due to non-empty scheduling gates"}])
    );
}

#[test]
fn pod_invalid() {
    use k8s_openapi::api::core::v1::Pod;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"containers": [{"name": "c"}]}), "spec.containers[0].image: Required value"),
        (json!({"containers": []}), "spec.containers: Required value"),
        (
            json!({"restartPolicy": "Sometimes", "containers": [{"name": "c", "image": "x"}]}),
            r#"spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never""#,
        ),
        (
            json!({"containers": [{"name": "c", "image": "x", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}}]}),
            r#"spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1"#,
        ),
        (
            json!({"containers": [{"name": "c", "image": "x"}, {"name": "c", "image": "y"}]}),
            r#"spec.containers[1].name: Duplicate value: "c""#,
        ),
        (
            json!({"containers": [{"name": "C_1", "image": "x"}]}),
            r#"spec.containers[0].name: Invalid value: "C_1": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"#,
        ),
        (
            json!({"containers": [{"name": "c", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}),
            r#"spec.containers[0].volumeMounts[0].name: Not found: "data""#,
        ),
        (
            json!({"containers": [{"name": "c", "image": "x", "env": [{"name": "A=B", "value": "1"}]}]}),
            r#"spec.containers[0].env[0].name: Invalid value: "A=B": a valid environment variable name must consist only of printable ASCII characters other than '='"#,
        ),
        (
            json!({"containers": [{"name": "c", "image": "x", "livenessProbe": {"periodSeconds": 5}}]}),
            "spec.containers[0].livenessProbe: Required value: must specify a handler type",
        ),
        (
            json!({"containers": [{"name": "c", "image": "x", "readinessProbe": {"exec": {"command": ["true"]}, "terminationGracePeriodSeconds": 5}}]}),
            "spec.containers[0].readinessProbe.terminationGracePeriodSeconds: Invalid value: 5: must not be set for readinessProbes",
        ),
        (
            json!({"containers": [{"name": "c", "image": "x"}], "tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}),
            r#"spec.tolerations[0].operator: Invalid value: "v": value must be empty when `operator` is 'Exists'"#,
        ),
        (
            json!({"containers": [{"name": "c", "image": "x"}], "initContainers": [{"name": "i", "image": "x", "restartPolicy": "Never"}]}),
            r#"spec.initContainers[0].restartPolicy: Unsupported value: "Never": supported values: "Always""#,
        ),
        (
            json!({"containers": [{"name": "c", "image": "x"}], "initContainers": [{"name": "i", "image": "x", "readinessProbe": {"exec": {"command": ["true"]}}}]}),
            "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
        ),
        (
            json!({"containers": [{"name": "c", "image": "x", "restartPolicy": "Always"}]}),
            "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
        ),
        (
            json!({"dnsPolicy": "None", "containers": [{"name": "c", "image": "x"}]}),
            "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None",
        ),
        (
            json!({"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 0}]}]}),
            "spec.containers[0].ports[0].containerPort: Required value",
        ),
        (
            json!({"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 70000}]}]}),
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        ),
        (
            json!({"containers": [{"name": "c", "image": "x", "imagePullPolicy": "Sometimes"}]}),
            r#"spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never""#,
        ),
        (
            json!({"containers": [{"name": "c", "image": "x"}], "ephemeralContainers": [{"name": "e", "image": "x"}]}),
            "spec.ephemeralContainers: Forbidden: cannot be set on create",
        ),
        (
            json!({"containers": [{"name": "c", "image": " x"}]}),
            r#"spec.containers[0].image: Invalid value: " x": must not have leading or trailing whitespace"#,
        ),
        (
            json!({"hostname": "Bad_Host", "containers": [{"name": "c", "image": "x"}]}),
            r#"spec.hostname: Invalid value: "Bad_Host": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"#,
        ),
        (
            json!({"activeDeadlineSeconds": 0, "containers": [{"name": "c", "image": "x"}]}),
            "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
        ),
        (
            json!({"volumes": [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}], "containers": [{"name": "c", "image": "x"}]}),
            "spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type",
        ),
        (
            json!({"volumes": [{"name": "v", "secret": {}}], "containers": [{"name": "c", "image": "x"}]}),
            "spec.volumes[0].secret.secretName: Required value",
        ),
        (
            json!({"containers": [{"name": "c", "image": "x"}], "topologySpreadConstraints": [{"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]}),
            "spec.topologySpreadConstraints[0].maxSkew: Invalid value: 0: must be greater than zero",
        ),
        (
            json!({"containers": [{"name": "c", "image": "x"}], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}}),
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: Required value: must have at least one node selector term",
        ),
        (
            json!({"securityContext": {"seLinuxChangePolicy": "MountOption"}, "containers": [{"name": "c", "image": "x"}]}),
            r#"spec.securityContext.seLinuxChangePolicy: Unsupported value: "MountOption": supported values: "Recursive""#,
        ),
    ];
    for (spec, want) in cases {
        let errs = create_errors::<Pod>(pod(spec.clone()));
        assert_has(&errs, want);
    }
    // A valid pod has no errors.
    assert!(create_errors::<Pod>(pod(
        json!({"containers": [{"name": "c", "image": "nginx"}]})
    ))
    .is_empty());
}

#[test]
fn pod_updates() {
    use k8s_openapi::api::core::v1::Pod;
    let base = pod(
        json!({"activeDeadlineSeconds": 10, "containers": [{"name": "c", "image": "nginx:1"}]}),
    );
    // Image changes are allowed.
    let new = pod(
        json!({"activeDeadlineSeconds": 10, "containers": [{"name": "c", "image": "nginx:2"}]}),
    );
    assert!(update_errors::<Pod>(base.clone(), new).is_empty());
    // Other spec changes are not.
    let new = pod(
        json!({"activeDeadlineSeconds": 10, "hostname": "h", "containers": [{"name": "c", "image": "nginx:1"}]}),
    );
    let errs = update_errors::<Pod>(base.clone(), new);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"), "{errs:?}");
    // activeDeadlineSeconds may only decrease.
    let new = pod(
        json!({"activeDeadlineSeconds": 20, "containers": [{"name": "c", "image": "nginx:1"}]}),
    );
    assert_eq!(update_errors::<Pod>(base.clone(), new), vec!["spec.activeDeadlineSeconds: Invalid value: 20: must be less than or equal to previous value"]);
    // Adding containers is forbidden.
    let new = pod(
        json!({"activeDeadlineSeconds": 10, "containers": [{"name": "c", "image": "nginx:1"}, {"name": "d", "image": "x"}]}),
    );
    assert_has(
        &update_errors::<Pod>(base.clone(), new),
        "spec.containers: Forbidden: pod updates may not add or remove containers",
    );
    // Adding tolerations is allowed.
    let new = pod(
        json!({"activeDeadlineSeconds": 10, "tolerations": [{"key": "k", "operator": "Exists"}], "containers": [{"name": "c", "image": "nginx:1"}]}),
    );
    assert!(update_errors::<Pod>(base, new).is_empty());
}

#[test]
fn pod_update_keeps_status_and_bumps_generation() {
    use k8s_openapi::api::core::v1::Pod;
    let mut old: Pod = obj(pod(
        json!({"containers": [{"name": "c", "image": "nginx:1"}]}),
    ));
    old.default();
    old.prepare_for_create();
    let mut new: Pod = obj(pod(
        json!({"containers": [{"name": "c", "image": "nginx:2"}]}),
    ));
    new.default();
    new.prepare_for_update(&old);
    assert_eq!(new.metadata.generation, Some(2));
    assert_eq!(new.status, old.status);
}

// ------------------------------------------------------------- PodTemplate

#[test]
fn pod_template_invalid() {
    use k8s_openapi::api::core::v1::PodTemplate;
    let errs = create_errors::<PodTemplate>(json!({
        "metadata": {"name": "t", "namespace": "default"},
        "template": {"spec": {"containers": [{"name": "c"}], "ephemeralContainers": [{"name": "e", "image": "x"}]}}
    }));
    assert_has(&errs, "template.spec.containers[0].image: Required value");
    assert_has(&errs, "template.spec.ephemeralContainers: Forbidden: ephemeral containers not allowed in pod template");
}

// --------------------------------------------------------------- Deployment

fn deployment(spec: Value) -> Value {
    json!({"metadata": {"name": "d", "namespace": "default"}, "spec": spec})
}

fn template(labels: Value, spec: Value) -> Value {
    json!({"metadata": {"labels": labels}, "spec": spec})
}

#[test]
fn deployment_defaults() {
    let got = created::<k8s_openapi::api::apps::v1::Deployment>(deployment(json!({
        "selector": {"matchLabels": {"app": "x"}},
        "template": template(json!({"app": "x"}), json!({"containers": [{"name": "c", "image": "nginx:1.25"}]}))
    })));
    let want = json!({
        "metadata": {"name": "d", "namespace": "default", "generation": 1},
        "spec": {
            "progressDeadlineSeconds": 600,
            "replicas": 1,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": "x"}},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}, "type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": defaulted_template_spec(json!([defaulted_container("c", "nginx:1.25", "IfNotPresent")]))
            }
        },
        "status": {}
    });
    assert_eq!(got, want);
}

#[test]
fn deployment_invalid() {
    use k8s_openapi::api::apps::v1::Deployment;
    let ok_template = template(
        json!({"app": "x"}),
        json!({"containers": [{"name": "c", "image": "nginx"}]}),
    );
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"selector": {"matchLabels": {"app": "x"}}, "template": template(json!({"app": "y"}), json!({"containers": [{"name": "c", "image": "nginx"}]}))}),
            r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"y"}: `selector` does not match template `labels`"#,
        ),
        (
            json!({"selector": {}, "template": ok_template.clone()}),
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment",
        ),
        (
            json!({"selector": {"matchLabels": {"app": "x"}}, "template": template(json!({"app": "x"}), json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": "nginx"}]}))}),
            r#"spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always""#,
        ),
        (
            json!({"replicas": -1, "selector": {"matchLabels": {"app": "x"}}, "template": ok_template.clone()}),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            json!({"selector": {"matchLabels": {"app": "x"}}, "template": ok_template.clone(), "strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}),
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0",
        ),
        (
            json!({"selector": {"matchLabels": {"app": "x"}}, "template": ok_template.clone(), "strategy": {"rollingUpdate": {"maxUnavailable": "120%"}}}),
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 120%: must not be greater than 100%",
        ),
        (
            json!({"selector": {"matchLabels": {"app": "x"}}, "template": ok_template.clone(), "strategy": {"type": "Recreate", "rollingUpdate": {}}}),
            "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
        ),
        (
            json!({"selector": {"matchLabels": {"app": "x"}}, "template": ok_template.clone(), "minReadySeconds": 700}),
            "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds",
        ),
        (
            json!({"selector": {"matchLabels": {"app": "x"}}, "template": template(json!({"app": "x"}), json!({"containers": [{"name": "c"}]}))}),
            "spec.template.spec.containers[0].image: Required value",
        ),
    ];
    for (spec, want) in cases {
        assert_has(&create_errors::<Deployment>(deployment(spec)), want);
    }
    assert!(create_errors::<Deployment>(deployment(
        json!({"selector": {"matchLabels": {"app": "x"}}, "template": ok_template})
    ))
    .is_empty());
}

#[test]
fn deployment_update_generation() {
    use k8s_openapi::api::apps::v1::Deployment;
    let spec = |img: &str| {
        deployment(
            json!({"selector": {"matchLabels": {"app": "x"}}, "template": template(json!({"app": "x"}), json!({"containers": [{"name": "c", "image": img}]}))}),
        )
    };
    let mut old: Deployment = obj(spec("a"));
    old.default();
    old.prepare_for_create();
    let mut same: Deployment = obj(spec("a"));
    same.default();
    same.prepare_for_update(&old);
    assert_eq!(same.metadata.generation, Some(1));
    let mut changed: Deployment = obj(spec("b"));
    changed.default();
    changed.prepare_for_update(&old);
    assert_eq!(changed.metadata.generation, Some(2));
}

// --------------------------------------------------------------- ReplicaSet

#[test]
fn replicaset_defaults_and_invalid() {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    let got = created::<ReplicaSet>(json!({
        "metadata": {"name": "r", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template(json!({"app": "x"}), json!({"containers": [{"name": "c", "image": "nginx"}]}))}
    }));
    assert_eq!(got["spec"]["replicas"], 1);
    assert_eq!(got["status"], json!({"replicas": 0}));
    let errs = create_errors::<ReplicaSet>(json!({
        "metadata": {"name": "r", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template(json!({"app": "x"}), json!({"activeDeadlineSeconds": 5, "containers": [{"name": "c", "image": "nginx"}]}))}
    }));
    assert_eq!(errs, vec!["spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported"]);
}

// -------------------------------------------------------------- StatefulSet

#[test]
fn statefulset_defaults() {
    let got = created::<k8s_openapi::api::apps::v1::StatefulSet>(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "serviceName": "web",
            "selector": {"matchLabels": {"app": "x"}},
            "template": template(json!({"app": "x"}), json!({"containers": [{"name": "c", "image": "nginx"}]}))
        }
    }));
    let want = json!({
        "metadata": {"name": "web", "namespace": "default", "generation": 1},
        "spec": {
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "podManagementPolicy": "OrderedReady",
            "replicas": 1,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": "x"}},
            "serviceName": "web",
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": defaulted_template_spec(json!([defaulted_container("c", "nginx", "Always")]))
            },
            "updateStrategy": {"rollingUpdate": {"partition": 0}, "type": "RollingUpdate"}
        },
        "status": {"availableReplicas": 0, "replicas": 0}
    });
    assert_eq!(got, want);
}

#[test]
fn statefulset_invalid() {
    use k8s_openapi::api::apps::v1::StatefulSet;
    let base = |extra: Value| {
        let mut spec = json!({"selector": {"matchLabels": {"app": "x"}}, "template": template(json!({"app": "x"}), json!({"containers": [{"name": "c", "image": "nginx"}]}))});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                s.insert(k.clone(), v.clone());
            }
        }
        json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    };
    assert_has(
        &create_errors::<StatefulSet>(base(json!({"podManagementPolicy": "Random"}))),
        r#"spec.podManagementPolicy: Invalid value: "Random": must be 'OrderedReady' or 'Parallel'"#,
    );
    assert_has(
        &create_errors::<StatefulSet>(base(
            json!({"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Keep"}}),
        )),
        r#"spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Unsupported value: "Keep": supported values: "Retain", "Delete""#,
    );
    assert_has(
        &create_errors::<StatefulSet>(base(json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": -1}}}))),
        "spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be greater than or equal to 0",
    );
    let errs = update_errors::<StatefulSet>(base(json!({})), base(json!({"serviceName": "other"})));
    assert_has(&errs, "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden");
    assert!(update_errors::<StatefulSet>(base(json!({})), base(json!({"replicas": 3}))).is_empty());
}

// ---------------------------------------------------------------- DaemonSet

#[test]
fn daemonset_defaults_and_invalid() {
    use k8s_openapi::api::apps::v1::DaemonSet;
    let ds = |labels: Value| json!({"metadata": {"name": "ds", "namespace": "kube-system"}, "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template(labels, json!({"containers": [{"name": "c", "image": "nginx"}]}))}});
    let got = created::<DaemonSet>(ds(json!({"app": "x"})));
    assert_eq!(
        got["metadata"]["annotations"],
        json!({"deprecated.daemonset.template.generation": "1"})
    );
    assert_eq!(
        got["spec"]["updateStrategy"],
        json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}, "type": "RollingUpdate"})
    );
    assert_eq!(got["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(
        got["status"],
        json!({"currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0})
    );
    assert_eq!(
        create_errors::<DaemonSet>(ds(json!({"app": "y"}))),
        vec![
            r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"y"}: `selector` does not match template `labels`"#
        ]
    );
    let mut bad = ds(json!({"app": "x"}));
    bad["spec"]["updateStrategy"] = json!({"rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}});
    assert_has(&create_errors::<DaemonSet>(bad), "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: may not be set when maxUnavailable is non-zero");
    // A template change bumps the template generation annotation.
    let mut old: DaemonSet = obj(ds(json!({"app": "x"})));
    old.default();
    old.prepare_for_create();
    let mut new: DaemonSet = obj(ds(json!({"app": "x"})));
    new.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("nginx:2".into());
    new.default();
    new.prepare_for_update(&old);
    assert_eq!(
        new.metadata.annotations.unwrap()["deprecated.daemonset.template.generation"],
        "2"
    );
    assert_eq!(new.metadata.generation, Some(2));
}

// ------------------------------------------------------- ControllerRevision

#[test]
fn controller_revision_invalid() {
    use k8s_openapi::api::apps::v1::ControllerRevision;
    let errs = create_errors::<ControllerRevision>(
        json!({"metadata": {"name": "r", "namespace": "default"}, "revision": -1}),
    );
    assert_eq!(
        errs,
        vec![
            "data: Required value: data is mandatory",
            "revision: Invalid value: -1: must be greater than or equal to 0"
        ]
    );
}

// --------------------------------------------------------------------- Job

fn job(spec: Value) -> Value {
    json!({"metadata": {"name": "j", "namespace": "default", "uid": "u1"}, "spec": spec})
}

#[test]
fn job_defaults() {
    let got = created::<k8s_openapi::api::batch::v1::Job>(job(json!({
        "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}
    })));
    let labels = json!({
        "batch.kubernetes.io/controller-uid": "u1",
        "batch.kubernetes.io/job-name": "j",
        "controller-uid": "u1",
        "job-name": "j"
    });
    let mut tspec = defaulted_template_spec(json!([defaulted_container("c", "busybox", "Always")]));
    tspec["restartPolicy"] = json!("Never");
    let want = json!({
        "metadata": {"name": "j", "namespace": "default", "uid": "u1", "generation": 1, "labels": labels},
        "spec": {
            "backoffLimit": 6,
            "completionMode": "NonIndexed",
            "completions": 1,
            "manualSelector": false,
            "parallelism": 1,
            "podReplacementPolicy": "TerminatingOrFailed",
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
            "suspend": false,
            "template": {"metadata": {"labels": labels}, "spec": tspec}
        },
        "status": {}
    });
    assert_eq!(got, want);
}

#[test]
fn job_invalid() {
    use k8s_openapi::api::batch::v1::Job;
    let c = json!([{"name": "c", "image": "busybox"}]);
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"template": {"spec": {"containers": c}}}),
            r#"spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never""#,
        ),
        (
            json!({"completionMode": "Indexed", "parallelism": 2, "template": {"spec": {"restartPolicy": "Never", "containers": c}}}),
            "spec.completions: Required value: when completion mode is Indexed",
        ),
        (
            json!({"parallelism": -1, "template": {"spec": {"restartPolicy": "Never", "containers": c}}}),
            "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            json!({"completionMode": "Sometimes", "template": {"spec": {"restartPolicy": "Never", "containers": c}}}),
            r#"spec.completionMode: Unsupported value: "Sometimes": supported values: "NonIndexed", "Indexed""#,
        ),
        (
            json!({"podReplacementPolicy": "Sometimes", "template": {"spec": {"restartPolicy": "Never", "containers": c}}}),
            r#"spec.podReplacementPolicy: Unsupported value: "Sometimes": supported values: "Failed", "TerminatingOrFailed""#,
        ),
        (
            json!({"backoffLimitPerIndex": 1, "template": {"spec": {"restartPolicy": "Never", "containers": c}}}),
            "spec.backoffLimitPerIndex: Forbidden: requires indexed completion mode",
        ),
    ];
    for (spec, want) in cases {
        assert_has(&create_errors::<Job>(job(spec)), want);
    }
    assert!(create_errors::<Job>(job(
        json!({"template": {"spec": {"restartPolicy": "Never", "containers": c}}})
    ))
    .is_empty());
    let ok = job(json!({"template": {"spec": {"restartPolicy": "Never", "containers": c}}}));
    let mut changed = ok.clone();
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("other");
    let errs = update_errors::<Job>(ok.clone(), changed);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("spec.template: Invalid value: ")
                && e.ends_with(": field is immutable")),
        "{errs:?}"
    );
}

// ------------------------------------------------------------------ CronJob

fn cronjob(spec: Value) -> Value {
    json!({"metadata": {"name": "cj", "namespace": "default"}, "spec": spec})
}

#[test]
fn cronjob_defaults() {
    let got = created::<k8s_openapi::api::batch::v1::CronJob>(cronjob(json!({
        "schedule": "*/5 * * * *",
        "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}
    })));
    let mut tspec = defaulted_template_spec(json!([defaulted_container("c", "busybox", "Always")]));
    tspec["restartPolicy"] = json!("OnFailure");
    let want = json!({
        "metadata": {"name": "cj", "namespace": "default", "generation": 1},
        "spec": {
            "concurrencyPolicy": "Allow",
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {"spec": {"template": {"spec": tspec}}},
            "schedule": "*/5 * * * *",
            "successfulJobsHistoryLimit": 3,
            "suspend": false
        },
        "status": {}
    });
    assert_eq!(got, want);
}

#[test]
fn cronjob_invalid() {
    use k8s_openapi::api::batch::v1::CronJob;
    let jt = json!({"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}});
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"schedule": "* * * *", "jobTemplate": jt}),
            r#"spec.schedule: Invalid value: "* * * *": expected exactly 5 fields, found 4: [* * * *]"#,
        ),
        (
            json!({"schedule": "TZ=UTC 0 * * * *", "jobTemplate": jt}),
            r#"spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"#,
        ),
        (
            json!({"schedule": "@hourly", "timeZone": "Mars/Base", "jobTemplate": jt}),
            r#"spec.timeZone: Invalid value: "Mars/Base": unknown time zone Mars/Base"#,
        ),
        (
            json!({"schedule": "@daily", "timeZone": "Local", "jobTemplate": jt}),
            r#"spec.timeZone: Invalid value: "Local": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"#,
        ),
        (
            json!({"schedule": "@daily", "concurrencyPolicy": "Sometimes", "jobTemplate": jt}),
            r#"spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace""#,
        ),
        (
            json!({"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}}),
            r#"spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never""#,
        ),
        (
            json!({"schedule": "", "jobTemplate": jt}),
            "spec.schedule: Required value",
        ),
    ];
    for (spec, want) in cases {
        assert_has(&create_errors::<CronJob>(cronjob(spec)), want);
    }
    for ok in ["@hourly", "0 0 * * 0", "*/15 9-17 * * mon-fri"] {
        assert!(
            create_errors::<CronJob>(cronjob(
                json!({"schedule": ok, "timeZone": "Europe/Paris", "jobTemplate": jt})
            ))
            .is_empty(),
            "{ok}"
        );
    }
    let long = "a".repeat(53);
    assert_has(
        &create_errors::<CronJob>(
            json!({"metadata": {"name": long, "namespace": "default"}, "spec": {"schedule": "@daily", "jobTemplate": jt}}),
        ),
        &format!(r#"metadata.name: Invalid value: "{long}": must be no more than 52 characters"#),
    );
}

// ------------------------------------------------------------------ Service

fn service(spec: Value) -> Value {
    json!({"metadata": {"name": "s", "namespace": "default"}, "spec": spec})
}

#[test]
fn service_defaults() {
    let got = created::<k8s_openapi::api::core::v1::Service>(service(
        json!({"selector": {"app": "x"}, "ports": [{"port": 80}]}),
    ));
    let want = json!({
        "metadata": {"name": "s", "namespace": "default"},
        "spec": {
            "internalTrafficPolicy": "Cluster",
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
            "selector": {"app": "x"},
            "sessionAffinity": "None",
            "type": "ClusterIP"
        },
        "status": {"loadBalancer": {}}
    });
    assert_eq!(got, want);
    let lb = created::<k8s_openapi::api::core::v1::Service>(service(
        json!({"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 80, "targetPort": "http"}]}),
    ));
    assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
    assert_eq!(
        lb["spec"]["sessionAffinityConfig"],
        json!({"clientIP": {"timeoutSeconds": 10800}})
    );
    assert_eq!(lb["spec"]["ports"][0]["targetPort"], "http");
}

#[test]
fn service_invalid() {
    use k8s_openapi::api::core::v1::Service;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"selector": {"app": "x"}}), "spec.ports: Required value"),
        (
            json!({"type": "Foo", "ports": [{"port": 80}]}),
            r#"spec.type: Unsupported value: "Foo": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort""#,
        ),
        (
            json!({"ports": [{"port": 80, "nodePort": 30080}]}),
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
        ),
        (
            json!({"ports": [{"port": 80}, {"port": 80}]}),
            r#"spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}"#,
        ),
        (json!({"ports": [{"port": 80}, {"port": 81}]}), "spec.ports[0].name: Required value"),
        (json!({"ports": [{"port": 0}]}), "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"),
        (json!({"type": "ExternalName"}), "spec.externalName: Required value"),
        (
            json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}, "ports": [{"port": 80}]}),
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be greater than 0 and less than 86400",
        ),
        (
            json!({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.2"], "ports": [{"port": 80}]}),
            r#"spec.clusterIPs: Invalid value: []string{"10.0.0.2"}: first value must match `clusterIP`"#,
        ),
        (
            json!({"externalIPs": ["127.0.0.1"], "ports": [{"port": 80}]}),
            r#"spec.externalIPs[0]: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)"#,
        ),
        (
            json!({"externalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
            r#"spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services"#,
        ),
        (
            json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}),
            r#"spec.clusterIPs[0]: Invalid value: "None": may not be set to 'None' for NodePort services"#,
        ),
        (
            json!({"loadBalancerSourceRanges": ["10.0.0.0/8"], "ports": [{"port": 80}]}),
            "spec.LoadBalancerSourceRanges: Forbidden: may only be used when `type` is 'LoadBalancer'",
        ),
    ];
    for (spec, want) in cases {
        assert_has(&create_errors::<Service>(service(spec)), want);
    }
    // clusterIP is immutable once allocated.
    let errs = update_errors::<Service>(
        service(json!({"clusterIP": "10.0.0.1", "ports": [{"port": 80}]})),
        service(json!({"clusterIP": "10.0.0.2", "ports": [{"port": 80}]})),
    );
    assert_has(
        &errs,
        r#"spec.clusterIPs[0]: Invalid value: []string{"10.0.0.2"}: may not change once set"#,
    );
    // An update that omits the clusterIP keeps the allocated one.
    assert!(update_errors::<Service>(
        service(json!({"clusterIP": "10.0.0.1", "ports": [{"port": 80}]})),
        service(json!({"ports": [{"port": 80}]})),
    )
    .is_empty());
}

// ---------------------------------------------------- Namespace and friends

#[test]
fn namespace_rules() {
    use k8s_openapi::api::core::v1::Namespace;
    let got = created::<Namespace>(json!({"metadata": {"name": "team"}}));
    assert_eq!(
        got,
        json!({
            "metadata": {"name": "team", "labels": {"kubernetes.io/metadata.name": "team"}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"}
        })
    );
    let mut ns: Namespace =
        obj(json!({"metadata": {"name": "team"}, "status": {"phase": "Terminating"}}));
    ns.default();
    assert_eq!(
        msgs(ns.validate_status_update(&ns.clone())),
        vec![
            r#"status.Phase: Invalid value: "Terminating": may only be 'Active' if `deletionTimestamp` is empty"#
        ]
    );
    assert_eq!(
        create_errors::<Namespace>(
            json!({"metadata": {"name": "team"}, "spec": {"finalizers": ["bogus"]}})
        ),
        vec![
            r#"spec.finalizers: Invalid value: "bogus": name is neither a standard finalizer name nor is it fully qualified"#
        ]
    );
}

#[test]
fn configmap_and_secret() {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    assert_eq!(
        create_errors::<ConfigMap>(
            json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"a b": "x"}})
        ),
        vec![
            r#"data[a b]: Invalid value: "a b": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"#
        ]
    );
    let big = "x".repeat(1024 * 1024 + 1);
    assert_eq!(
        create_errors::<ConfigMap>(
            json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"k": big}})
        ),
        vec!["[]: Too long: may not be more than 1048576 bytes"]
    );
    let got = created::<Secret>(
        json!({"metadata": {"name": "s", "namespace": "d"}, "stringData": {"a": "hi"}}),
    );
    assert_eq!(
        got,
        json!({"metadata": {"name": "s", "namespace": "d"}, "data": {"a": "aGk="}, "type": "Opaque"})
    );
    assert_eq!(
        create_errors::<Secret>(
            json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls", "data": {"tls.crt": ""}})
        ),
        vec!["data[tls.key]: Required value"]
    );
    assert_eq!(
        create_errors::<Secret>(
            json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "bm90IGpzb24="}})
        ),
        vec![
            r#"data[.dockerconfigjson]: Invalid value: "<secret contents redacted>": invalid character 'o' in literal null (expecting 'u')"#
        ]
    );
    assert_eq!(
        create_errors::<Secret>(
            json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/service-account-token"})
        ),
        vec!["metadata.annotations[kubernetes.io/service-account.name]: Required value"]
    );
    assert_eq!(
        create_errors::<Secret>(
            json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/basic-auth"})
        ),
        vec![
            "data[username]: Required value",
            "data[password]: Required value"
        ]
    );
    let mut big: Secret = obj(json!({"metadata": {"name": "s", "namespace": "d"}}));
    big.data = Some(
        [(
            "k".to_string(),
            k8s_openapi::ByteString(vec![b'x'; 1024 * 1024 + 1]),
        )]
        .into_iter()
        .collect(),
    );
    big.default();
    assert_eq!(
        msgs(big.validate()),
        vec!["data: Too long: may not be more than 1048576 bytes"]
    );
    let errs = update_errors::<Secret>(
        json!({"metadata": {"name": "s", "namespace": "d"}}),
        json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/basic-auth", "data": {"username": ""}}),
    );
    assert_eq!(
        errs,
        vec![r#"type: Invalid value: "kubernetes.io/basic-auth": field is immutable"#]
    );
    let errs = update_errors::<ConfigMap>(
        json!({"metadata": {"name": "c", "namespace": "d"}, "immutable": true, "data": {"a": "1"}}),
        json!({"metadata": {"name": "c", "namespace": "d"}, "immutable": true, "data": {"a": "2"}}),
    );
    assert_eq!(
        errs,
        vec!["data: Forbidden: field is immutable when `immutable` is set"]
    );
}

#[test]
fn replication_controller_rules() {
    use k8s_openapi::api::core::v1::ReplicationController;
    let got = created::<ReplicationController>(json!({
        "metadata": {"name": "rc", "namespace": "d"},
        "spec": {"template": template(json!({"app": "x"}), json!({"containers": [{"name": "c", "image": "nginx"}]}))}
    }));
    assert_eq!(got["metadata"]["labels"], json!({"app": "x"}));
    assert_eq!(got["spec"]["selector"], json!({"app": "x"}));
    assert_eq!(got["spec"]["replicas"], 1);
    assert_eq!(got["status"], json!({"replicas": 0}));
    assert_has(
        &create_errors::<ReplicationController>(json!({
            "metadata": {"name": "rc", "namespace": "d"},
            "spec": {"selector": {"app": "y"}, "template": template(json!({"app": "x"}), json!({"containers": [{"name": "c", "image": "nginx"}]}))}
        })),
        r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: `selector` does not match template `labels`"#,
    );
}

#[test]
fn limit_range_rules() {
    use k8s_openapi::api::core::v1::LimitRange;
    let got = created::<LimitRange>(json!({
        "metadata": {"name": "l", "namespace": "d"},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}}]}
    }));
    assert_eq!(
        got["spec"]["limits"][0],
        json!({"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}, "default": {"cpu": "2"}, "defaultRequest": {"cpu": "2", "memory": "64Mi"}})
    );
    assert_has(
        &create_errors::<LimitRange>(
            json!({"metadata": {"name": "l", "namespace": "d"}, "spec": {"limits": [{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}]}}),
        ),
        "spec.limits[0].min[cpu]: Invalid value: 2: min value 2 is greater than max value 1",
    );
}

#[test]
fn resource_quota_rules() {
    use k8s_openapi::api::core::v1::ResourceQuota;
    assert_eq!(
        create_errors::<ResourceQuota>(
            json!({"metadata": {"name": "q", "namespace": "d"}, "spec": {"hard": {"pods": "1500m"}}})
        ),
        vec!["spec.hard[pods]: Invalid value: 1500m: must be an integer"]
    );
    assert_eq!(
        create_errors::<ResourceQuota>(
            json!({"metadata": {"name": "q", "namespace": "d"}, "spec": {"hard": {"foo": "1"}}})
        ),
        vec![
            r#"spec.hard[foo]: Invalid value: "foo": must be a standard resource type or fully qualified"#,
            r#"spec.hard[foo]: Invalid value: "foo": must be a standard resource for quota"#
        ]
    );
}

#[test]
fn endpoints_and_events() {
    use k8s_openapi::api::core::v1::{Endpoints, Event};
    let got = created::<Endpoints>(
        json!({"metadata": {"name": "e", "namespace": "d"}, "subsets": [{"addresses": [{"ip": "10.1.2.3"}], "ports": [{"port": 80}]}]}),
    );
    assert_eq!(
        got["subsets"][0]["ports"],
        json!([{"port": 80, "protocol": "TCP"}])
    );
    assert_eq!(
        create_errors::<Endpoints>(
            json!({"metadata": {"name": "e", "namespace": "d"}, "subsets": [{"ports": [{"port": 80}]}]})
        ),
        vec!["subsets[0]: Required value: must specify `addresses` or `notReadyAddresses`"]
    );
    assert_eq!(
        create_errors::<Event>(
            json!({"metadata": {"name": "e", "namespace": "d"}, "involvedObject": {"kind": "Pod", "namespace": "other"}})
        ),
        vec![r#"involvedObject.namespace: Invalid value: "other": does not match event.namespace"#]
    );
}

#[test]
fn node_rules() {
    use k8s_openapi::api::core::v1::Node;
    let got = created::<Node>(
        json!({"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "4", "memory": "8Gi"}}}),
    );
    assert_eq!(
        got["status"]["allocatable"],
        json!({"cpu": "4", "memory": "8Gi"})
    );
    assert_eq!(
        create_errors::<Node>(
            json!({"metadata": {"name": "n"}, "spec": {"taints": [{"key": "k", "effect": "Sometimes"}]}})
        ),
        vec![
            r#"metadata.taints[0].effect: Unsupported value: "Sometimes": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute""#
        ]
    );
    let errs = update_errors::<Node>(
        json!({"metadata": {"name": "n"}, "spec": {"podCIDRs": ["10.0.0.0/24"]}}),
        json!({"metadata": {"name": "n"}, "spec": {"podCIDRs": ["10.0.1.0/24"]}}),
    );
    assert_eq!(
        errs,
        vec![
            r#"spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid"#
        ]
    );
}

// ------------------------------------------------------------------ Storage

#[test]
fn pv_and_pvc() {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    let pvc = created::<PersistentVolumeClaim>(json!({
        "metadata": {"name": "c", "namespace": "d"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    }));
    assert_eq!(
        pvc,
        json!({
            "metadata": {"name": "c", "namespace": "d"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "volumeMode": "Filesystem"},
            "status": {"phase": "Pending"}
        })
    );
    assert_eq!(
        create_errors::<PersistentVolumeClaim>(
            json!({"metadata": {"name": "c", "namespace": "d"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}})
        ),
        vec!["spec.accessModes: Required value: at least 1 access mode is required"]
    );
    assert_eq!(
        create_errors::<PersistentVolumeClaim>(
            json!({"metadata": {"name": "c", "namespace": "d"}, "spec": {"accessModes": ["ReadWriteOnce"]}})
        ),
        vec!["spec.resources[storage]: Required value"]
    );
    let pv = created::<PersistentVolume>(json!({
        "metadata": {"name": "v"},
        "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}, "hostPath": {"path": "/data"}}
    }));
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
    assert_eq!(pv["spec"]["hostPath"], json!({"path": "/data", "type": ""}));
    assert_eq!(pv["status"]["phase"], "Pending");
    assert_eq!(
        create_errors::<PersistentVolume>(
            json!({"metadata": {"name": "v"}, "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}})
        ),
        vec!["spec: Required value: must specify a volume type"]
    );
    let errs = update_errors::<PersistentVolumeClaim>(
        json!({"metadata": {"name": "c", "namespace": "d"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        json!({"metadata": {"name": "c", "namespace": "d"}, "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}}),
    );
    assert!(errs[0].starts_with("spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n"), "{errs:?}");
}

#[test]
fn storage_class_rules() {
    use k8s_openapi::api::storage::v1::StorageClass;
    let got = created::<StorageClass>(
        json!({"metadata": {"name": "fast"}, "provisioner": "example.com/fast"}),
    );
    assert_eq!(
        got,
        json!({"metadata": {"name": "fast"}, "provisioner": "example.com/fast", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"})
    );
    assert_eq!(
        create_errors::<StorageClass>(
            json!({"metadata": {"name": "fast"}, "provisioner": "example.com/fast", "reclaimPolicy": "Recycle"})
        ),
        vec![
            r#"reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain""#
        ]
    );
    let errs = update_errors::<StorageClass>(
        json!({"metadata": {"name": "fast"}, "provisioner": "example.com/fast"}),
        json!({"metadata": {"name": "fast"}, "provisioner": "example.com/slow"}),
    );
    assert_eq!(
        errs,
        vec!["provisioner: Forbidden: updates to provisioner are forbidden."]
    );
}

// -------------------------------------------------------------- The rest

#[test]
fn lease_rules() {
    use k8s_openapi::api::coordination::v1::Lease;
    assert_eq!(
        create_errors::<Lease>(
            json!({"metadata": {"name": "l", "namespace": "d"}, "spec": {"leaseDurationSeconds": 0}})
        ),
        vec!["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]
    );
}

#[test]
fn endpoint_slice_rules() {
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let got = created::<EndpointSlice>(
        json!({"metadata": {"name": "e", "namespace": "d"}, "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]}),
    );
    assert_eq!(
        got["ports"],
        json!([{"name": "", "port": 80, "protocol": "TCP"}])
    );
    assert_eq!(
        create_errors::<EndpointSlice>(
            json!({"metadata": {"name": "e", "namespace": "d"}, "addressType": "IPv4", "endpoints": [{"addresses": ["::1"]}]})
        ),
        vec![r#"endpoints[0].addresses[0]: Invalid value: "::1": must be a valid IPv4 address"#]
    );
}

#[test]
fn pdb_rules() {
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    let got = created::<PodDisruptionBudget>(
        json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"minAvailable": 1}}),
    );
    assert_eq!(
        got["status"],
        json!({"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0})
    );
    assert_eq!(
        create_errors::<PodDisruptionBudget>(
            json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"minAvailable": "150%"}})
        ),
        vec!["spec.minAvailable: Invalid value: 150%: must not be greater than 100%"]
    );
}

#[test]
fn hpa_rules() {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    let got = created::<HorizontalPodAutoscaler>(json!({
        "metadata": {"name": "h", "namespace": "d"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5, "behavior": {}}
    }));
    assert_eq!(got["spec"]["minReplicas"], 1);
    assert_eq!(
        got["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
    );
    assert_eq!(
        got["spec"]["behavior"],
        json!({
            "scaleDown": {"policies": [{"periodSeconds": 15, "type": "Percent", "value": 100}], "selectPolicy": "Max", "stabilizationWindowSeconds": 300},
            "scaleUp": {"policies": [{"periodSeconds": 15, "type": "Pods", "value": 4}, {"periodSeconds": 15, "type": "Percent", "value": 100}], "selectPolicy": "Max", "stabilizationWindowSeconds": 0}
        })
    );
    assert_eq!(
        create_errors::<HorizontalPodAutoscaler>(json!({
            "metadata": {"name": "h", "namespace": "d"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 3, "maxReplicas": 2}
        })),
        vec!["spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"]
    );
}

#[test]
fn ingress_rules() {
    use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
    assert_eq!(
        create_errors::<Ingress>(json!({"metadata": {"name": "i", "namespace": "d"}, "spec": {}})),
        vec!["spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"]
    );
    let errs = create_errors::<Ingress>(json!({
        "metadata": {"name": "i", "namespace": "d"},
        "spec": {"rules": [{"host": "1.2.3.4", "http": {"paths": [{"path": "api", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
    }));
    assert_has(
        &errs,
        r#"spec.rules[0].host: Invalid value: "1.2.3.4": must be a DNS name, not an IP address"#,
    );
    assert_has(
        &errs,
        r#"spec.rules[0].http.paths[0].path: Invalid value: "api": must be an absolute path"#,
    );
    let got = created::<IngressClass>(
        json!({"metadata": {"name": "c"}, "spec": {"controller": "example.com/ingress", "parameters": {"kind": "Config", "name": "x"}}}),
    );
    assert_eq!(got["spec"]["parameters"]["scope"], "Cluster");
    assert_eq!(
        create_errors::<IngressClass>(
            json!({"metadata": {"name": "c"}, "spec": {"controller": "nginx"}})
        ),
        vec![
            r#"spec.controller: Invalid value: "nginx": must be a domain-prefixed path (such as "acme.io/foo")"#
        ]
    );
}

#[test]
fn network_policy_rules() {
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    let got = created::<NetworkPolicy>(json!({
        "metadata": {"name": "n", "namespace": "d"},
        "spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}
    }));
    assert_eq!(got["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        got["spec"]["egress"][0]["ports"],
        json!([{"port": 53, "protocol": "TCP"}])
    );
    assert_eq!(
        create_errors::<NetworkPolicy>(json!({
            "metadata": {"name": "n", "namespace": "d"},
            "spec": {"podSelector": {}, "ingress": [{"from": [{}]}]}
        })),
        vec!["spec.ingress[0].from[0]: Required value: must specify a peer"]
    );
}

#[test]
fn with_meta_helper() {
    let v = with_meta(json!({"name": "x"}), json!({"spec": {}}));
    assert_eq!(v, json!({"metadata": {"name": "x"}, "spec": {}}));
}
