//! The garbage collector against an in-process apiserver: background cascading
//! deletion, orphaning, foreground deletion, owners that never existed, owners in
//! another namespace. No other controller runs (ReplicaSets create no pods).

mod support;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams};
use support::{
    clear_finalizers, config_map, create, eventually, gone, meta, namespace, owner_ref, pod,
    secret, Cluster,
};

const NS: &str = "default";

fn replica_set(name: &str) -> ReplicaSet {
    let labels = BTreeMap::from([("app".to_string(), name.to_string())]);
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(0),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: Some(k8s_openapi::api::core::v1::PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: pod(ObjectMeta::default()).spec,
            }),
            ..Default::default()
        }),
        status: None,
    }
}

/// Creates the ConfigMap `name` in [`NS`] with `owners`.
async fn create_cm(api: &Api<ConfigMap>, name: &str, owners: Vec<OwnerReference>) -> ConfigMap {
    create(api, &config_map(meta(NS, name, owners, &[]))).await
}

/// Creates the Secret `name` in [`NS`] with `owners`.
async fn create_secret(api: &Api<Secret>, name: &str, owners: Vec<OwnerReference>) -> Secret {
    create(api, &secret(meta(NS, name, owners, &[]))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_deletion_collects_dependents() {
    let c = Cluster::with("garbagecollector").await;
    let cms: Api<ConfigMap> = c.api(NS);
    let secrets: Api<Secret> = c.api(NS);
    let pods: Api<Pod> = c.api(NS);
    let rss: Api<ReplicaSet> = c.api(NS);

    let owner = create_cm(&cms, "owner", vec![]).await;
    let other = create_cm(&cms, "other", vec![]).await;
    let by_owner = owner_ref("v1", "ConfigMap", &owner.metadata, false);
    let by_other = owner_ref("v1", "ConfigMap", &other.metadata, false);
    create_cm(&cms, "dep-cm", vec![by_owner.clone()]).await;
    create_secret(&secrets, "dep-secret", vec![by_owner.clone()]).await;
    // Two owners: survives the first one's deletion, minus that reference.
    create_cm(&cms, "two-owners", vec![by_owner.clone(), by_other.clone()]).await;
    let rs = create(&rss, &replica_set("rs")).await;
    let by_rs = OwnerReference {
        controller: Some(true),
        ..owner_ref("apps/v1", "ReplicaSet", &rs.metadata, true)
    };
    for name in ["rs-a", "rs-b"] {
        create(&pods, &pod(meta(NS, name, vec![by_rs.clone()], &[]))).await;
    }

    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    rss.delete("rs", &DeleteParams::background()).await.unwrap();

    eventually("dependents of the ConfigMap are collected", || async {
        gone(&cms, "dep-cm").await && gone(&secrets, "dep-secret").await
    })
    .await;
    eventually("pods of the ReplicaSet are collected", || async {
        gone(&pods, "rs-a").await && gone(&pods, "rs-b").await
    })
    .await;
    eventually("the dead owner's reference is patched away", || async {
        let o = cms.get("two-owners").await.unwrap();
        o.metadata.owner_references.unwrap_or_default() == vec![by_other.clone()]
    })
    .await;
    // The remaining owner keeps it alive.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!gone(&cms, "two-owners").await);
    assert!(!gone(&cms, "other").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_deletion_keeps_dependents_without_the_reference() {
    let c = Cluster::with("garbage-collector-controller").await;
    let cms: Api<ConfigMap> = c.api(NS);
    let secrets: Api<Secret> = c.api(NS);
    let owner = create_cm(&cms, "owner", vec![]).await;
    let keep = create_cm(&cms, "keep", vec![]).await;
    let by_owner = owner_ref("v1", "ConfigMap", &owner.metadata, true);
    let by_keep = owner_ref("v1", "ConfigMap", &keep.metadata, false);
    create_cm(&cms, "dep-cm", vec![by_owner.clone()]).await;
    create_secret(
        &secrets,
        "dep-secret",
        vec![by_owner.clone(), by_keep.clone()],
    )
    .await;

    cms.delete("owner", &DeleteParams::orphan()).await.unwrap();
    eventually("the orphaned owner is deleted", || async {
        gone(&cms, "owner").await
    })
    .await;
    let dep = cms.get("dep-cm").await.unwrap();
    assert_eq!(dep.metadata.owner_references.unwrap_or_default(), vec![]);
    let s = secrets.get("dep-secret").await.unwrap();
    assert_eq!(
        s.metadata.owner_references.unwrap_or_default(),
        vec![by_keep]
    );
    // Orphans stay.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!gone(&cms, "dep-cm").await);
    assert!(!gone(&secrets, "dep-secret").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_deletion_waits_for_blocking_dependents() {
    let c = Cluster::with("garbagecollector").await;
    let cms: Api<ConfigMap> = c.api(NS);
    let secrets: Api<Secret> = c.api(NS);
    let owner = create_cm(&cms, "owner", vec![]).await;
    let by_owner = owner_ref("v1", "ConfigMap", &owner.metadata, true);
    // A blocking dependent held by a finalizer of its own, and one that goes at once.
    create(
        &cms,
        &config_map(meta(
            NS,
            "held",
            vec![by_owner.clone()],
            &["example.com/hold"],
        )),
    )
    .await;
    create_secret(&secrets, "quick", vec![by_owner.clone()]).await;
    // A dependent of a dependent: deleted in the foreground itself.
    let held = cms.get("held").await.unwrap();
    create_cm(
        &cms,
        "grandchild",
        vec![owner_ref("v1", "ConfigMap", &held.metadata, true)],
    )
    .await;

    cms.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually("the non-held dependents are deleted", || async {
        gone(&secrets, "quick").await && gone(&cms, "grandchild").await
    })
    .await;
    eventually("the held dependent is being deleted", || async {
        cms.get("held")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let o = cms.get("owner").await.unwrap();
    assert!(o.metadata.deletion_timestamp.is_some());
    assert_eq!(
        o.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    // The held dependent had a dependent of its own, so it was deleted in the
    // foreground too; that finished once the grandchild was gone, leaving only the
    // foreign finalizer.
    eventually(
        "the held dependent's foreground deletion completes",
        || async {
            cms.get("held").await.unwrap().metadata.finalizers
                == Some(vec!["example.com/hold".to_string()])
        },
    )
    .await;
    assert!(!gone(&cms, "owner").await);

    // Release the held dependent: it goes, then the owner.
    clear_finalizers(&cms, "held").await;
    eventually("the held dependent goes", || async {
        gone(&cms, "held").await
    })
    .await;
    eventually("the owner goes last", || async {
        gone(&cms, "owner").await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_whose_owners_never_existed_are_collected() {
    let c = Cluster::with("garbagecollector").await;
    let cms: Api<ConfigMap> = c.api(NS);
    let ghost = OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "ghost".into(),
        uid: "00000000-0000-0000-0000-000000000000".into(),
        controller: None,
        block_owner_deletion: None,
    };
    create_cm(&cms, "haunted", vec![ghost.clone()]).await;
    // A same-named owner with another UID does not count.
    create_cm(&cms, "ghost", vec![]).await;
    create_cm(
        &cms,
        "haunted-too",
        vec![OwnerReference {
            uid: "11111111-1111-1111-1111-111111111111".into(),
            ..ghost
        }],
    )
    .await;
    eventually("both are collected", || async {
        gone(&cms, "haunted").await && gone(&cms, "haunted-too").await
    })
    .await;
    assert!(!gone(&cms, "ghost").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_in_another_namespace_is_invalid() {
    let c = Cluster::with("garbagecollector").await;
    let nss: Api<Namespace> = Api::all(c.client.clone());
    create(&nss, &namespace("other")).await;
    let cms: Api<ConfigMap> = c.api(NS);
    let other_cms: Api<ConfigMap> = c.api("other");
    let owner = create_cm(&cms, "owner", vec![]).await;
    // Let the collector see the owner before the bad dependent.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let by_owner = owner_ref("v1", "ConfigMap", &owner.metadata, false);
    create(
        &other_cms,
        &config_map(meta("other", "stray", vec![by_owner], &[])),
    )
    .await;
    eventually("the stray dependent is collected", || async {
        gone(&other_cms, "stray").await
    })
    .await;
    assert!(!gone(&cms, "owner").await);
    let events: Api<Event> = c.api("other");
    eventually("an OwnerRefInvalidNamespace event is recorded", || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("OwnerRefInvalidNamespace")
                    && e.type_.as_deref() == Some("Warning")
                    && e.involved_object.name.as_deref() == Some("stray")
                    && e.message.as_deref()
                        == Some(&*format!(
                            "ownerRef [v1/ConfigMap, namespace: other, name: owner, uid: {}] does not exist in namespace \"other\"",
                            owner.metadata.uid.clone().unwrap()
                        ))
                    && e.source.as_ref().and_then(|s| s.component.as_deref())
                        == Some("garbage-collector-controller")
            })
    })
    .await;
}
