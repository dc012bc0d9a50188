"""The official Python `kubernetes` client against ferrokube: create, list with label
and field selectors, watch. Exits non-zero (with a message) on the first mismatch.
KUBECONFIG points at the cluster's admin kubeconfig."""

import sys
import threading

from kubernetes import client, config, watch

config.load_kube_config()
v1 = client.CoreV1Api()
apps = client.AppsV1Api()


def check(cond, what):
    if not cond:
        print("FAILED:", what, file=sys.stderr)
        sys.exit(1)


ns = "pytest"
v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
for name, tier in [("a", "web"), ("b", "web"), ("c", "db")]:
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, labels={"tier": tier}),
        data={"who": name},
    )
    created = v1.create_namespaced_config_map(ns, body)
    check(created.metadata.uid, "created object has a uid")

web = v1.list_namespaced_config_map(ns, label_selector="tier=web")
check([c.metadata.name for c in web.items] == ["a", "b"], "label selector tier=web")
db = v1.list_namespaced_config_map(ns, label_selector="tier in (db)")
check([c.metadata.name for c in db.items] == ["c"], "set-based selector")
one = v1.list_namespaced_config_map(ns, field_selector="metadata.name=b")
check(len(one.items) == 1 and one.items[0].data == {"who": "b"}, "field selector")
everything = v1.list_config_map_for_all_namespaces(label_selector="tier")
check(len(everything.items) == 3, "list across namespaces")

dep = client.V1Deployment(
    metadata=client.V1ObjectMeta(name="web"),
    spec=client.V1DeploymentSpec(
        replicas=2,
        selector=client.V1LabelSelector(match_labels={"app": "web"}),
        template=client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels={"app": "web"}),
            spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
        ),
    ),
)
made = apps.create_namespaced_deployment(ns, dep)
check(made.spec.strategy.type == "RollingUpdate", "defaults applied")
try:
    v1.read_namespaced_config_map("nope", ns)
    check(False, "missing object should be 404")
except client.exceptions.ApiException as e:
    check(e.status == 404, "404 for a missing object")

rv = web.metadata.resource_version
events = []
w = watch.Watch()


def changes():
    v1.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="d", labels={"tier": "web"}))
    )
    v1.patch_namespaced_config_map("d", ns, {"data": {"x": "1"}})
    v1.delete_namespaced_config_map("d", ns)


threading.Timer(0.5, changes).start()
for ev in w.stream(
    v1.list_namespaced_config_map,
    ns,
    label_selector="tier=web",
    resource_version=rv,
    timeout_seconds=20,
):
    events.append((ev["type"], ev["object"].metadata.name))
    if ev["type"] == "DELETED":
        w.stop()
check(events == [("ADDED", "d"), ("MODIFIED", "d"), ("DELETED", "d")], "watch events: %r" % events)
print("ok")
