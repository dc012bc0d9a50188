//! The apiserver's view of storage: one watch cache per stored resource, keyed as
//! `/registry/<resource>/<namespace>/<name>`, whose cached entries hold the exact bytes
//! served (with `resourceVersion`) and, parsed on first use, the labels and fields
//! that selectors filter on.

use crate::object;
use bytes::Bytes;
use resources::{Backing, ResourceInfo, Strategy};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use store::cacher::{CachedItem, CacherOptions};
use store::{Cacher, KeyValue, Storage};

/// What selectors look at, parsed from an object once.
#[derive(Debug, Default)]
pub struct Attrs {
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// Selectable fields: `metadata.name`, `metadata.namespace` and the kind's own.
    pub fields: Vec<(&'static str, String)>,
}

impl Attrs {
    /// The value of a selectable field.
    pub fn field(&self, name: &str) -> Option<String> {
        self.fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

/// A cached object: the served bytes plus lazily parsed selector attributes.
#[derive(Debug)]
pub struct Entry {
    /// The object's JSON with `metadata.resourceVersion`.
    pub json: Bytes,
    attrs: OnceLock<Attrs>,
}

impl Entry {
    /// Builds the entry of a stored key-value.
    pub fn of(kv: &KeyValue) -> Entry {
        Entry {
            json: object::with_resource_version(&kv.value, kv.mod_revision),
            attrs: OnceLock::new(),
        }
    }

    /// The parsed object.
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// Labels and fields for selectors (parsed without the object's lists, which no
    /// selector looks into).
    pub fn attrs(&self, strategy: &dyn Strategy) -> &Attrs {
        self.attrs
            .get_or_init(|| attrs_of(&object::without_lists(&self.json), strategy))
    }
}

/// Selector attributes of a parsed object.
pub fn attrs_of(obj: &Value, strategy: &dyn Strategy) -> Attrs {
    let labels = object::labels(obj)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    let mut fields = vec![
        ("metadata.name", object::name(obj).to_string()),
        ("metadata.namespace", object::namespace(obj).to_string()),
    ];
    fields.extend(strategy.selectable_fields(obj));
    Attrs { labels, fields }
}

/// A cached object handle.
pub type Item = Arc<CachedItem<Entry>>;

/// One stored resource: its cache and the rules of its storage version.
pub struct ResourceStore {
    /// The storage segment (`pods`).
    pub storage: &'static str,
    /// The storage version's catalog entry.
    pub info: &'static ResourceInfo,
    /// The storage version's strategy.
    pub strategy: &'static dyn Strategy,
    /// The watch cache.
    pub cache: Cacher<Entry>,
}

impl ResourceStore {
    /// Key of an object.
    pub fn key(&self, namespace: &str, name: &str) -> String {
        if self.info.namespaced() {
            format!("/registry/{}/{}/{}", self.storage, namespace, name)
        } else {
            format!("/registry/{}/{}", self.storage, name)
        }
    }

    /// Prefix of a collection (one namespace, or all when `namespace` is empty).
    pub fn prefix(&self, namespace: &str) -> String {
        if self.info.namespaced() && !namespace.is_empty() {
            format!("/registry/{}/{}/", self.storage, namespace)
        } else {
            format!("/registry/{}/", self.storage)
        }
    }

    /// The backing store.
    pub fn store(&self) -> &Arc<dyn Storage> {
        self.cache.store()
    }
}

/// All stored resources by storage segment.
pub struct Registry {
    stores: HashMap<&'static str, Arc<ResourceStore>>,
    backend: Arc<dyn Storage>,
}

impl Registry {
    /// Starts a watch cache for every stored resource of the catalog.
    pub fn new(backend: Arc<dyn Storage>) -> Registry {
        let mut stores = HashMap::new();
        for info in resources::catalog() {
            let Backing::Stored {
                storage,
                storage_version,
                strategy,
            } = info.backing
            else {
                continue;
            };
            if (info.group, info.version) != storage_version || stores.contains_key(storage) {
                continue;
            }
            let cache = Cacher::new(
                backend.clone(),
                &format!("/registry/{storage}/"),
                Arc::new(|kv: &KeyValue| Entry::of(kv)),
                CacherOptions::default(),
            );
            stores.insert(
                storage,
                Arc::new(ResourceStore {
                    storage,
                    info,
                    strategy,
                    cache,
                }),
            );
        }
        Registry { stores, backend }
    }

    /// The store of a resource (by its catalog entry, any served version).
    pub fn for_resource(&self, info: &ResourceInfo) -> Option<&Arc<ResourceStore>> {
        match info.backing {
            Backing::Stored { storage, .. } => self.stores.get(storage),
            _ => None,
        }
    }

    /// The store by storage segment.
    pub fn get(&self, storage: &str) -> Option<&Arc<ResourceStore>> {
        self.stores.get(storage)
    }

    /// The backend all caches read from.
    pub fn backend(&self) -> &Arc<dyn Storage> {
        &self.backend
    }

    /// Waits until every cache has filled once.
    pub async fn wait_ready(&self) -> bool {
        for s in self.stores.values() {
            if !s.cache.wait_for(0).await {
                return false;
            }
        }
        true
    }
}
