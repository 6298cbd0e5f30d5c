"""Client conformance of a Kubernetes API server, as seen by the official Python client.

Run with the interpreter of a virtual environment that has `kubernetes` installed
(scripts/python-clients makes them) and a kubeconfig:

    .tools/python/k8s-37/bin/python e2e/clients/python_conformance.py KUBECONFIG

Each check prints one line, `PASS name` or `FAIL name: why`, and the last line counts them
(`python-client 37.0.3: 52/52 checks passed`). The exit code is 1 when any check failed. Every
check works in a namespace of its own making, deleted at the end (that deletion is a check
too), so the script can run against any cluster; it takes seconds.
"""

import sys
import time
import traceback
import uuid

import kubernetes
from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

RESULTS = []


def check(name):
    """Runs the decorated function at once as one named check; an exception is its failure."""

    def run(fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - any exception is the check's failure
            why = f"{type(e).__name__}: {e}".replace("\n", " ")
            if isinstance(e, ApiException):
                why = f"HTTP {e.status} {e.reason}: {_text(e.body)[:300]}".replace("\n", " ")
            elif not isinstance(e, AssertionError):
                why += " at " + traceback.extract_tb(e.__traceback__)[-1].line
            RESULTS.append((name, why))
            print(f"FAIL {name}: {why}", flush=True)
        else:
            RESULTS.append((name, None))
            print(f"PASS {name}", flush=True)
        return fn

    return run


def expect_status(code, fn, *args, **kwargs):
    """Calls fn and asserts that the server answered with HTTP `code`; returns the exception."""
    try:
        fn(*args, **kwargs)
    except ApiException as e:
        assert e.status == code, f"expected HTTP {code}, got {e.status}: {e.body}"
        return e
    raise AssertionError(f"expected HTTP {code}, the call succeeded")


def eventually(what, fn, timeout=10.0):
    """Polls fn until it returns a true value; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def main():
    kubeconfig = sys.argv[1]
    config.load_kube_config(config_file=kubeconfig)
    api = client.ApiClient()
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    batch = client.BatchV1Api(api)
    custom = client.CustomObjectsApi(api)
    ext = client.ApiextensionsV1Api(api)
    ns = f"pyconf-{uuid.uuid4().hex[:8]}"
    dyn = {}

    def cm(name, data=None, labels=None):
        return client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=name, labels=labels), data=data or {"k": "v"}
        )

    # --- Discovery ---------------------------------------------------------------------------
    @check("version")
    def _():
        info = client.VersionApi(api).get_code()
        assert info.major == "1" and info.git_version.startswith("v1."), info

    @check("discovery_core_and_groups")
    def _():
        assert "v1" in client.CoreApi(api).get_api_versions().versions
        groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
        for g in ("apps", "batch", "rbac.authorization.k8s.io", "apiextensions.k8s.io"):
            assert g in groups, f"{g} missing from /apis: {sorted(groups)}"

    @check("dynamic_client_discovery")
    def _():
        dyn["client"] = dynamic.DynamicClient(api)
        dyn["configmaps"] = dyn["client"].resources.get(api_version="v1", kind="ConfigMap")
        dyn["deployments"] = dyn["client"].resources.get(api_version="apps/v1", kind="Deployment")

    # --- Namespaces and their default ServiceAccount -----------------------------------------
    @check("namespace_create")
    def _():
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        assert core.read_namespace(ns).status.phase == "Active"

    @check("namespace_gets_default_serviceaccount")
    def _():
        eventually(
            "ServiceAccount default",
            lambda: [sa for sa in core.list_namespaced_service_account(ns).items
                     if sa.metadata.name == "default"],
        )

    # --- create / get / list / replace -------------------------------------------------------
    @check("create_get_list")
    def _():
        created = core.create_namespaced_config_map(ns, cm("a", labels={"app": "web", "tier": "front"}))
        assert created.metadata.uid and created.metadata.resource_version
        assert created.metadata.creation_timestamp is not None
        got = core.read_namespaced_config_map("a", ns)
        assert got.data == {"k": "v"} and got.metadata.uid == created.metadata.uid
        names = [c.metadata.name for c in core.list_namespaced_config_map(ns).items]
        assert "a" in names, names

    @check("get_missing_is_404_not_found")
    def _():
        e = expect_status(404, core.read_namespaced_config_map, "missing", ns)
        assert '"reason":"NotFound"' in _text(e.body).replace(" ", ""), e.body

    @check("create_existing_is_409_already_exists")
    def _():
        e = expect_status(409, core.create_namespaced_config_map, ns, cm("a"))
        assert "AlreadyExists" in _text(e.body), e.body

    @check("replace")
    def _():
        cur = core.read_namespaced_config_map("a", ns)
        cur.data = {"k": "replaced"}
        out = core.replace_namespaced_config_map("a", ns, cur)
        assert out.data == {"k": "replaced"}
        assert int(out.metadata.resource_version) > int(cur.metadata.resource_version)

    @check("replace_with_stale_resource_version_is_409_conflict")
    def _():
        cur = core.read_namespaced_config_map("a", ns)
        stale = core.read_namespaced_config_map("a", ns)
        cur.data = {"k": "first"}
        core.replace_namespaced_config_map("a", ns, cur)
        stale.data = {"k": "second"}
        e = expect_status(409, core.replace_namespaced_config_map, "a", ns, stale)
        assert "Conflict" in _text(e.body), e.body

    @check("create_with_generate_name")
    def _():
        body = client.V1ConfigMap(metadata=client.V1ObjectMeta(generate_name="gen-"), data={})
        out = core.create_namespaced_config_map(ns, body)
        assert out.metadata.name.startswith("gen-") and len(out.metadata.name) > 4, out.metadata.name

    @check("dry_run_create_is_not_stored")
    def _():
        core.create_namespaced_config_map(ns, cm("dry"), dry_run="All")
        expect_status(404, core.read_namespaced_config_map, "dry", ns)

    @check("secret_string_data_becomes_data")
    def _():
        body = client.V1Secret(metadata=client.V1ObjectMeta(name="s"), string_data={"password": "p"})
        out = core.create_namespaced_secret(ns, body)
        assert out.data == {"password": "cA=="} and out.type == "Opaque", (out.data, out.type)

    # --- patches -----------------------------------------------------------------------------
    @check("patch_merge")
    def _():
        out = dyn["client"].patch(
            dyn["configmaps"], name="a", namespace=ns,
            body={"data": {"m": "1"}, "metadata": {"labels": {"patched": "merge"}}},
            content_type="application/merge-patch+json",
        )
        assert out.data["m"] == "1" and out.metadata.labels["patched"] == "merge"

    @check("patch_json")
    def _():
        out = core.patch_namespaced_config_map(
            "a", ns, [{"op": "add", "path": "/data/j", "value": "2"},
                      {"op": "test", "path": "/data/m", "value": "1"}]
        )
        assert out.data["j"] == "2", out.data

    @check("patch_json_failed_test_is_422")
    def _():
        expect_status(422, core.patch_namespaced_config_map, "a", ns,
                      [{"op": "test", "path": "/data/m", "value": "nope"}])

    @check("deployment_create")
    def _():
        dep = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [
                        {"name": "app", "image": "nginx:1", "env": [{"name": "A", "value": "1"}]},
                        {"name": "side", "image": "busybox:1"},
                    ]},
                },
            },
        }
        out = apps.create_namespaced_deployment(ns, dep)
        assert out.spec.template.spec.containers[0].name == "app"
        # Read back with the API server's defaults.
        assert out.spec.strategy.type == "RollingUpdate", out.spec.strategy
        assert out.spec.strategy.rolling_update.max_surge == "25%", out.spec.strategy
        assert out.spec.revision_history_limit == 10
        assert out.spec.progress_deadline_seconds == 600
        pod = out.spec.template.spec
        assert (pod.restart_policy, pod.dns_policy, pod.scheduler_name) == (
            "Always", "ClusterFirst", "default-scheduler"), pod
        assert pod.termination_grace_period_seconds == 30
        assert pod.containers[0].image_pull_policy == "IfNotPresent"
        assert pod.containers[0].termination_message_path == "/dev/termination-log"

    @check("built_in_field_of_wrong_type_is_400")
    def _():
        bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad"},
               "spec": {"replicas": "two", "selector": {"matchLabels": {"app": "bad"}},
                        "template": {"metadata": {"labels": {"app": "bad"}},
                                     "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
        # The dynamic client sends the body as is (the typed one checks types itself).
        e = expect_status(400, dyn["client"].create, dyn["deployments"], body=bad, namespace=ns)
        assert "spec.replicas" in _text(e.body), e.body
        expect_status(404, apps.read_namespaced_deployment, "bad", ns)

    @check("built_in_missing_required_field_is_422")
    def _():
        bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad"},
               "spec": {"selector": {"matchLabels": {"app": "bad"}},
                        "template": {"metadata": {"labels": {"app": "bad"}},
                                     "spec": {"containers": [{"name": "c"}]}}}}
        e = expect_status(422, dyn["client"].create, dyn["deployments"], body=bad, namespace=ns)
        assert ("spec.template.spec.containers[0].image: Required value" in _text(e.body)), e.body

    @check("patch_strategic_merges_containers_by_name")
    def _():
        out = apps.patch_namespaced_deployment("web", ns, {"spec": {"template": {"spec": {
            "containers": [{"name": "app", "image": "nginx:2"}]}}}})
        images = {c.name: c.image for c in out.spec.template.spec.containers}
        assert images == {"app": "nginx:2", "side": "busybox:1"}, images
        assert out.spec.template.spec.containers[0].env[0].name == "A"

    @check("patch_strategic_delete_directive")
    def _():
        out = dyn["client"].patch(
            dyn["deployments"], name="web", namespace=ns,
            body={"spec": {"template": {"spec": {"containers": [
                {"name": "side", "$patch": "delete"}]}}}},
            content_type="application/strategic-merge-patch+json",
        )
        assert [c.name for c in out.spec.template.spec.containers] == ["app"]

    @check("scale_subresource")
    def _():
        apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 3}})
        assert apps.read_namespaced_deployment_scale("web", ns).spec.replicas == 3
        assert apps.read_namespaced_deployment("web", ns).spec.replicas == 3

    @check("server_side_apply_creates")
    def _():
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "applied", "namespace": ns}, "data": {"owner": "first"}}
        out = dyn["client"].server_side_apply(
            dyn["configmaps"], body=body, field_manager="first").to_dict()
        assert out["data"] == {"owner": "first"}, out["data"]
        managers = [m["manager"] for m in out["metadata"]["managedFields"]]
        assert managers == ["first"], managers

    @check("server_side_apply_conflict_is_409")
    def _():
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "applied", "namespace": ns}, "data": {"owner": "second"}}
        try:
            dyn["client"].server_side_apply(dyn["configmaps"], body=body, field_manager="second")
        except ApiException as e:
            assert e.status == 409 and "conflict" in _text(e.body).lower(), e.body
        else:
            raise AssertionError("a conflicting apply without force succeeded")

    @check("server_side_apply_force_takes_ownership")
    def _():
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "applied", "namespace": ns}, "data": {"owner": "second"}}
        out = dyn["client"].server_side_apply(
            dyn["configmaps"], body=body, field_manager="second", force_conflicts=True).to_dict()
        assert out["data"] == {"owner": "second"}, out["data"]

    @check("server_side_apply_typed_client_with_force")
    def _():
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "applied", "namespace": ns}, "data": {"owner": "typed"}}
        # `force=True` reaches the server as the query parameter `force=True` (Python's
        # spelling), which the API server reads as true. Clients before 32 cannot choose the
        # patch content type of a typed call, so those send the same request by hand.
        if "_content_type" in _parameters(core.patch_namespaced_config_map_with_http_info):
            out = core.patch_namespaced_config_map(
                "applied", ns, body, field_manager="typed", force=True,
                _content_type="application/apply-patch+yaml")
        else:
            out = api.call_api(
                f"/api/v1/namespaces/{ns}/configmaps/applied", "PATCH",
                query_params=[("fieldManager", "typed"), ("force", True)],
                header_params={"Content-Type": "application/apply-patch+yaml",
                               "Accept": "application/json"},
                body=body, response_type="V1ConfigMap", auth_settings=["BearerToken"],
                _return_http_data_only=True)
        assert out.data == {"owner": "typed"}, out.data

    # --- selectors and pagination ------------------------------------------------------------
    @check("label_selector_equality_and_set")
    def _():
        for i, tier in enumerate(["front", "back", "back"]):
            core.create_namespaced_config_map(ns, cm(f"sel-{i}", labels={"sel": "yes", "tier": tier}))
        got = core.list_namespaced_config_map(ns, label_selector="sel=yes,tier=back").items
        assert sorted(c.metadata.name for c in got) == ["sel-1", "sel-2"], got
        got = core.list_namespaced_config_map(ns, label_selector="sel,tier in (front),tier!=back").items
        assert [c.metadata.name for c in got] == ["sel-0"], [c.metadata.name for c in got]
        got = core.list_namespaced_config_map(ns, label_selector="sel,!nothere,tier notin (back)").items
        assert [c.metadata.name for c in got] == ["sel-0"]

    @check("field_selector_metadata_name")
    def _():
        got = core.list_namespaced_config_map(ns, field_selector="metadata.name=sel-1").items
        assert [c.metadata.name for c in got] == ["sel-1"]
        got = core.list_namespaced_config_map(
            ns, label_selector="sel", field_selector="metadata.name!=sel-1").items
        assert sorted(c.metadata.name for c in got) == ["sel-0", "sel-2"]

    @check("pagination_limit_and_continue")
    def _():
        everything = {c.metadata.name for c in core.list_namespaced_config_map(ns).items}
        seen, token, pages = [], None, 0
        while True:
            page = core.list_namespaced_config_map(ns, limit=2, _continue=token)
            assert len(page.items) <= 2
            seen += [c.metadata.name for c in page.items]
            pages += 1
            token = page.metadata._continue
            if not token:
                break
            assert page.metadata.remaining_item_count is None or page.metadata.remaining_item_count > 0
        assert sorted(seen) == sorted(everything) and pages >= 3, (pages, seen)

    @check("list_across_namespaces")
    def _():
        got = core.list_config_map_for_all_namespaces(label_selector="sel=yes").items
        assert {c.metadata.namespace for c in got} == {ns}

    # --- watch -------------------------------------------------------------------------------
    @check("watch_from_resource_version_with_watch_helper")
    def _():
        rv = core.list_namespaced_config_map(ns).metadata.resource_version
        core.create_namespaced_config_map(ns, cm("watched", labels={"w": "1"}))
        core.patch_namespaced_config_map("watched", ns, {"data": {"k": "changed"}})
        core.delete_namespaced_config_map("watched", ns)
        w = watch.Watch()
        seen = []
        for event in w.stream(core.list_namespaced_config_map, ns, label_selector="w=1",
                              resource_version=rv, timeout_seconds=5):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 3:
                w.stop()
        assert seen == [("ADDED", "watched"), ("MODIFIED", "watched"), ("DELETED", "watched")], seen

    @check("watch_typed_objects_and_raw")
    def _():
        w = watch.Watch()
        for event in w.stream(core.list_namespaced_config_map, ns, field_selector="metadata.name=a",
                              timeout_seconds=5):
            assert isinstance(event["object"], client.V1ConfigMap), type(event["object"])
            assert event["raw_object"]["metadata"]["name"] == "a"
            w.stop()

    @check("watch_too_old_resource_version_is_410")
    def _():
        # A watch from resourceVersion 1 is served only while that history is kept; the API
        # server answers an expired one with an ERROR event carrying 410, which the helper raises.
        try:
            for _event in watch.Watch().stream(core.list_namespaced_config_map, ns,
                                               resource_version="1", timeout_seconds=2):
                pass
        except ApiException as e:
            assert e.status == 410, e
        # Still in history: the watch simply ends at its timeout, which is conformant too.

    # --- finalizers and deletion -------------------------------------------------------------
    @check("finalizer_holds_deletion_until_removed")
    def _():
        body = cm("held")
        body.metadata.finalizers = ["example.com/hold"]
        core.create_namespaced_config_map(ns, body)
        core.delete_namespaced_config_map("held", ns)
        held = core.read_namespaced_config_map("held", ns)
        assert held.metadata.deletion_timestamp is not None
        core.patch_namespaced_config_map("held", ns, {"metadata": {"finalizers": None}})
        expect_status(404, core.read_namespaced_config_map, "held", ns)

    @check("delete_with_preconditions_stale_uid_is_409")
    def _():
        opts = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-the-uid"))
        expect_status(409, core.delete_namespaced_config_map, "a", ns, body=opts)

    @check("delete_propagation_orphan_keeps_dependents")
    def _():
        owner = core.create_namespaced_config_map(ns, cm("owner"))
        dep = cm("dependent")
        dep.metadata.owner_references = [client.V1OwnerReference(
            api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid)]
        core.create_namespaced_config_map(ns, dep)
        core.delete_namespaced_config_map("owner", ns, propagation_policy="Orphan")
        eventually("owner deleted", lambda: not [c for c in core.list_namespaced_config_map(ns).items
                                                 if c.metadata.name == "owner"])
        left = core.read_namespaced_config_map("dependent", ns)
        assert not left.metadata.owner_references, left.metadata.owner_references

    @check("delete_propagation_background_collects_dependents")
    def _():
        owner = core.create_namespaced_config_map(ns, cm("owner2"))
        dep = cm("dependent2")
        dep.metadata.owner_references = [client.V1OwnerReference(
            api_version="v1", kind="ConfigMap", name="owner2", uid=owner.metadata.uid)]
        core.create_namespaced_config_map(ns, dep)
        core.delete_namespaced_config_map("owner2", ns, propagation_policy="Background")
        eventually("dependent collected", lambda: not [
            c for c in core.list_namespaced_config_map(ns).items if c.metadata.name == "dependent2"])

    @check("delete_collection_with_label_selector")
    def _():
        core.delete_collection_namespaced_config_map(ns, label_selector="sel=yes")
        assert core.list_namespaced_config_map(ns, label_selector="sel=yes").items == []

    # --- Jobs --------------------------------------------------------------------------------
    @check("job_create")
    def _():
        job = client.V1Job(
            metadata=client.V1ObjectMeta(name="once"),
            spec=client.V1JobSpec(template=client.V1PodTemplateSpec(spec=client.V1PodSpec(
                restart_policy="Never",
                containers=[client.V1Container(name="c", image="busybox:1")]))))
        out = batch.create_namespaced_job(ns, job)
        assert out.spec.backoff_limit == 6, out.spec.backoff_limit

    @check("autoscaling_v1_horizontal_pod_autoscaler")
    def _():
        hpa = client.V1HorizontalPodAutoscaler(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1HorizontalPodAutoscalerSpec(
                scale_target_ref=client.V1CrossVersionObjectReference(
                    api_version="apps/v1", kind="Deployment", name="web"),
                min_replicas=1, max_replicas=3, target_cpu_utilization_percentage=80))
        client.AutoscalingV1Api(api).create_namespaced_horizontal_pod_autoscaler(ns, hpa)
        got = client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler("web", ns)
        assert got.spec.max_replicas == 3, got.spec

    @check("self_subject_access_review_allows_the_local_admin")
    def _():
        review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                verb="create", resource="deployments", group="apps", namespace=ns)))
        out = client.AuthorizationV1Api(api).create_self_subject_access_review(review)
        assert out.status.allowed is True, out.status

    # --- CRDs and custom objects -------------------------------------------------------------
    group, plural = "conformance.example.com", "gadgets"

    @check("crd_create_and_established")
    def _():
        crd = {
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {
                "group": group, "scope": "Namespaced",
                "names": {"plural": plural, "singular": "gadget", "kind": "Gadget"},
                "versions": [{
                    "name": "v1", "served": True, "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {
                            "size": {"type": "integer"},
                            "colour": {"type": "string", "default": "blue"}}},
                        "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
                    }}},
                }],
            },
        }
        try:
            ext.create_custom_resource_definition(crd)
        except ApiException as e:
            if e.status != 409:
                raise
        eventually("CRD Established", lambda: any(
            c.type == "Established" and c.status == "True"
            for c in (ext.read_custom_resource_definition(f"{plural}.{group}").status.conditions or [])))

    def gadget(name, size):
        return {"apiVersion": f"{group}/v1", "kind": "Gadget",
                "metadata": {"name": name}, "spec": {"size": size}}

    @check("custom_object_create_get_list_defaults")
    def _():
        eventually("gadgets served", lambda: _served(custom, group, ns, plural))
        out = custom.create_namespaced_custom_object(group, "v1", ns, plural, gadget("g1", 1))
        assert out["spec"] == {"size": 1, "colour": "blue"}, out["spec"]
        got = custom.get_namespaced_custom_object(group, "v1", ns, plural, "g1")
        assert got["metadata"]["uid"] == out["metadata"]["uid"]
        items = custom.list_namespaced_custom_object(group, "v1", ns, plural)["items"]
        assert [i["metadata"]["name"] for i in items] == ["g1"]

    @check("custom_object_wrong_type_is_422")
    def _():
        expect_status(422, custom.create_namespaced_custom_object, group, "v1", ns, plural,
                      gadget("bad", "not-a-number"))

    @check("custom_object_status_subresource")
    def _():
        custom.patch_namespaced_custom_object_status(
            group, "v1", ns, plural, "g1", {"status": {"phase": "Ready"}, "spec": {"size": 99}})
        got = custom.get_namespaced_custom_object_status(group, "v1", ns, plural, "g1")
        assert got["status"] == {"phase": "Ready"}, got
        assert got["spec"]["size"] == 1, "a status write leaves spec alone"
        custom.patch_namespaced_custom_object(group, "v1", ns, plural, "g1",
                                              {"spec": {"size": 2}, "status": {"phase": "Nope"}})
        got = custom.get_namespaced_custom_object(group, "v1", ns, plural, "g1")
        assert got["spec"]["size"] == 2 and got["status"] == {"phase": "Ready"}, got

    @check("custom_object_replace_and_generation")
    def _():
        got = custom.get_namespaced_custom_object(group, "v1", ns, plural, "g1")
        gen = got["metadata"]["generation"]
        got["spec"]["size"] = 5
        out = custom.replace_namespaced_custom_object(group, "v1", ns, plural, "g1", got)
        assert out["spec"]["size"] == 5 and out["metadata"]["generation"] == gen + 1, out["metadata"]

    @check("custom_object_watch")
    def _():
        w = watch.Watch()
        for event in w.stream(custom.list_namespaced_custom_object, group, "v1", ns, plural,
                              timeout_seconds=5):
            assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "g1", event
            w.stop()

    @check("custom_object_delete")
    def _():
        custom.delete_namespaced_custom_object(group, "v1", ns, plural, "g1")
        expect_status(404, custom.get_namespaced_custom_object, group, "v1", ns, plural, "g1")

    # --- Events ------------------------------------------------------------------------------
    @check("core_v1_event_create_and_list")
    def _():
        ev = client.CoreV1Event(
            metadata=client.V1ObjectMeta(name="web.1"),
            involved_object=client.V1ObjectReference(kind="Deployment", name="web", namespace=ns,
                                                     api_version="apps/v1"),
            reason="Tested", message="by the conformance suite", type="Normal",
            source=client.V1EventSource(component="pyconf"),
            first_timestamp=_now(), last_timestamp=_now(), event_time=_now(), count=1,
            action="Testing", reporting_component="pyconf", reporting_instance="pyconf-1")
        core.create_namespaced_event(ns, ev)
        got = core.list_namespaced_event(ns, field_selector="involvedObject.name=web").items
        assert [e.reason for e in got] == ["Tested"], got

    @check("events_v1_sees_core_event")
    def _():
        got = client.EventsV1Api(api).list_namespaced_event(ns).items
        assert [e.reason for e in got] == ["Tested"], got
        assert got[0].note == "by the conformance suite", got[0].note

    # --- namespace deletion ------------------------------------------------------------------
    @check("crd_delete")
    def _():
        ext.delete_custom_resource_definition(f"{plural}.{group}")
        eventually("CRD gone", lambda: not [c for c in ext.list_custom_resource_definition().items
                                           if c.metadata.name == f"{plural}.{group}"])

    @check("namespace_delete_removes_content")
    def _():
        core.delete_namespace(ns)

        def gone():
            try:
                phase = core.read_namespace(ns).status.phase
                assert phase == "Terminating", phase
                return False
            except ApiException as e:
                if e.status == 404:
                    return True
                raise
        eventually(f"namespace {ns} deleted", gone)
        assert core.list_namespaced_config_map(ns).items == []

    passed = sum(1 for _, why in RESULTS if why is None)
    print(f"python-client {kubernetes.__version__}: {passed}/{len(RESULTS)} checks passed")
    return 0 if passed == len(RESULTS) else 1


def _served(custom, group, ns, plural):
    try:
        custom.list_namespaced_custom_object(group, "v1", ns, plural)
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise


def _text(body):
    """An error body as text: clients before 32 keep it as bytes."""
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return body or ""


def _parameters(fn):
    import inspect

    try:
        params = set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()
    # Clients before 32 take `**kwargs` and check them against a list inside the method.
    return params if "kwargs" not in params else set()


def _now():
    import datetime

    return datetime.datetime.now(datetime.timezone.utc)


if __name__ == "__main__":
    sys.exit(main())
