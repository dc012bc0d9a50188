//! Server-side apply and managed fields scenarios modelled on upstream's
//! behaviour with a Deployment-like schema.

use serde_json::{json, Value};

use super::*;
use crate::schema::{Field, ListType, StructDef, TypeGraph, TypeId};

const T0: &str = "2024-05-01T10:00:00Z";
const T1: &str = "2024-05-01T10:01:00Z";
const T2: &str = "2024-05-01T10:02:00Z";
const T3: &str = "2024-05-01T10:03:00Z";

fn graph() -> (TypeGraph, TypeId) {
    let mut g = TypeGraph::new();
    let strings = g.map(TypeId::SCALAR);
    let meta = g.add_struct(
        "ObjectMeta",
        StructDef::new()
            .scalar("name")
            .scalar("namespace")
            .scalar("uid")
            .scalar("resourceVersion")
            .scalar("generation")
            .field("creationTimestamp", Field::new(TypeId::SCALAR).in_zero())
            .field("labels", strings)
            .field("annotations", strings)
            .field("managedFields", TypeId::UNTYPED_ATOMIC),
    );
    let selector = g.add_struct(
        "LabelSelector",
        StructDef::new().field("matchLabels", strings).atomic(),
    );
    let port = g.add_struct(
        "ContainerPort",
        StructDef::new().scalar("containerPort").field(
            "protocol",
            Field::new(TypeId::SCALAR).default_value(json!("TCP")),
        ),
    );
    let ports = g.list(port, ListType::map(["containerPort", "protocol"]));
    let container = g.add_struct(
        "Container",
        StructDef::new().scalar("name").scalar("image").field(
            "ports",
            Field::new(ports)
                .strategy("merge")
                .merge_key("containerPort"),
        ),
    );
    let containers = g.list(container, ListType::map(["name"]));
    let pod_spec = g.add_struct(
        "PodSpec",
        StructDef::new().field(
            "containers",
            Field::new(containers)
                .strategy("merge")
                .merge_key("name")
                .in_zero(),
        ),
    );
    let template = g.add_struct(
        "PodTemplateSpec",
        StructDef::new()
            .field("metadata", Field::new(meta).in_zero())
            .field("spec", Field::new(pod_spec).in_zero()),
    );
    let spec = g.add_struct(
        "DeploymentSpec",
        StructDef::new()
            .scalar("replicas")
            .scalar("paused")
            .field("selector", Field::new(selector).in_zero())
            .field("template", Field::new(template).in_zero()),
    );
    let status = g.add_struct(
        "DeploymentStatus",
        StructDef::new().scalar("replicas").scalar("readyReplicas"),
    );
    let root = g.add_struct(
        "Deployment",
        StructDef::new()
            .scalar("apiVersion")
            .scalar("kind")
            .field("metadata", Field::new(meta).in_zero())
            .field("spec", Field::new(spec).in_zero())
            .field("status", Field::new(status).in_zero()),
    );
    (g, root)
}

fn deployment(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": image}]}
            }
        }
    })
}

/// The object as stored after a create: server fields added.
fn stored(mut obj: Value) -> Value {
    let meta = obj["metadata"].as_object_mut().unwrap();
    meta.insert("uid".into(), json!("0b5e3c1e"));
    meta.insert("resourceVersion".into(), json!("1"));
    meta.insert("creationTimestamp".into(), json!(T0));
    obj
}

fn fields_of(mf: &ManagedFields, manager: &str, op: Operation) -> String {
    mf.get(manager, op, "")
        .map(|e| e.fields_v1.to_fields_v1())
        .unwrap_or_default()
}

fn managers_of(mf: &ManagedFields) -> Vec<(String, Operation)> {
    mf.entries
        .iter()
        .map(|e| (e.manager.clone(), e.operation))
        .collect()
}

const CREATED_FIELDS: &str = concat!(
    r#"{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"#,
    r#""f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"#,
    r#""f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#
);

#[test]
fn create_assigns_all_fields_to_the_creator() {
    let (g, root) = graph();
    let obj = deployment(3, "nginx:1.25");
    let mf = update(
        &Value::Null,
        &obj,
        "kubectl-create",
        "",
        &ManagedFields::new(),
        &g,
        root,
        T0,
    );
    assert_eq!(mf.entries.len(), 1);
    let e = &mf.entries[0];
    assert_eq!(e.manager, "kubectl-create");
    assert_eq!(e.operation, Operation::Update);
    assert_eq!(e.api_version, "apps/v1");
    assert_eq!(e.time.as_deref(), Some(T0));
    assert_eq!(e.fields_v1.to_fields_v1(), CREATED_FIELDS);
    assert_eq!(
        mf.to_json(),
        format!(
            r#"[{{"manager":"kubectl-create","operation":"Update","apiVersion":"apps/v1","time":"{}","fieldsType":"FieldsV1","fieldsV1":{}}}]"#,
            T0, CREATED_FIELDS
        )
    );
}

#[test]
fn updates_take_changed_fields_and_merge_with_previous_entry() {
    let (g, root) = graph();
    let created = stored(deployment(3, "nginx:1"));
    let mf = update(
        &Value::Null,
        &created,
        "kubectl-create",
        "",
        &ManagedFields::new(),
        &g,
        root,
        T0,
    );

    // `kubectl edit` changes the image: it takes the image away from the
    // creator.
    let edited = stored(deployment(3, "nginx:2"));
    let mf = update(&created, &edited, "kubectl-edit", "", &mf, &g, root, T1);
    assert_eq!(
        fields_of(&mf, "kubectl-edit", Operation::Update),
        r#"{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{"f:image":{}}}}}}}"#
    );
    assert!(!fields_of(&mf, "kubectl-create", Operation::Update).contains("f:image"));
    assert_eq!(
        managers_of(&mf),
        vec![
            ("kubectl-create".to_string(), Operation::Update),
            ("kubectl-edit".to_string(), Operation::Update)
        ]
    );

    // A second edit by the same manager is merged into its entry and moves
    // its time.
    let mut edited2 = edited.clone();
    edited2["spec"]["paused"] = json!(true);
    let mf = update(&edited, &edited2, "kubectl-edit", "", &mf, &g, root, T2);
    let e = mf.get("kubectl-edit", Operation::Update, "").unwrap();
    assert_eq!(
        e.fields_v1.to_fields_v1(),
        r#"{"f:spec":{"f:paused":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{"f:image":{}}}}}}}"#
    );
    assert_eq!(e.time.as_deref(), Some(T2));

    // A write that changes nothing leaves everything alone.
    let same = update(&edited2, &edited2, "other", "", &mf, &g, root, T3);
    assert_eq!(same, mf);

    // Removing a field removes it from its owner; an owner left with
    // nothing disappears.
    let mut unpaused = edited2.clone();
    unpaused["spec"].as_object_mut().unwrap().remove("paused");
    unpaused["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1");
    let mf = update(&edited2, &unpaused, "kubectl-create", "", &mf, &g, root, T3);
    assert_eq!(
        managers_of(&mf),
        vec![("kubectl-create".to_string(), Operation::Update)]
    );
    assert_eq!(
        fields_of(&mf, "kubectl-create", Operation::Update),
        CREATED_FIELDS
    );
}

#[test]
fn update_of_unmanaged_object_is_not_tracked() {
    let (g, root) = graph();
    let live = stored(deployment(3, "nginx:1"));
    let new = stored(deployment(4, "nginx:1"));
    let mf = update(
        &live,
        &new,
        "kubectl",
        "",
        &ManagedFields::new(),
        &g,
        root,
        T1,
    );
    assert!(mf.is_empty());
}

#[test]
fn metadata_identity_fields_are_never_owned() {
    let (g, root) = graph();
    let live = stored(deployment(3, "nginx:1"));
    let mf = update(
        &Value::Null,
        &live,
        "creator",
        "",
        &ManagedFields::new(),
        &g,
        root,
        T0,
    );
    let mut new = live.clone();
    new["metadata"]["resourceVersion"] = json!("2");
    new["metadata"]["generation"] = json!(2);
    let after = update(&live, &new, "controller", "", &mf, &g, root, T1);
    assert_eq!(after, mf);
}

#[test]
fn apply_creates_and_round_trips_managed_fields() {
    let (g, root) = graph();
    let cfg = deployment(3, "nginx:1");
    let (obj, mf) = apply(
        &Value::Null,
        &cfg,
        "kubectl",
        false,
        &ManagedFields::new(),
        &g,
        root,
        T0,
    )
    .unwrap();
    let mut expected = cfg.clone();
    expected["metadata"]["managedFields"] = mf.to_value();
    assert_eq!(obj, expected);
    assert_eq!(
        mf.to_json(),
        concat!(
            r#"[{"manager":"kubectl","operation":"Apply","apiVersion":"apps/v1","time":"2024-05-01T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":"#,
            r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"#,
            r#""f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{}}}}}}}}]"#
        )
    );
    // What was written can be read back from the object.
    assert_eq!(ManagedFields::from_object(&obj).unwrap(), mf);
    assert_eq!(ManagedFields::parse(&mf.to_value()).unwrap(), mf);

    // Applying the same configuration again changes nothing, not even the
    // time.
    let live = stored(obj);
    let (again, mf2) = apply(&live, &cfg, "kubectl", false, &mf, &g, root, T1).unwrap();
    assert_eq!(mf2, mf);
    assert_eq!(again, live);
}

#[test]
fn two_appliers_share_agree_conflict_and_force() {
    let (g, root) = graph();
    let cfg_a = deployment(3, "nginx:1");
    let (obj, mf) = apply(
        &Value::Null,
        &cfg_a,
        "a",
        false,
        &ManagedFields::new(),
        &g,
        root,
        T0,
    )
    .unwrap();
    let live = stored(obj);

    // B applies the same replicas: no conflict, both own the field.
    let cfg_b = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                       "metadata": {"name": "web", "namespace": "default"},
                       "spec": {"replicas": 3}});
    let (obj, mf) = apply(&live, &cfg_b, "b", false, &mf, &g, root, T1).unwrap();
    assert_eq!(
        fields_of(&mf, "b", Operation::Apply),
        r#"{"f:spec":{"f:replicas":{}}}"#
    );
    assert!(fields_of(&mf, "a", Operation::Apply).contains("f:replicas"));
    // The object did not change, so B's entry has no time.
    assert_eq!(mf.get("b", Operation::Apply, "").unwrap().time, None);
    let live = obj;

    // B wants 5 replicas: conflict with A.
    let cfg_b5 = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "web", "namespace": "default"},
                        "spec": {"replicas": 5}});
    let err = apply(&live, &cfg_b5, "b", false, &mf, &g, root, T2).unwrap_err();
    assert_eq!(err.status_code(), 409);
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"a\": .spec.replicas"
    );
    let ApplyError::Conflicts(cs) = &err else {
        panic!("expected conflicts")
    };
    assert_eq!(
        conflict_causes(cs),
        vec![
            json!({"reason": "FieldManagerConflict", "message": "conflict with \"a\"",
                    "field": ".spec.replicas"})
        ]
    );

    // Forced, B takes the field over.
    let (obj, mf) = apply(&live, &cfg_b5, "b", true, &mf, &g, root, T2).unwrap();
    assert_eq!(obj["spec"]["replicas"], json!(5));
    assert!(!fields_of(&mf, "a", Operation::Apply).contains("f:replicas"));
    assert_eq!(
        fields_of(&mf, "b", Operation::Apply),
        r#"{"f:spec":{"f:replicas":{}}}"#
    );
    assert_eq!(
        mf.get("b", Operation::Apply, "").unwrap().time.as_deref(),
        Some(T2)
    );
    // A now conflicts with B when it re-applies its old value.
    let err = apply(&obj, &cfg_a, "a", false, &mf, &g, root, T3).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"b\": .spec.replicas"
    );
}

#[test]
fn scale_then_apply_conflicts() {
    let (g, root) = graph();
    let cfg = deployment(3, "nginx:1");
    let (obj, mf) = apply(
        &Value::Null,
        &cfg,
        "kubectl",
        false,
        &ManagedFields::new(),
        &g,
        root,
        T0,
    )
    .unwrap();
    let live = stored(obj);
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    let mf = update(
        &live,
        &scaled,
        "kubectl-client-side-apply",
        "",
        &mf,
        &g,
        root,
        T1,
    );
    assert_eq!(
        fields_of(&mf, "kubectl-client-side-apply", Operation::Update),
        r#"{"f:spec":{"f:replicas":{}}}"#
    );
    assert!(!fields_of(&mf, "kubectl", Operation::Apply).contains("f:replicas"));
    scaled["metadata"]["managedFields"] = mf.to_value();

    let err = apply(&scaled, &cfg, "kubectl", false, &mf, &g, root, T2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
    let ApplyError::Conflicts(cs) = err else {
        panic!("expected conflicts")
    };
    assert_eq!(
        conflict_status(&cs),
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas",
            "reason": "Conflict",
            "details": {"causes": [{"reason": "FieldManagerConflict",
                "message": "conflict with \"kubectl-client-side-apply\" using apps/v1",
                "field": ".spec.replicas"}]},
            "code": 409
        })
    );
}

#[test]
fn update_conflicts_on_list_item_fields() {
    let (g, root) = graph();
    let cfg = deployment(3, "nginx:1");
    let (obj, mf) = apply(
        &Value::Null,
        &cfg,
        "applier",
        false,
        &ManagedFields::new(),
        &g,
        root,
        T0,
    )
    .unwrap();
    let live = stored(obj);
    let edited = {
        let mut e = live.clone();
        e["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        e
    };
    let mf = update(&live, &edited, "kubectl-edit", "", &mf, &g, root, T1);
    let mut cfg2 = cfg.clone();
    cfg2["spec"]["replicas"] = json!(4);
    let err = apply(&edited, &cfg2, "applier", false, &mf, &g, root, T2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: .spec.template.spec.containers[name=\"nginx\"].image"
    );
}

#[test]
fn applier_dropping_fields_removes_them_unless_owned_elsewhere() {
    let (g, root) = graph();
    let mut cfg = deployment(3, "nginx:1");
    cfg["metadata"]["labels"] = json!({"app": "web", "tier": "front", "team": "x"});
    let (obj, mf) = apply(
        &Value::Null,
        &cfg,
        "a",
        false,
        &ManagedFields::new(),
        &g,
        root,
        T0,
    )
    .unwrap();
    let live = stored(obj);

    // B applies the team label too (same value: shared ownership); an
    // updater adds its own label.
    let cfg_b = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                       "metadata": {"name": "web", "namespace": "default", "labels": {"team": "x"}}});
    let (live, mf) = apply(&live, &cfg_b, "b", false, &mf, &g, root, T1).unwrap();
    let mut labelled = live.clone();
    labelled["metadata"]["labels"]["env"] = json!("prod");
    let mf = update(&live, &labelled, "kubectl-label", "", &mf, &g, root, T1);
    labelled["metadata"]["managedFields"] = mf.to_value();

    // A stops applying tier, team and the container; it also drops
    // replicas.
    let cfg2 = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}
        }
    });
    let (obj, mf) = apply(&labelled, &cfg2, "a", false, &mf, &g, root, T2).unwrap();
    assert_eq!(
        obj["metadata"]["labels"],
        json!({"app": "web", "team": "x", "env": "prod"})
    );
    assert!(obj["spec"].get("replicas").is_none());
    assert_eq!(
        obj["spec"]["template"]["spec"]["containers"],
        json!([{"name": "sidecar", "image": "busybox"}])
    );
    assert_eq!(
        fields_of(&mf, "a", Operation::Apply),
        concat!(
            r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"#,
            r#""f:spec":{"f:containers":{"k:{\"name\":\"sidecar\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#
        )
    );
    // B's entry has no time (its apply changed nothing), which sorts first.
    assert_eq!(
        managers_of(&mf),
        vec![
            ("b".to_string(), Operation::Apply),
            ("a".to_string(), Operation::Apply),
            ("kubectl-label".to_string(), Operation::Update)
        ]
    );
}

#[test]
fn first_apply_to_unmanaged_object_adopts_existing_fields() {
    let (g, root) = graph();
    let live = stored(deployment(3, "nginx:1"));
    let cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                     "metadata": {"name": "web", "namespace": "default"},
                     "spec": {"paused": true}});
    let (obj, mf) = apply(&live, &cfg, "a", false, &ManagedFields::new(), &g, root, T1).unwrap();
    assert_eq!(obj["spec"]["paused"], json!(true));
    assert_eq!(
        managers_of(&mf),
        vec![
            ("a".to_string(), Operation::Apply),
            ("before-first-apply".to_string(), Operation::Update)
        ]
    );
    assert_eq!(
        fields_of(&mf, "before-first-apply", Operation::Update),
        CREATED_FIELDS
    );
    // Changing an adopted field now conflicts.
    let cfg2 = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": "web", "namespace": "default"},
                      "spec": {"replicas": 1}});
    let err = apply(&obj, &cfg2, "a", false, &mf, &g, root, T2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"before-first-apply\" using apps/v1: .spec.replicas"
    );
}

#[test]
fn kubectl_takes_over_from_client_side_apply() {
    let (g, root) = graph();
    let cfg = deployment(3, "nginx:1");
    let mut created = stored(cfg.clone());
    let last = format!("{}\n", crate::goval::go_json(&cfg));
    created["metadata"]["annotations"] = json!({LAST_APPLIED_ANNOTATION: last});
    let mf = update(
        &Value::Null,
        &created,
        "kubectl-client-side-apply",
        "",
        &ManagedFields::new(),
        &g,
        root,
        T0,
    );

    let mut cfg2 = cfg.clone();
    cfg2["spec"]["replicas"] = json!(4);
    // Another manager name does not get the upgrade.
    let err = apply(&created, &cfg2, "other", false, &mf, &g, root, T1).unwrap_err();
    assert!(matches!(err, ApplyError::Conflicts(ref c) if c.len() == 1));
    // kubectl does, and the annotation follows the applied configuration.
    let (obj, mf2) = apply(&created, &cfg2, "kubectl", false, &mf, &g, root, T1).unwrap();
    assert_eq!(obj["spec"]["replicas"], json!(4));
    assert!(fields_of(&mf2, "kubectl", Operation::Apply).contains("f:replicas"));
    assert!(
        !fields_of(&mf2, "kubectl-client-side-apply", Operation::Update).contains("f:replicas")
    );
    assert_eq!(
        obj["metadata"]["annotations"][LAST_APPLIED_ANNOTATION],
        json!(format!("{}\n", crate::goval::go_json(&cfg2)))
    );
    // A value kubectl never recorded still conflicts.
    let mut edited = obj.clone();
    edited["spec"]["paused"] = json!(true);
    let mf3 = update(&obj, &edited, "editor", "", &mf2, &g, root, T2);
    let mut cfg3 = cfg2.clone();
    cfg3["spec"]["paused"] = json!(false);
    let err = apply(&edited, &cfg3, "kubectl", false, &mf3, &g, root, T3).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"editor\" using apps/v1: .spec.paused"
    );
}

#[test]
fn ignored_fields_are_not_owned() {
    let (g, root) = graph();
    let fm = FieldManager::new(&g, root)
        .with_ignored_fields(FieldSet::from_paths([Path::fields(&["status"])]));
    let live = stored(deployment(3, "nginx:1"));
    let mf = fm.update(
        &Value::Null,
        &live,
        "creator",
        "",
        &ManagedFields::new(),
        T0,
    );
    let mut new = live.clone();
    new["status"] = json!({"replicas": 3});
    let after = fm.update(&live, &new, "controller", "", &mf, T1);
    assert_eq!(after, mf);
}

#[test]
fn subresource_managers_are_separate() {
    let (g, root) = graph();
    let mut live = stored(deployment(3, "nginx:1"));
    // Typed objects always carry a (possibly empty) status.
    live["status"] = json!({});
    let mf = update(
        &Value::Null,
        &live,
        "creator",
        "",
        &ManagedFields::new(),
        &g,
        root,
        T0,
    );
    let mut new = live.clone();
    new["status"] = json!({"replicas": 3});
    let mf = update(
        &live,
        &new,
        "kube-controller-manager",
        "status",
        &mf,
        &g,
        root,
        T1,
    );
    let e = mf
        .get("kube-controller-manager", Operation::Update, "status")
        .unwrap();
    assert_eq!(
        e.fields_v1.to_fields_v1(),
        r#"{"f:status":{"f:replicas":{}}}"#
    );
    assert!(mf.to_json().contains(r#""subresource":"status"}"#));
}

#[test]
fn update_managers_are_capped() {
    let (g, root) = graph();
    let fm = FieldManager::new(&g, root).with_max_update_managers(2);
    let mut live = stored(deployment(3, "nginx:1"));
    let mut mf = fm.update(
        &Value::Null,
        &live,
        "creator",
        "",
        &ManagedFields::new(),
        T0,
    );
    for (i, (who, t)) in [("m1", T1), ("m2", T2), ("m3", T3)].iter().enumerate() {
        let mut new = live.clone();
        new["metadata"]["labels"][format!("l{}", i)] = json!("x");
        mf = fm.update(&live, &new, who, "", &mf, t);
        live = new;
    }
    assert_eq!(
        managers_of(&mf),
        vec![
            ("ancient-changes".to_string(), Operation::Update),
            ("m3".to_string(), Operation::Update)
        ]
    );
    let ancient = mf.get("ancient-changes", Operation::Update, "").unwrap();
    assert_eq!(ancient.time.as_deref(), Some(T2));
    assert!(ancient.fields_v1.to_fields_v1().contains("f:l0"));
    assert!(ancient.fields_v1.to_fields_v1().contains("f:l1"));
    assert!(ancient.fields_v1.to_fields_v1().contains("f:replicas"));
}

#[test]
fn apply_errors() {
    let (g, root) = graph();
    let mut cfg = deployment(3, "nginx:1");
    cfg["metadata"]["managedFields"] = json!([]);
    let err = apply(
        &Value::Null,
        &cfg,
        "a",
        false,
        &ManagedFields::new(),
        &g,
        root,
        T0,
    )
    .unwrap_err();
    assert_eq!(
        err,
        ApplyError::BadRequest("metadata.managedFields must be nil".into())
    );
    assert_eq!(err.status_code(), 400);

    let mut cfg = deployment(3, "nginx:1");
    cfg["spec"]["template"]["spec"]["containers"] = json!([{"image": "x"}]);
    let err = apply(
        &Value::Null,
        &cfg,
        "a",
        false,
        &ManagedFields::new(),
        &g,
        root,
        T0,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): .spec.template.spec.containers: element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)"
    );
    assert_eq!(err.status_code(), 500);
}

#[test]
fn list_map_keys_use_defaults() {
    let (g, root) = graph();
    let mut cfg = deployment(1, "nginx:1");
    cfg["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80}]);
    let (_, mf) = apply(
        &Value::Null,
        &cfg,
        "a",
        false,
        &ManagedFields::new(),
        &g,
        root,
        T0,
    )
    .unwrap();
    assert!(fields_of(&mf, "a", Operation::Apply)
        .contains(r#""f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}"#));
}

#[test]
fn path_rendering() {
    let p = [
        PathElement::field("spec"),
        PathElement::field("containers"),
        PathElement::key([("name", json!("nginx"))]),
        PathElement::field("image"),
    ];
    assert_eq!(render_path(&p), ".spec.containers[name=\"nginx\"].image");
}

#[test]
fn manager_names_from_user_agents() {
    assert_eq!(manager_or_user_agent("helm", "kubectl/v1.33.0"), "helm");
    assert_eq!(
        manager_or_user_agent("", "kubectl/v1.33.0 (linux/amd64) kubernetes/8adc0f0"),
        "kubectl"
    );
    assert_eq!(
        manager_or_user_agent("", "Go-http-client/1.1"),
        "Go-http-client"
    );
    assert_eq!(manager_or_user_agent("", &"a".repeat(300)).len(), 128);
}
