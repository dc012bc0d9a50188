//! Helpers shared by the integration tests: an apiserver with one controller of this
//! crate running on it, object builders, and polling until a condition holds.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use controllers::{ControllerContext, ControllerManagerConfig};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Pod, PodSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use testapi::TestApi;

/// How long the tests wait for the controllers.
pub const WAIT: Duration = Duration::from_secs(30);

/// An apiserver plus a controller future running on it (aborted on drop).
pub struct Cluster {
    pub api: TestApi,
    pub client: Client,
    pub ctx: ControllerContext,
    controller: Option<tokio::task::JoinHandle<()>>,
}

impl Cluster {
    /// An apiserver with nothing running.
    pub async fn bare() -> Cluster {
        let api = TestApi::start().await;
        let client = api.client().await;
        let ctx = ControllerContext::new(client.clone(), ControllerManagerConfig::default());
        Cluster {
            api,
            client,
            ctx,
            controller: None,
        }
    }

    /// An apiserver with the controller named `name` running.
    pub async fn with(name: &str) -> Cluster {
        let mut c = Cluster::bare().await;
        let fut = gc_controllers::start(&c.ctx, name).unwrap();
        c.controller = Some(tokio::spawn(fut));
        c
    }

    /// An API handle for namespaced objects of kind `K` in `ns`.
    pub fn api<K>(&self, ns: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Runs `fut` as the cluster's controller.
    pub fn run(&mut self, fut: impl Future<Output = ()> + Send + 'static) {
        self.controller = Some(tokio::spawn(fut));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(h) = &self.controller {
            h.abort();
        }
    }
}

/// Polls `check` every 100ms until it holds; panics naming `what` after [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An ownerReference to the object with `meta`.
pub fn owner_ref(api_version: &str, kind: &str, meta: &ObjectMeta, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: meta.name.clone().unwrap(),
        uid: meta.uid.clone().unwrap(),
        controller: None,
        block_owner_deletion: block.then_some(true),
    }
}

/// Object metadata with a name, namespace, owners and finalizers.
pub fn meta(ns: &str, name: &str, owners: Vec<OwnerReference>, finalizers: &[&str]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        owner_references: (!owners.is_empty()).then_some(owners),
        finalizers: (!finalizers.is_empty())
            .then(|| finalizers.iter().map(|f| f.to_string()).collect()),
        ..Default::default()
    }
}

/// A ConfigMap.
pub fn config_map(metadata: ObjectMeta) -> ConfigMap {
    ConfigMap {
        metadata,
        data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..Default::default()
    }
}

/// A Secret.
pub fn secret(metadata: ObjectMeta) -> Secret {
    Secret {
        metadata,
        string_data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..Default::default()
    }
}

/// An unscheduled pod (deleted at once, no kubelet needed).
pub fn pod(metadata: ObjectMeta) -> Pod {
    Pod {
        metadata,
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some("registry.k8s.io/pause:3.10".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A namespace named `name`.
pub fn namespace(name: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Creates `obj` through `api`, panicking on failure; returns what was stored.
pub async fn create<K>(api: &Api<K>, obj: &K) -> K
where
    K: kube::Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    api.create(&PostParams::default(), obj).await.unwrap()
}

/// Whether the object `name` no longer exists.
pub async fn gone<K>(api: &Api<K>, name: &str) -> bool
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.unwrap().is_none()
}

/// Removes every finalizer of the object `name` with a merge patch.
pub async fn clear_finalizers<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
}

/// The names of the objects `api` lists.
pub async fn names<K>(api: &Api<K>) -> Vec<String>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect()
}
