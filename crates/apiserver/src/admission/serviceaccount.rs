//! ServiceAccount admission, as upstream's plugin does it for new pods:
//!
//! - a pod without `spec.serviceAccountName` gets `default` (and the deprecated
//!   `serviceAccount` with it);
//! - the service account must exist, else the pod is forbidden (`error looking up
//!   service account <ns>/<name>: serviceaccount "<name>" not found`). The `default`
//!   account is looked up for about a second and a half before giving up, since the
//!   ServiceAccount controller creates it right after the namespace;
//! - unless `automountServiceAccountToken` is false (the pod's, else the account's),
//!   the projected volume `kube-api-access-<random>` (token, cluster CA, namespace) is
//!   added and mounted read-only at `/var/run/secrets/kubernetes.io/serviceaccount` in
//!   every init and regular container that has no mount there yet;
//! - a pod without image pull secrets gets the account's;
//! - mirror pods (annotation `kubernetes.io/config.mirror`) are left alone but may not
//!   reference service accounts, secrets or token projections.

use crate::error::{ApiError, ApiResult};
use crate::handlers::Ctx;
use crate::object;
use serde_json::{json, Value};
use std::time::Duration;

/// The account pods run as when they name none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// Prefix of the projected token volume's name.
pub const TOKEN_VOLUME_PREFIX: &str = "kube-api-access-";
/// Where containers find the token, CA and namespace.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The annotation that marks mirror pods.
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// The ConfigMap holding the cluster CA in every namespace.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
/// How many times the `default` account is looked up before giving up.
const DEFAULT_ACCOUNT_ATTEMPTS: u32 = 10;

/// The projected volume source upstream's plugin adds (`defaultMode` set
/// explicitly, as upstream does).
pub fn token_volume_source() -> Value {
    json!({
        "defaultMode": 420,
        "sources": [
            {"serviceAccountToken": {
                "expirationSeconds": crate::serviceaccount::WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS,
                "path": "token",
            }},
            {"configMap": {
                "name": ROOT_CA_CONFIGMAP,
                "items": [{"key": "ca.crt", "path": "ca.crt"}],
            }},
            {"downwardAPI": {
                "items": [{
                    "path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                }],
            }},
        ],
    })
}

/// Admits a new pod (storage-version JSON).
pub async fn admit_pod(ctx: &Ctx<'_>, pod: &mut Value) -> ApiResult<()> {
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or(&ctx.req.name)
        .to_string();
    let forbidden = |msg: String| {
        ApiError::forbidden(format!("pods \"{name}\" is forbidden: {msg}"))
            .with_details(json!({"name": name, "kind": "pods"}))
    };
    if pod["metadata"]["annotations"]
        .get(MIRROR_POD_ANNOTATION)
        .is_some()
    {
        return validate_mirror_pod(pod).map_err(|m| forbidden(m.to_string()));
    }
    if !pod["spec"].is_object() {
        return Ok(());
    }
    let mut account = pod["spec"]["serviceAccountName"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if account.is_empty() {
        account = DEFAULT_SERVICE_ACCOUNT.to_string();
        pod["spec"]["serviceAccountName"] = json!(account);
        pod["spec"]["serviceAccount"] = json!(account);
    }
    let ns = ctx.namespace().to_string();
    let sa = get_service_account(ctx, &ns, &account).await.map_err(|e| {
        forbidden(format!(
            "error looking up service account {ns}/{account}: {e}"
        ))
    })?;
    if should_automount(&sa, pod) {
        mount_token(pod, &object::random_suffix());
    }
    let has_pull_secrets = pod["spec"]["imagePullSecrets"]
        .as_array()
        .is_some_and(|a| !a.is_empty());
    if !has_pull_secrets {
        let from_sa: Vec<Value> = sa["imagePullSecrets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| json!({"name": s["name"].as_str().unwrap_or("")}))
            .collect();
        if !from_sa.is_empty() {
            pod["spec"]["imagePullSecrets"] = Value::Array(from_sa);
        }
    }
    Ok(())
}

/// The service account, from the cache or, when missing there, read consistently
/// (several times for `default`, which its controller may not have made yet).
async fn get_service_account(ctx: &Ctx<'_>, ns: &str, name: &str) -> Result<Value, String> {
    let Some(store) = ctx.server.registry.get("serviceaccounts") else {
        return Err("service accounts are not served".into());
    };
    let key = store.key(ns, name);
    if let Some(item) = store.cache.get_known(&key) {
        return Ok(item.extra.value());
    }
    let attempts = if name == DEFAULT_SERVICE_ACCOUNT {
        DEFAULT_ACCOUNT_ATTEMPTS
    } else {
        1
    };
    // One random interval of 100-200 ms between attempts, as upstream.
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 100;
    let interval = Duration::from_millis(100 + jitter);
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(interval).await;
        }
        match store.cache.get_cached(&key).await {
            Ok(Some(item)) => return Ok(item.extra.value()),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!("serviceaccount \"{name}\" not found"))
}

/// Whether the token is mounted: the pod's choice, else the account's, else yes.
fn should_automount(sa: &Value, pod: &Value) -> bool {
    pod["spec"]["automountServiceAccountToken"]
        .as_bool()
        .or_else(|| sa["automountServiceAccountToken"].as_bool())
        .unwrap_or(true)
}

/// Mounts the token volume in every init and regular container without a mount at
/// the token path, adding the volume (named with `suffix`) unless the pod has one.
pub fn mount_token(pod: &mut Value, suffix: &str) {
    let existing = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .find(|n| n.starts_with(TOKEN_VOLUME_PREFIX))
        .map(str::to_string);
    let volume_name = existing
        .clone()
        .unwrap_or_else(|| format!("{TOKEN_VOLUME_PREFIX}{suffix}"));
    let mount = json!({"name": volume_name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut needed = false;
    for field in ["initContainers", "containers"] {
        let Some(containers) = pod["spec"][field].as_array_mut() else {
            continue;
        };
        for c in containers {
            let mounted = c["volumeMounts"]
                .as_array()
                .is_some_and(|ms| ms.iter().any(|m| m["mountPath"] == TOKEN_MOUNT_PATH));
            if mounted {
                continue;
            }
            match c["volumeMounts"].as_array_mut() {
                Some(ms) => ms.push(mount.clone()),
                None => c["volumeMounts"] = json!([mount.clone()]),
            }
            needed = true;
        }
    }
    if existing.is_none() && needed {
        let volume = json!({"name": volume_name, "projected": token_volume_source()});
        match pod["spec"]["volumes"].as_array_mut() {
            Some(vs) => vs.push(volume),
            None => pod["spec"]["volumes"] = json!([volume]),
        }
    }
}

/// Whether the pod references any secret (upstream's `VisitPodSecretNames`).
fn references_secrets(pod: &Value) -> bool {
    let spec = &pod["spec"];
    let non_empty = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty());
    if spec["imagePullSecrets"]
        .as_array()
        .is_some_and(|a| a.iter().any(|s| non_empty(&s["name"])))
    {
        return true;
    }
    for v in spec["volumes"].as_array().into_iter().flatten() {
        let refs = [
            &v["secret"]["secretName"],
            &v["azureFile"]["secretName"],
            &v["cephfs"]["secretRef"]["name"],
            &v["cinder"]["secretRef"]["name"],
            &v["flexVolume"]["secretRef"]["name"],
            &v["rbd"]["secretRef"]["name"],
            &v["iscsi"]["secretRef"]["name"],
            &v["scaleIO"]["secretRef"]["name"],
            &v["storageos"]["secretRef"]["name"],
            &v["csi"]["nodePublishSecretRef"]["name"],
        ];
        if refs.into_iter().any(non_empty) {
            return true;
        }
        if v["projected"]["sources"]
            .as_array()
            .is_some_and(|ss| ss.iter().any(|s| non_empty(&s["secret"]["name"])))
        {
            return true;
        }
    }
    for field in ["initContainers", "containers", "ephemeralContainers"] {
        for c in spec[field].as_array().into_iter().flatten() {
            if c["envFrom"]
                .as_array()
                .is_some_and(|es| es.iter().any(|e| non_empty(&e["secretRef"]["name"])))
            {
                return true;
            }
            if c["env"].as_array().is_some_and(|es| {
                es.iter()
                    .any(|e| non_empty(&e["valueFrom"]["secretKeyRef"]["name"]))
            }) {
                return true;
            }
        }
    }
    false
}

/// What mirror pods may not reference.
fn validate_mirror_pod(pod: &Value) -> Result<(), &'static str> {
    if pod["spec"]["serviceAccountName"]
        .as_str()
        .is_some_and(|s| !s.is_empty())
    {
        return Err("a mirror pod may not reference service accounts");
    }
    if references_secrets(pod) {
        return Err("a mirror pod may not reference secrets");
    }
    let projects_token = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|v| {
            v["projected"]["sources"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .any(|s| s.get("serviceAccountToken").is_some_and(|t| !t.is_null()));
    if projects_token {
        return Err("a mirror pod may not use ServiceAccountToken volume projections");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_the_token_like_upstream() {
        let mut pod = json!({"spec": {
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [
                {"name": "app", "image": "busybox",
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                {"name": "own", "image": "busybox",
                 "volumeMounts": [{"name": "mine", "mountPath": TOKEN_MOUNT_PATH}]},
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        }});
        mount_token(&mut pod, "x7k2p");
        let mount = json!({"name": "kube-api-access-x7k2p", "readOnly": true,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"});
        assert_eq!(
            pod["spec"]["initContainers"][0]["volumeMounts"],
            json!([mount])
        );
        assert_eq!(
            pod["spec"]["containers"][0]["volumeMounts"],
            json!([{"name": "data", "mountPath": "/data"}, mount])
        );
        assert_eq!(
            pod["spec"]["containers"][1]["volumeMounts"],
            json!([{"name": "mine", "mountPath": TOKEN_MOUNT_PATH}])
        );
        assert_eq!(
            pod["spec"]["volumes"][1],
            json!({
                "name": "kube-api-access-x7k2p",
                "projected": {
                    "defaultMode": 420,
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt",
                            "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                        {"downwardAPI": {"items": [{"path": "namespace",
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                    ],
                },
            })
        );
        // An existing kube-api-access volume is reused, not duplicated.
        let mut again = json!({"spec": {
            "containers": [{"name": "c"}],
            "volumes": [{"name": "kube-api-access-abcde", "projected": {"sources": []}}],
        }});
        mount_token(&mut again, "zzzzz");
        assert_eq!(again["spec"]["volumes"].as_array().unwrap().len(), 1);
        assert_eq!(
            again["spec"]["containers"][0]["volumeMounts"][0]["name"],
            "kube-api-access-abcde"
        );
    }

    #[test]
    fn automount_choice() {
        let sa_off = json!({"automountServiceAccountToken": false});
        let pod_on = json!({"spec": {"automountServiceAccountToken": true}});
        assert!(should_automount(&sa_off, &pod_on));
        assert!(!should_automount(&sa_off, &json!({"spec": {}})));
        assert!(should_automount(&json!({}), &json!({"spec": {}})));
        assert!(!should_automount(
            &json!({}),
            &json!({"spec": {"automountServiceAccountToken": false}})
        ));
    }

    #[test]
    fn mirror_pods() {
        let ok = json!({"spec": {"containers": [{"name": "c"}]}});
        assert!(validate_mirror_pod(&ok).is_ok());
        let sa = json!({"spec": {"serviceAccountName": "x"}});
        assert_eq!(
            validate_mirror_pod(&sa),
            Err("a mirror pod may not reference service accounts")
        );
        let secret = json!({"spec": {"containers": [{"name": "c",
            "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]}});
        assert_eq!(
            validate_mirror_pod(&secret),
            Err("a mirror pod may not reference secrets")
        );
        let token = json!({"spec": {"volumes": [{"name": "t", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token"}}]}}]}});
        assert_eq!(
            validate_mirror_pod(&token),
            Err("a mirror pod may not use ServiceAccountToken volume projections")
        );
    }
}

#[cfg(test)]
mod api_tests {
    use super::*;
    use crate::testing::TestServer;
    use http::StatusCode;

    fn pod(name: &str, spec: Value) -> Value {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "app", "image": "busybox"}]);
        }
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pods_run_as_an_existing_service_account_with_its_token() {
        let api = TestServer::start().await;
        api.create(
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
        )
        .await;
        let pods = "/api/v1/namespaces/team/pods";

        // No default service account yet: refused after waiting for it a while.
        let started = std::time::Instant::now();
        let (code, s) = api.call("POST", pods, Some(&pod("early", json!({})))).await;
        assert_eq!(code, StatusCode::FORBIDDEN);
        assert_eq!(
            s,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "pods \"early\" is forbidden: error looking up service account team/default: serviceaccount \"default\" not found",
                "reason": "Forbidden", "details": {"name": "early", "kind": "pods"}, "code": 403})
        );
        assert!(started.elapsed() >= std::time::Duration::from_millis(900));
        let (code, s) = api
            .call(
                "POST",
                pods,
                Some(&pod("named", json!({"serviceAccountName": "ghost"}))),
            )
            .await;
        assert_eq!(code, StatusCode::FORBIDDEN);
        assert_eq!(
            s["message"],
            "pods \"named\" is forbidden: error looking up service account team/ghost: serviceaccount \"ghost\" not found"
        );

        api.create(
            "/api/v1/namespaces/team/serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"},
                "imagePullSecrets": [{"name": "registry"}]}),
        )
        .await;
        let created = api
            .create(
                pods,
                pod(
                    "web",
                    json!({
                        "initContainers": [{"name": "init", "image": "busybox"}],
                        "containers": [{"name": "app", "image": "busybox"}],
                    }),
                ),
            )
            .await;
        let (_, got) = api.call("GET", &format!("{pods}/web"), None).await;
        assert_eq!(got["spec"], created["spec"]);
        let spec = &got["spec"];
        assert_eq!(spec["serviceAccountName"], "default");
        assert_eq!(spec["serviceAccount"], "default");
        assert_eq!(spec["imagePullSecrets"], json!([{"name": "registry"}]));
        let volumes = spec["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 1);
        let name = volumes[0]["name"].as_str().unwrap();
        let suffix = name.strip_prefix("kube-api-access-").unwrap();
        assert_eq!(suffix.len(), 5);
        assert!(suffix
            .chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert_eq!(
            volumes[0],
            json!({"name": name, "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}, "path": "namespace"}]}},
                ],
            }})
        );
        let mount = json!([{"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            "name": name, "readOnly": true}]);
        assert_eq!(spec["containers"][0]["volumeMounts"], mount);
        assert_eq!(spec["initContainers"][0]["volumeMounts"], mount);

        // automountServiceAccountToken: false on the pod, or on the account.
        let quiet = api
            .create(
                pods,
                pod("quiet", json!({"automountServiceAccountToken": false})),
            )
            .await;
        assert!(quiet["spec"].get("volumes").is_none(), "{quiet}");
        assert!(quiet["spec"]["containers"][0].get("volumeMounts").is_none());
        assert_eq!(quiet["spec"]["serviceAccountName"], "default");
        api.create(
            "/api/v1/namespaces/team/serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"},
                "automountServiceAccountToken": false}),
        )
        .await;
        let robot = api
            .create(pods, pod("robot", json!({"serviceAccountName": "robot"})))
            .await;
        assert!(robot["spec"].get("volumes").is_none(), "{robot}");
        let loud = api
            .create(
                pods,
                pod(
                    "loud",
                    json!({"serviceAccountName": "robot", "automountServiceAccountToken": true}),
                ),
            )
            .await;
        assert_eq!(loud["spec"]["volumes"].as_array().unwrap().len(), 1);

        // Mirror pods are not changed, and may not name a service account.
        let mirror = |name: &str, spec: Value| {
            let mut p = pod(name, spec);
            p["metadata"]["annotations"] = json!({MIRROR_POD_ANNOTATION: "hash"});
            p["spec"]["nodeName"] = json!("n1");
            p
        };
        let m = api.create(pods, mirror("static", json!({}))).await;
        assert!(m["spec"].get("serviceAccountName").is_none(), "{m}");
        assert!(m["spec"].get("volumes").is_none());
        let (code, s) = api
            .call(
                "POST",
                pods,
                Some(&mirror("static2", json!({"serviceAccountName": "default"}))),
            )
            .await;
        assert_eq!(code, StatusCode::FORBIDDEN);
        assert_eq!(
            s["message"],
            "pods \"static2\" is forbidden: a mirror pod may not reference service accounts"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_plugin_can_be_disabled() {
        let api =
            TestServer::start_with(|c| c.disable_admission_plugins = vec!["ServiceAccount".into()])
                .await;
        let p = api
            .create("/api/v1/namespaces/default/pods", pod("plain", json!({})))
            .await;
        assert!(p["spec"].get("serviceAccountName").is_none(), "{p}");
        assert!(p["spec"].get("volumes").is_none());
    }
}
