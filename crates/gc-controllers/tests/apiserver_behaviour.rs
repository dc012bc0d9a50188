//! What the controllers of this crate rely on from the apiserver: deletion with each
//! propagation policy, namespace termination and its finalize subresource, strategic
//! merge patches deleting an ownerReference, metadata-only lists and watches of
//! dynamic types, and discovery.

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, PartialObjectMeta, Patch,
    PatchParams, PostParams, Preconditions, WatchParams,
};
use kube::core::WatchEvent;
use serde_json::json;
use testapi::TestApi;

fn cm(name: &str, owner: Option<&ConfigMap>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references: owner.map(|o| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    name: o.metadata.name.clone().unwrap(),
                    uid: o.metadata.uid.clone().unwrap(),
                    block_owner_deletion: Some(true),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_behaviours() {
    let server = TestApi::start().await;
    let client = server.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();

    // Orphan: the `orphan` finalizer and a deletionTimestamp.
    cms.create(&pp, &cm("orphan", None)).await.unwrap();
    cms.delete("orphan", &DeleteParams::orphan()).await.unwrap();
    let o = cms.get("orphan").await.unwrap();
    assert!(o.metadata.deletion_timestamp.is_some());
    assert_eq!(o.metadata.finalizers, Some(vec!["orphan".to_string()]));

    // Foreground: `foregroundDeletion`.
    cms.create(&pp, &cm("fg", None)).await.unwrap();
    cms.delete("fg", &DeleteParams::foreground()).await.unwrap();
    let f = cms.get("fg").await.unwrap();
    assert!(f.metadata.deletion_timestamp.is_some());
    assert_eq!(
        f.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    // Removing the finalizer by merge patch deletes the object.
    let rv = f.metadata.resource_version.clone().unwrap();
    cms.patch(
        "fg",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"resourceVersion": rv, "finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("fg").await.unwrap().is_none());

    // Background (and the default): gone at once.
    cms.create(&pp, &cm("bg", None)).await.unwrap();
    cms.delete("bg", &DeleteParams::background()).await.unwrap();
    assert!(cms.get_opt("bg").await.unwrap().is_none());

    // Preconditions on UID and resourceVersion.
    let p = cms.create(&pp, &cm("pre", None)).await.unwrap();
    let mut dp = DeleteParams::background();
    dp.preconditions = Some(Preconditions {
        uid: Some("nope".into()),
        resource_version: None,
    });
    let err = cms.delete("pre", &dp).await.unwrap_err();
    match err {
        kube::Error::Api(s) => assert_eq!(s.code, 409, "{s:?}"),
        other => panic!("{other}"),
    }
    dp.preconditions = Some(Preconditions {
        uid: p.metadata.uid.clone(),
        resource_version: p.metadata.resource_version.clone(),
    });
    cms.delete("pre", &dp).await.unwrap();

    // Strategic merge patch deleting one ownerReference by uid.
    let owner = cms.create(&pp, &cm("owner", None)).await.unwrap();
    let dep = cms.create(&pp, &cm("dep", Some(&owner))).await.unwrap();
    let patch = json!({"metadata": {
        "ownerReferences": [{"$patch": "delete", "uid": owner.metadata.uid}],
        "uid": dep.metadata.uid,
    }});
    let patched = cms
        .patch("dep", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    assert_eq!(
        patched.metadata.owner_references.unwrap_or_default(),
        vec![]
    );
    // A strategic patch naming another uid fails.
    let patch = json!({"metadata": {
        "ownerReferences": [{"$patch": "delete", "uid": "x"}],
        "uid": "wrong",
    }});
    let err = cms
        .patch("dep", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => assert_eq!(s.code, 422, "{s:?}"),
        other => panic!("{other}"),
    }

    // Metadata-only list and watch of a dynamic type.
    let ar = ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        plural: "configmaps".into(),
    };
    let meta_api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client.clone(), &ar);
    let list = meta_api.list(&ListParams::default()).await.unwrap();
    assert!(list
        .items
        .iter()
        .any(|m| m.metadata.name.as_deref() == Some("dep")));
    let rv = list.metadata.resource_version.clone().unwrap();
    let stream = meta_api.watch(&WatchParams::default(), &rv).await.unwrap();
    futures::pin_mut!(stream);
    cms.create(&pp, &cm("watched", None)).await.unwrap();
    let ev = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match ev {
        WatchEvent::Added(m) => assert_eq!(m.metadata.name.as_deref(), Some("watched")),
        other => panic!("{other:?}"),
    }

    // Delete through a dynamic Api.
    let dyn_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    dyn_api
        .delete("watched", &DeleteParams::background())
        .await
        .unwrap();
    let m = dyn_api.get_metadata("dep").await.unwrap();
    assert_eq!(m.metadata.name.as_deref(), Some("dep"));

    // Discovery: every group/version answers.
    let groups = client.list_api_groups().await.unwrap();
    for g in &groups.groups {
        for v in &g.versions {
            let rl = client
                .list_api_group_resources(&v.group_version)
                .await
                .unwrap();
            assert!(!rl.resources.is_empty(), "{}", v.group_version);
        }
    }
    let core = client.list_core_api_resources("v1").await.unwrap();
    let cmr = core
        .resources
        .iter()
        .find(|r| r.name == "configmaps")
        .unwrap();
    assert!(cmr.verbs.contains(&"deletecollection".to_string()));
    let ns_resource = core
        .resources
        .iter()
        .find(|r| r.name == "namespaces")
        .unwrap();
    assert!(!ns_resource.namespaced);
    assert!(!ns_resource.verbs.contains(&"deletecollection".to_string()));

    // Namespaces: Terminating with the `kubernetes` spec finalizer, finalize empties
    // it and the namespace goes away.
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &pp,
        &Namespace {
            metadata: ObjectMeta {
                name: Some("doomed".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let created = nss.get("doomed").await.unwrap();
    assert_eq!(
        created.spec.as_ref().and_then(|s| s.finalizers.clone()),
        Some(vec!["kubernetes".to_string()])
    );
    nss.delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    let ns = nss.get("doomed").await.unwrap();
    assert!(ns.metadata.deletion_timestamp.is_some());
    assert_eq!(
        ns.status.as_ref().and_then(|s| s.phase.clone()).as_deref(),
        Some("Terminating")
    );
    // Creating in a terminating namespace is refused.
    let err = Api::<ConfigMap>::namespaced(client.clone(), "doomed")
        .create(&pp, &cm("late", None))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403, "{s:?}");
            assert!(s
                .details
                .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")));
        }
        other => panic!("{other}"),
    }
    let mut fin = ns.clone();
    fin.spec.as_mut().unwrap().finalizers = Some(vec![]);
    let out = nss
        .replace_subresource("finalize", "doomed", &pp, &fin)
        .await;
    eprintln!(
        "finalize: {:?}",
        out.as_ref().map(|n| n.metadata.name.clone())
    );
    assert!(out.is_ok(), "{out:?}");
    assert!(nss.get_opt("doomed").await.unwrap().is_none());
}
