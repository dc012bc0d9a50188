//! A Pod- and Deployment-shaped type graph built by hand (the `schema` crate
//! depends on `merge`, so it cannot be used here) with the list types, map
//! types and zero-value fields the real API graph gives these kinds, plus
//! realistic objects of both kinds.

use merge::{Field, ListType, StructDef, TypeGraph, TypeId};
use serde_json::{json, Value};

/// Root types of the fixture graph.
pub struct Roots {
    /// `v1 Pod`.
    pub pod: TypeId,
    /// `apps/v1 Deployment`.
    pub deployment: TypeId,
}

fn s() -> TypeId {
    TypeId::SCALAR
}

/// The graph: ObjectMeta, PodSpec and what hangs below it, Deployment.
pub fn graph() -> (TypeGraph, Roots) {
    let mut g = TypeGraph::new();
    let strings = g.map(s());
    let atomic_strings = g.atomic_map(s());
    let string_list = g.list(s(), ListType::Atomic);
    let string_set = g.list(s(), ListType::Set);

    // metav1
    let owner_ref = g.add_struct(
        "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
        StructDef::new()
            .scalar("apiVersion")
            .scalar("blockOwnerDeletion")
            .scalar("controller")
            .scalar("kind")
            .scalar("name")
            .scalar("uid")
            .atomic(),
    );
    let owner_refs = g.list(owner_ref, ListType::map(["uid"]));
    let mf_entry = g.add_struct(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry",
        StructDef::new()
            .scalar("apiVersion")
            .scalar("fieldsType")
            .field("fieldsV1", TypeId::UNTYPED)
            .scalar("manager")
            .scalar("operation")
            .scalar("subresource")
            .scalar("time"),
    );
    let mf_list = g.list(mf_entry, ListType::Atomic);
    let meta = g.add_struct(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        StructDef::new()
            .field("annotations", strings)
            .scalar("creationTimestamp")
            .scalar("deletionGracePeriodSeconds")
            .scalar("deletionTimestamp")
            .field("finalizers", Field::new(string_set).strategy("merge"))
            .scalar("generateName")
            .scalar("generation")
            .field("labels", strings)
            .field("managedFields", mf_list)
            .scalar("name")
            .scalar("namespace")
            .field(
                "ownerReferences",
                Field::new(owner_refs).strategy("merge").merge_key("uid"),
            )
            .scalar("resourceVersion")
            .scalar("selfLink")
            .scalar("uid"),
    );
    let match_expr = g.add_struct(
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement",
        StructDef::new()
            .scalar("key")
            .scalar("operator")
            .field("values", string_list),
    );
    let match_exprs = g.list(match_expr, ListType::Atomic);
    let selector = g.add_struct(
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
        StructDef::new()
            .field("matchExpressions", match_exprs)
            .field("matchLabels", strings)
            .atomic(),
    );
    let condition = g.add_struct(
        "io.k8s.apimachinery.pkg.apis.meta.v1.Condition",
        StructDef::new()
            .scalar("lastProbeTime")
            .scalar("lastTransitionTime")
            .scalar("lastUpdateTime")
            .scalar("message")
            .scalar("observedGeneration")
            .scalar("reason")
            .scalar("status")
            .scalar("type"),
    );
    let conditions = g.list(condition, ListType::map(["type"]));

    // core/v1 pieces of a container
    let key_ref = g.add_struct(
        "io.k8s.api.core.v1.ConfigMapKeySelector",
        StructDef::new()
            .scalar("key")
            .scalar("name")
            .scalar("optional")
            .atomic(),
    );
    let field_ref = g.add_struct(
        "io.k8s.api.core.v1.ObjectFieldSelector",
        StructDef::new()
            .scalar("apiVersion")
            .scalar("fieldPath")
            .atomic(),
    );
    let env_source = g.add_struct(
        "io.k8s.api.core.v1.EnvVarSource",
        StructDef::new()
            .field("configMapKeyRef", key_ref)
            .field("fieldRef", field_ref)
            .field("resourceFieldRef", TypeId::UNTYPED_ATOMIC)
            .field("secretKeyRef", key_ref),
    );
    let env_var = g.add_struct(
        "io.k8s.api.core.v1.EnvVar",
        StructDef::new()
            .scalar("name")
            .scalar("value")
            .field("valueFrom", env_source),
    );
    let env = g.list(env_var, ListType::map(["name"]));
    let env_from = g.list(TypeId::UNTYPED_ATOMIC, ListType::Atomic);
    let port = g.add_struct(
        "io.k8s.api.core.v1.ContainerPort",
        StructDef::new()
            .scalar("containerPort")
            .scalar("hostIP")
            .scalar("hostPort")
            .scalar("name")
            .field("protocol", Field::new(s()).default_value(json!("TCP"))),
    );
    let ports = g.list(port, ListType::map(["containerPort", "protocol"]));
    let resource_claim = g.add_struct(
        "io.k8s.api.core.v1.ResourceClaim",
        StructDef::new().scalar("name").scalar("request"),
    );
    let claims = g.list(resource_claim, ListType::map(["name"]));
    let resources = g.add_struct(
        "io.k8s.api.core.v1.ResourceRequirements",
        StructDef::new()
            .field("claims", claims)
            .field("limits", strings)
            .field("requests", strings),
    );
    let exec = g.add_struct(
        "io.k8s.api.core.v1.ExecAction",
        StructDef::new().field("command", string_list),
    );
    let headers = g.list(TypeId::UNTYPED_ATOMIC, ListType::Atomic);
    let http_get = g.add_struct(
        "io.k8s.api.core.v1.HTTPGetAction",
        StructDef::new()
            .scalar("host")
            .field("httpHeaders", headers)
            .scalar("path")
            .scalar("port")
            .scalar("scheme"),
    );
    let tcp = g.add_struct(
        "io.k8s.api.core.v1.TCPSocketAction",
        StructDef::new().scalar("host").scalar("port"),
    );
    let probe = g.add_struct(
        "io.k8s.api.core.v1.Probe",
        StructDef::new()
            .field("exec", exec)
            .scalar("failureThreshold")
            .field("grpc", TypeId::UNTYPED_ATOMIC)
            .field("httpGet", http_get)
            .scalar("initialDelaySeconds")
            .scalar("periodSeconds")
            .scalar("successThreshold")
            .field("tcpSocket", tcp)
            .scalar("terminationGracePeriodSeconds")
            .scalar("timeoutSeconds"),
    );
    let capabilities = g.add_struct(
        "io.k8s.api.core.v1.Capabilities",
        StructDef::new()
            .field("add", string_list)
            .field("drop", string_list),
    );
    let seccomp = g.add_struct(
        "io.k8s.api.core.v1.SeccompProfile",
        StructDef::new().scalar("localhostProfile").scalar("type"),
    );
    let sec_ctx = g.add_struct(
        "io.k8s.api.core.v1.SecurityContext",
        StructDef::new()
            .scalar("allowPrivilegeEscalation")
            .field("capabilities", capabilities)
            .scalar("privileged")
            .scalar("readOnlyRootFilesystem")
            .scalar("runAsGroup")
            .scalar("runAsNonRoot")
            .scalar("runAsUser")
            .field("seccompProfile", seccomp),
    );
    let mount = g.add_struct(
        "io.k8s.api.core.v1.VolumeMount",
        StructDef::new()
            .scalar("mountPath")
            .scalar("mountPropagation")
            .scalar("name")
            .scalar("readOnly")
            .scalar("subPath"),
    );
    let mounts = g.list(mount, ListType::map(["mountPath"]));
    let container = g.add_struct(
        "io.k8s.api.core.v1.Container",
        StructDef::new()
            .field("args", string_list)
            .field("command", string_list)
            .field("env", Field::new(env).strategy("merge").merge_key("name"))
            .field("envFrom", env_from)
            .scalar("image")
            .scalar("imagePullPolicy")
            .field("livenessProbe", probe)
            .scalar("name")
            .field(
                "ports",
                Field::new(ports)
                    .strategy("merge")
                    .merge_key("containerPort"),
            )
            .field("readinessProbe", probe)
            .field("resources", resources)
            .scalar("restartPolicy")
            .field("securityContext", sec_ctx)
            .field("startupProbe", probe)
            .scalar("stdin")
            .scalar("terminationMessagePath")
            .scalar("terminationMessagePolicy")
            .scalar("tty")
            .field(
                "volumeMounts",
                Field::new(mounts).strategy("merge").merge_key("mountPath"),
            )
            .scalar("workingDir"),
    );
    let containers = g.list(container, ListType::map(["name"]));

    // volumes
    let key_to_path = g.list(TypeId::UNTYPED_ATOMIC, ListType::Atomic);
    let cm_vol = g.add_struct(
        "io.k8s.api.core.v1.ConfigMapVolumeSource",
        StructDef::new()
            .scalar("defaultMode")
            .field("items", key_to_path)
            .scalar("name")
            .scalar("optional"),
    );
    let secret_vol = g.add_struct(
        "io.k8s.api.core.v1.SecretVolumeSource",
        StructDef::new()
            .scalar("defaultMode")
            .field("items", key_to_path)
            .scalar("optional")
            .scalar("secretName"),
    );
    let empty_dir = g.add_struct(
        "io.k8s.api.core.v1.EmptyDirVolumeSource",
        StructDef::new().scalar("medium").scalar("sizeLimit"),
    );
    let sources = g.list(TypeId::UNTYPED_ATOMIC, ListType::Atomic);
    let projected = g.add_struct(
        "io.k8s.api.core.v1.ProjectedVolumeSource",
        StructDef::new()
            .scalar("defaultMode")
            .field("sources", sources),
    );
    let pvc = g.add_struct(
        "io.k8s.api.core.v1.PersistentVolumeClaimVolumeSource",
        StructDef::new().scalar("claimName").scalar("readOnly"),
    );
    let volume = g.add_struct(
        "io.k8s.api.core.v1.Volume",
        StructDef::new()
            .field("configMap", cm_vol)
            .field("emptyDir", empty_dir)
            .field("hostPath", TypeId::UNTYPED_ATOMIC)
            .scalar("name")
            .field("persistentVolumeClaim", pvc)
            .field("projected", projected)
            .field("secret", secret_vol),
    );
    let volumes = g.list(volume, ListType::map(["name"]));

    let pod_sec = g.add_struct(
        "io.k8s.api.core.v1.PodSecurityContext",
        StructDef::new()
            .scalar("fsGroup")
            .scalar("runAsGroup")
            .scalar("runAsNonRoot")
            .scalar("runAsUser")
            .field("seccompProfile", seccomp)
            .field("supplementalGroups", string_list),
    );
    let tolerations = g.list(TypeId::UNTYPED_ATOMIC, ListType::Atomic);
    let host_alias = g.add_struct(
        "io.k8s.api.core.v1.HostAlias",
        StructDef::new()
            .field("hostnames", string_list)
            .scalar("ip"),
    );
    let host_aliases = g.list(host_alias, ListType::map(["ip"]));
    let pull_secret = g.add_struct(
        "io.k8s.api.core.v1.LocalObjectReference",
        StructDef::new().scalar("name").atomic(),
    );
    let pull_secrets = g.list(pull_secret, ListType::map(["name"]));
    let tsc = g.add_struct(
        "io.k8s.api.core.v1.TopologySpreadConstraint",
        StructDef::new()
            .field("labelSelector", selector)
            .scalar("maxSkew")
            .scalar("topologyKey")
            .scalar("whenUnsatisfiable"),
    );
    let tscs = g.list(tsc, ListType::map(["topologyKey", "whenUnsatisfiable"]));
    let pod_spec = g.add_struct(
        "io.k8s.api.core.v1.PodSpec",
        StructDef::new()
            .scalar("activeDeadlineSeconds")
            .field("affinity", TypeId::UNTYPED_ATOMIC)
            .scalar("automountServiceAccountToken")
            .field(
                "containers",
                Field::new(containers).strategy("merge").merge_key("name"),
            )
            .scalar("dnsPolicy")
            .scalar("enableServiceLinks")
            .field(
                "hostAliases",
                Field::new(host_aliases).strategy("merge").merge_key("ip"),
            )
            .scalar("hostNetwork")
            .scalar("hostname")
            .field(
                "imagePullSecrets",
                Field::new(pull_secrets).strategy("merge").merge_key("name"),
            )
            .field(
                "initContainers",
                Field::new(containers).strategy("merge").merge_key("name"),
            )
            .scalar("nodeName")
            .field("nodeSelector", atomic_strings)
            .field("overhead", strings)
            .scalar("preemptionPolicy")
            .scalar("priority")
            .scalar("priorityClassName")
            .scalar("restartPolicy")
            .scalar("runtimeClassName")
            .scalar("schedulerName")
            .field("securityContext", pod_sec)
            .scalar("serviceAccount")
            .scalar("serviceAccountName")
            .scalar("subdomain")
            .scalar("terminationGracePeriodSeconds")
            .field("tolerations", tolerations)
            .field(
                "topologySpreadConstraints",
                Field::new(tscs).strategy("merge").merge_key("topologyKey"),
            )
            .field(
                "volumes",
                Field::new(volumes)
                    .strategy("merge,retainKeys")
                    .merge_key("name"),
            ),
    );
    let pod_ip = g.add_struct("io.k8s.api.core.v1.PodIP", StructDef::new().scalar("ip"));
    let pod_ips = g.list(pod_ip, ListType::map(["ip"]));
    let pod_status = g.add_struct(
        "io.k8s.api.core.v1.PodStatus",
        StructDef::new()
            .field(
                "conditions",
                Field::new(conditions).strategy("merge").merge_key("type"),
            )
            .field("containerStatuses", TypeId::UNTYPED_ATOMIC)
            .scalar("hostIP")
            .field(
                "hostIPs",
                Field::new(pod_ips).strategy("merge").merge_key("ip"),
            )
            .field("initContainerStatuses", TypeId::UNTYPED_ATOMIC)
            .scalar("message")
            .scalar("phase")
            .scalar("podIP")
            .field(
                "podIPs",
                Field::new(pod_ips).strategy("merge").merge_key("ip"),
            )
            .scalar("qosClass")
            .scalar("reason")
            .scalar("startTime"),
    );
    let pod = g.add_struct(
        "io.k8s.api.core.v1.Pod",
        StructDef::new()
            .scalar("apiVersion")
            .scalar("kind")
            .field("metadata", Field::new(meta).in_zero())
            .field("spec", Field::new(pod_spec).in_zero())
            .field("status", Field::new(pod_status).in_zero()),
    );

    // apps/v1 Deployment
    let template = g.add_struct(
        "io.k8s.api.core.v1.PodTemplateSpec",
        StructDef::new()
            .field("metadata", Field::new(meta).in_zero())
            .field("spec", Field::new(pod_spec).in_zero()),
    );
    let rolling = g.add_struct(
        "io.k8s.api.apps.v1.RollingUpdateDeployment",
        StructDef::new().scalar("maxSurge").scalar("maxUnavailable"),
    );
    let strategy = g.add_struct(
        "io.k8s.api.apps.v1.DeploymentStrategy",
        StructDef::new()
            .field("rollingUpdate", rolling)
            .scalar("type"),
    );
    let dep_spec = g.add_struct(
        "io.k8s.api.apps.v1.DeploymentSpec",
        StructDef::new()
            .scalar("minReadySeconds")
            .scalar("paused")
            .scalar("progressDeadlineSeconds")
            .scalar("replicas")
            .scalar("revisionHistoryLimit")
            .field("selector", selector)
            .field("strategy", Field::new(strategy).in_zero())
            .field("template", Field::new(template).in_zero()),
    );
    let dep_status = g.add_struct(
        "io.k8s.api.apps.v1.DeploymentStatus",
        StructDef::new()
            .scalar("availableReplicas")
            .scalar("collisionCount")
            .field(
                "conditions",
                Field::new(conditions).strategy("merge").merge_key("type"),
            )
            .scalar("observedGeneration")
            .scalar("readyReplicas")
            .scalar("replicas")
            .scalar("unavailableReplicas")
            .scalar("updatedReplicas"),
    );
    let deployment = g.add_struct(
        "io.k8s.api.apps.v1.Deployment",
        StructDef::new()
            .scalar("apiVersion")
            .scalar("kind")
            .field("metadata", Field::new(meta).in_zero())
            .field("spec", Field::new(dep_spec).in_zero())
            .field("status", Field::new(dep_status).in_zero()),
    );
    (g, Roots { pod, deployment })
}

/// The pod spec of the fixtures: two containers with env, resources,
/// probes and mounts, three volumes, defaults filled in as stored.
pub fn pod_spec() -> Value {
    json!({
        "containers": [
            {
                "name": "web",
                "image": "registry.example.com/team/web:1.25.3",
                "imagePullPolicy": "IfNotPresent",
                "ports": [
                    {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                    {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}
                ],
                "env": [
                    {"name": "LOG_LEVEL", "value": "info"},
                    {"name": "CACHE_DIR", "value": "/cache"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}}
                ],
                "resources": {
                    "limits": {"cpu": "500m", "memory": "512Mi"},
                    "requests": {"cpu": "250m", "memory": "256Mi"}
                },
                "livenessProbe": {
                    "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                    "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 1,
                    "successThreshold": 1, "failureThreshold": 3
                },
                "readinessProbe": {
                    "httpGet": {"path": "/ready", "port": "http", "scheme": "HTTP"},
                    "periodSeconds": 5, "timeoutSeconds": 1,
                    "successThreshold": 1, "failureThreshold": 3
                },
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]},
                    "readOnlyRootFilesystem": true
                },
                "volumeMounts": [
                    {"name": "config", "mountPath": "/etc/web", "readOnly": true},
                    {"name": "cache", "mountPath": "/cache"},
                    {"name": "kube-api-access-x7k2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}
                ],
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File"
            },
            {
                "name": "log-shipper",
                "image": "registry.example.com/infra/shipper:0.9.1",
                "imagePullPolicy": "IfNotPresent",
                "command": ["/bin/shipper"],
                "args": ["--input=/cache/logs", "--output=http://collector.logging:8080"],
                "env": [
                    {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}}
                ],
                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                "volumeMounts": [
                    {"name": "cache", "mountPath": "/cache", "readOnly": true},
                    {"name": "kube-api-access-x7k2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}
                ],
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File"
            }
        ],
        "volumes": [
            {"name": "config", "configMap": {"name": "web-config", "defaultMode": 420}},
            {"name": "cache", "emptyDir": {}},
            {"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
            ]}}
        ],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "serviceAccountName": "default",
        "serviceAccount": "default",
        "securityContext": {"runAsNonRoot": true, "fsGroup": 2000},
        "schedulerName": "default-scheduler",
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ],
        "priority": 0,
        "enableServiceLinks": true,
        "preemptionPolicy": "PreemptLowerPriority"
    })
}

/// A pod as a create request carries it (after defaulting, before storage).
pub fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-7d4b9c8f6-q2x8z",
            "generateName": "web-7d4b9c8f6-",
            "namespace": "default",
            "uid": "6f1c2a9e-3b7d-4e52-9a1f-0c8d7e6b5a43",
            "creationTimestamp": "2024-05-01T10:00:00Z",
            "labels": {"app": "web", "pod-template-hash": "7d4b9c8f6", "tier": "frontend"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c8f6",
                "uid": "0a9b8c7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d",
                "controller": true, "blockOwnerDeletion": true
            }]
        },
        "spec": pod_spec(),
        "status": {"phase": "Pending", "qosClass": "Burstable"}
    })
}

/// A deployment whose template is the pod spec above.
pub fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "1b2c3d4e-5f60-4718-9a0b-1c2d3e4f5a6b",
            "creationTimestamp": "2024-05-01T10:00:00Z",
            "generation": 1,
            "labels": {"app": "web"},
            "annotations": {"deployment.kubernetes.io/revision": "1"}
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "frontend"}},
                "spec": pod_spec()
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600
        },
        "status": {}
    })
}
