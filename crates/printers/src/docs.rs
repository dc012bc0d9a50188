//! Column descriptions sent in `columnDefinitions[].description`.
//!
//! Upstream fills these from the API field documentation; the texts here are
//! short paraphrases of those field docs, plus the fixed sentences upstream
//! uses for computed columns.

pub(crate) const NAME: &str = "Name of the object; unique within a namespace (or the cluster for cluster-scoped objects). Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
pub(crate) const CREATION_TIMESTAMP: &str = "CreationTimestamp is the server time at which this object was created, in RFC 3339 form and UTC. Set by the system; read-only. Null for lists.";

pub(crate) const CONTAINERS: &str = "Names of each container in the template.";
pub(crate) const IMAGES: &str = "Images referenced by each container in the template.";
pub(crate) const SELECTOR: &str = "A label query over pods that should match the replica count.";
pub(crate) const DESIRED_REPLICAS: &str =
    "Number of desired pods. Defaults to 1 when not specified.";
pub(crate) const CURRENT_REPLICAS: &str =
    "Replicas is the most recently observed number of replicas.";
pub(crate) const READY_REPLICAS: &str =
    "The number of pods targeted by this controller with a Ready condition.";
pub(crate) const READY_OF_DESIRED: &str = "Number of the pod with ready state";
