//! The EndpointSlice tracker: the generation of every slice this controller last
//! wrote, per service, and the slices it expects to see deleted. It tells the
//! controller whether a slice change in the cache is its own echo (no sync needed)
//! and whether the cache still lags behind its writes (sync later).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use parking_lot::Mutex;

use super::reconciler::LABEL_SERVICE_NAME;

/// The generation recorded for a slice whose deletion is expected.
const DELETION_EXPECTED: i64 = -1;

#[derive(Default)]
struct State {
    /// Service `namespace/name` → slice UID → generation.
    generations: HashMap<String, HashMap<String, i64>>,
    /// Service `namespace/name` → the UID of the service last checked.
    service_uids: HashMap<String, String>,
}

/// Generations of the EndpointSlices written by the controller.
#[derive(Default)]
pub struct EndpointSliceTracker {
    state: Mutex<State>,
}

/// The `namespace/name` of the service a slice belongs to (by its service-name label).
pub fn service_key_of_slice(slice: &EndpointSlice) -> String {
    let ns = slice.metadata.namespace.as_deref().unwrap_or("");
    let name = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_SERVICE_NAME))
        .map(String::as_str)
        .unwrap_or("");
    format!("{ns}/{name}")
}

fn uid(slice: &EndpointSlice) -> String {
    slice.metadata.uid.clone().unwrap_or_default()
}

fn generation(slice: &EndpointSlice) -> i64 {
    slice.metadata.generation.unwrap_or(0)
}

impl EndpointSliceTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a generation (or expected deletion) is recorded for the slice.
    pub fn has(&self, slice: &EndpointSlice) -> bool {
        let state = self.state.lock();
        state
            .generations
            .get(&service_key_of_slice(slice))
            .is_some_and(|g| g.contains_key(&uid(slice)))
    }

    /// Whether a change to the slice needs a sync: it is unknown, or newer than the
    /// generation this controller wrote.
    pub fn should_sync(&self, slice: &EndpointSlice) -> bool {
        let state = self.state.lock();
        match state
            .generations
            .get(&service_key_of_slice(slice))
            .and_then(|g| g.get(&uid(slice)))
        {
            None => true,
            Some(g) => generation(slice) > *g,
        }
    }

    /// Whether the cached slices of `service` lag behind this controller's writes: a
    /// slice older than written, a slice expected deleted still present, or a written
    /// slice missing. A recreated service (new UID) drops what was recorded for the
    /// old one.
    pub fn stale_slices(&self, service: &Service, slices: &[EndpointSlice]) -> bool {
        let mut state = self.state.lock();
        let key = format!(
            "{}/{}",
            service.metadata.namespace.as_deref().unwrap_or(""),
            service.metadata.name.as_deref().unwrap_or("")
        );
        let svc_uid = service.metadata.uid.clone().unwrap_or_default();
        if let Some(tracked) = state.service_uids.get(&key) {
            if !tracked.is_empty() && !svc_uid.is_empty() && *tracked != svc_uid {
                state.generations.remove(&key);
            }
        }
        state.service_uids.insert(key.clone(), svc_uid);
        let Some(gens) = state.generations.get(&key) else {
            return false;
        };
        let mut provided = HashMap::new();
        for slice in slices {
            provided.insert(uid(slice), generation(slice));
            if let Some(g) = gens.get(&uid(slice)) {
                if *g == DELETION_EXPECTED || *g > generation(slice) {
                    return true;
                }
            }
        }
        gens.iter()
            .any(|(u, g)| *g != DELETION_EXPECTED && !provided.contains_key(u))
    }

    /// Records the generation of a slice just written.
    pub fn update(&self, slice: &EndpointSlice) {
        let mut state = self.state.lock();
        state
            .generations
            .entry(service_key_of_slice(slice))
            .or_default()
            .insert(uid(slice), generation(slice));
    }

    /// Records that a slice was deleted by this controller.
    pub fn expect_deletion(&self, slice: &EndpointSlice) {
        let mut state = self.state.lock();
        state
            .generations
            .entry(service_key_of_slice(slice))
            .or_default()
            .insert(uid(slice), DELETION_EXPECTED);
    }

    /// Forgets a deleted slice; returns whether its deletion was expected.
    pub fn handle_deletion(&self, slice: &EndpointSlice) -> bool {
        let mut state = self.state.lock();
        let Some(gens) = state.generations.get_mut(&service_key_of_slice(slice)) else {
            return true;
        };
        match gens.remove(&uid(slice)) {
            Some(g) => g == DELETION_EXPECTED,
            None => true,
        }
    }

    /// Forgets a deleted service.
    pub fn delete_service(&self, namespace: &str, name: &str) {
        let key = format!("{namespace}/{name}");
        let mut state = self.state.lock();
        state.generations.remove(&key);
        state.service_uids.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn slice(uid: &str, gen: i64) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                uid: Some(uid.into()),
                generation: Some(gen),
                labels: Some([(LABEL_SERVICE_NAME.to_string(), "svc".to_string())].into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: vec![],
            ports: None,
        }
    }

    fn service(uid: &str) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some("svc".into()),
                uid: Some(uid.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn tracks_generations_and_deletions() {
        let t = EndpointSliceTracker::new();
        let svc = service("s1");
        assert!(t.should_sync(&slice("a", 1)));
        assert!(!t.stale_slices(&svc, &[]));
        t.update(&slice("a", 2));
        assert!(t.has(&slice("a", 2)));
        assert!(!t.should_sync(&slice("a", 2)), "own write");
        assert!(t.should_sync(&slice("a", 3)), "someone else's write");
        assert!(t.stale_slices(&svc, &[slice("a", 1)]), "cache behind");
        assert!(t.stale_slices(&svc, &[]), "written slice missing");
        assert!(!t.stale_slices(&svc, &[slice("a", 2)]));
        t.expect_deletion(&slice("a", 2));
        assert!(
            t.stale_slices(&svc, &[slice("a", 2)]),
            "deleted slice still cached"
        );
        assert!(!t.stale_slices(&svc, &[]));
        assert!(t.handle_deletion(&slice("a", 2)));
        t.update(&slice("b", 1));
        assert!(!t.handle_deletion(&slice("b", 1)), "unexpected deletion");
        // A recreated service starts afresh.
        t.update(&slice("c", 1));
        assert!(t.stale_slices(&svc, &[]));
        assert!(!t.stale_slices(&service("s2"), &[]));
    }
}
