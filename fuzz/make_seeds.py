#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (fuzz/corpus/TARGET/NAME).

Each seed is a small input of one shape the product must handle: ordinary inputs, and the
hostile ones the tests already refuse (alias bombs, gzip and tar bombs, `..` paths, links
leaving the chart, deep nesting, huge numbers). Rerun after changing a seed: the files are
committed, this script only says where they came from. Python's standard library only.
"""

import gzip
import io
import json
import os
import tarfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    directory = os.path.join(ROOT, target)
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def billion_laughs():
    text = 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for level in range(1, 10):
        text += "a%d: &a%d [%s]\n" % (level, level, ", ".join(["*a%d" % (level - 1)] * 10))
    return text


def quadratic_aliases(items, aliases):
    return "a: &a [%s]\nb: [%s]\n" % (",".join(["lol"] * items), ",".join(["*a"] * aliases))


def block_nesting(levels):
    return "".join(" " * level + "k:\n" for level in range(levels))


# --- expressions ---------------------------------------------------------------------------------
EXPRESSIONS = {
    "plain": "no expression here",
    "output": "postgres://<< db.outputs.USER >>:<< db.outputs.PASSWORD >>@db:5432/app",
    "environment": "<< environment.name >>.<< environment.namespace >>/<< environment.variables.REGION >>",
    "service-release": "<< service.name >>-<< release.name >>-<< release.namespace >>",
    "helpers": "<< b64enc db.outputs.USER >> << b64dec db.outputs.B64 >> << urlencode cache.outputs.URL >>",
    "default": "<< default late.outputs.MISSING \"fallback\" >> << default db.outputs.EMPTY db.outputs.USER >>",
    "nested-helpers": "<< b64enc (b64enc (b64enc (default late.outputs.X db.outputs.BIG))) >>",
    "literal": "<< \"just a literal\" >> << 42 >> << true >> << null >>",
    "missing-output": "<< late.outputs.NOT_YET >>",
    "unknown-root": "<< nope.outputs.X >>",
    "bad-path": "<< db.inputs.X >> << db.outputs >> << environment.variables >>",
    "unclosed": "<< db.outputs.USER",
    "unopened": "db.outputs.USER >>",
    "nested-markers": "<< << db.outputs.USER >> >>",
    "handlebars-syntax": "<< {{db.outputs.USER}} >> {{ raw }} <<#if x>>y<</if>>",
    "amplification": "<< db.outputs.BIG >>" * 40,
    "b64dec-invalid": "<< b64dec \"not base64!\" >> << b64dec (b64enc \"\\xff\") >>",
    "unicode": "é<< db.outputs.USER >>€ 😀 << \"ü\" >>",
    "secret-in-error": "<< db.outputs.PASSWORD.inner >>",
    "empty-expression": "<<>> << >> <<   >>",
}
DOCUMENTS = {
    "document-keys": {"<< db.outputs.USER >>": "keys are left alone", "v": ["<< release.name >>", 1, None, True]},
    "document-deep": {"a": json.loads("[" * 120 + "\"<< db.outputs.USER >>\"" + "]" * 120)},
    "document-numbers": {"n": 1e308, "m": -9223372036854775808, "u": 18446744073709551615, "s": "<< 1e400 >>"},
}

# --- YAML values ---------------------------------------------------------------------------------
YAML = {
    "plain": "replicaCount: 2\nimage:\n  repository: nginx\n  tag: \"1.25\"\n",
    "scalars-yaml11": "a: yes\nb: Off\nc: 0755\nd: 0x1F\ne: 0b101\nf: +1\ng: 1_000\nh: 1:20\ni: ~\nj: .inf\n",
    "huge-numbers": "a: 123456789012345678901234567890\nb: 1e400\nc: -9223372036854775809\nd: 18446744073709551616\n",
    "merge-keys": "base: &b {a: 1, b: 2}\nover:\n  <<: *b\n  b: 3\nlist:\n  <<: [*b, {z: 3}]\n",
    "anchors": "a: &x [1, 2]\nb: *x\nc: &y {k: *x}\nd: [*y, *y]\n",
    "self-alias": "a: &x [1, *x]\n",
    "billion-laughs": billion_laughs(),
    "quadratic-aliases": quadratic_aliases(2000, 1000),
    "long-scalar-replayed": "a: &a \"%s\"\nb: [*a, *a, *a, *a, *a, *a, *a, *a]\n" % ("x" * 4000),
    "deep-block": block_nesting(300),
    "deep-flow": "a: " + "[" * 300 + "]" * 300 + "\n",
    "multi-document": "a: 1\n---\n---\nb: 2\n...\n",
    "tags": "a: !!int \"12\"\nb: !!str 12\nc: !!binary aGVsbG8=\nd: !custom x\ne: !!float 1\n",
    "complex-key": "? [a, b]\n: c\n? {x: 1}\n: d\n",
    "syntax-error": "a: [\n",
    "unexpected-char": "a: b\n@secret\n",
    "tabs": "a:\n\tb: 1\n",
    "duplicate-keys": "a: 1\na: 2\n",
    "block-scalars": "a: |\n  line1\n  line2\nb: >-\n  folded\n  text\n",
    "null-key": "~: 1\nnull: 2\n",
    "bom": "\ufeffa: 1\n",
}

# --- rendered manifests --------------------------------------------------------------------------
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n%sdata:\n  k: v\n"
MANIFESTS = {
    "one-configmap": "---\n# Source: shop/templates/cm.yaml\n" + CM % ("cm", ""),
    "other-namespace": "---\n# Source: shop/templates/cm.yaml\n" + CM % ("cm", "  namespace: kube-system\n"),
    "cluster-scoped-denied": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: admin-ish\n",
    "namespace-allowed": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: extra\n",
    "unknown-kind": "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
    "crd-in-crds-dir": "---\n# Source: shop/crds/widgets.yaml\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {plural: widgets, kind: Widget}\n---\n# Source: shop/templates/w.yaml\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
    "hooks": "---\n# Source: shop/templates/job.yaml\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    helm.sh/hook: pre-install,pre-upgrade,test\n    helm.sh/hook-weight: \"-5\"\n    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded\nspec: {}\n",
    "hook-weight-huge": "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\n  annotations:\n    helm.sh/hook: post-install\n    helm.sh/hook-weight: \"99999999999999999999\"\n",
    "list-kind": "apiVersion: v1\nkind: List\nitems:\n- " + (CM % ("a", "")).replace("\n", "\n  ") + "\n- " + (CM % ("b", "")).replace("\n", "\n  ") + "\n",
    "duplicate-object": CM % ("cm", "") + "---\n" + CM % ("cm", ""),
    "missing-name": "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
    "not-a-map": "- just\n- a list\n",
    "scalar-document": "hello\n",
    "kind-not-string": "apiVersion: 1\nkind: [ConfigMap]\nmetadata:\n  name: 7\n",
    "metadata-not-map": "apiVersion: v1\nkind: ConfigMap\nmetadata: nope\n",
    "labels-and-kept": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  labels: {a: b}\n  annotations:\n    helm.sh/resource-policy: keep\n",
    "alias-bomb": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n" + billion_laughs().replace("\n", "\n  ").replace("a0:", "data:\n  a0:", 1),
    "quadratic-aliases": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  " + quadratic_aliases(2000, 1000).replace("\n", "\n  "),
    "deep-nesting": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\nspec:\n" + "".join(" " * (l + 2) + "k:\n" for l in range(100)),
    "many-documents": "".join("---\n" + CM % ("cm%d" % i, "") for i in range(600)),
    "separators": "--- \n---\n...\n--- # comment\n" + CM % ("cm", "") + "---\n",
    "namespace-empty": CM % ("cm", "  namespace: \"\"\n"),
    "generate-name": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: cm-\n",
}

# --- chart archives ------------------------------------------------------------------------------
CHART_YAML = b"apiVersion: v2\nname: mychart\nversion: 0.1.0\n"


def tar_bytes(entries, gz=True, level=9):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for kind, name, payload in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif kind == "file":
                info.size = len(payload)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(payload))
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = payload
                tar.addfile(info)
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = payload
                tar.addfile(info)
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
                tar.addfile(info)
            elif kind == "chr":
                info.type = tarfile.CHRTYPE
                tar.addfile(info)
    data = buf.getvalue()
    return gzip.compress(data, compresslevel=level, mtime=0) if gz else data


def chart(*extra):
    return [("dir", "mychart/", None), ("file", "mychart/Chart.yaml", CHART_YAML),
            ("file", "mychart/values.yaml", b"a: 1\n"), ("dir", "mychart/templates/", None),
            ("file", "mychart/templates/cm.yaml", b"kind: ConfigMap\n")] + list(extra)


ARCHIVES = {
    "ok.tgz": tar_bytes(chart()),
    "ok.tar": tar_bytes(chart(), gz=False),
    "symlink-inside.tar": tar_bytes(chart(("symlink", "mychart/templates/link.yaml", "cm.yaml")), gz=False),
    "symlink-dotdot.tar": tar_bytes(chart(("symlink", "mychart/templates/link", "../../../etc/passwd")), gz=False),
    "symlink-absolute.tar": tar_bytes(chart(("symlink", "mychart/link", "/etc/passwd")), gz=False),
    "symlink-chain.tar": tar_bytes(chart(("dir", "mychart/sub/", None), ("symlink", "mychart/sub/up", ".."),
                                         ("symlink", "mychart/escape", "sub/up/..")), gz=False),
    "symlink-dot-chain.tar": tar_bytes(chart(("symlink", "mychart/y", "."), ("symlink", "mychart/x", "y/..")), gz=False),
    "write-through-link.tar": tar_bytes(chart(("symlink", "mychart/link", "templates"),
                                              ("file", "mychart/link/x.yaml", b"x")), gz=False),
    "symlink-loop.tar": tar_bytes(chart(("symlink", "mychart/a", "b"), ("symlink", "mychart/b", "a")), gz=False),
    "dir-link-fanout.tar": tar_bytes(chart(*[("symlink", "mychart/l%d" % i, "templates") for i in range(20)]), gz=False),
    "hardlink-inside.tar": tar_bytes(chart(("hardlink", "mychart/copy.yaml", "mychart/values.yaml")), gz=False),
    "hardlink-outside.tar": tar_bytes(chart(("hardlink", "mychart/passwd", "../etc/passwd")), gz=False),
    "hardlink-through-link.tar": tar_bytes(chart(("symlink", "mychart/y", "."), ("symlink", "mychart/x", "y/.."),
                                                 ("hardlink", "mychart/copy", "mychart/x/sentinel")), gz=False),
    "dotdot-path.tar": tar_bytes(chart(("file", "mychart/../evil.txt", b"x")), gz=False),
    "absolute-path.tar": tar_bytes(chart(("file", "/tmp/evil.txt", b"x")), gz=False),
    "two-top-levels.tar": tar_bytes(chart(("file", "other/Chart.yaml", CHART_YAML)), gz=False),
    "file-at-top.tar": tar_bytes([("file", "Chart.yaml", CHART_YAML)], gz=False),
    "duplicate-entry.tar": tar_bytes(chart(("file", "mychart/values.yaml", b"b: 2\n")), gz=False),
    "fifo.tar": tar_bytes(chart(("fifo", "mychart/pipe", None)), gz=False),
    "device.tar": tar_bytes(chart(("chr", "mychart/tty", None)), gz=False),
    "wrong-name.tar": tar_bytes([("dir", "mychart/", None), ("file", "mychart/Chart.yaml", b"name: other\nversion: 1.0.0\n")], gz=False),
    "chart-yaml-bomb.tar": tar_bytes([("dir", "mychart/", None),
                                      ("file", "mychart/Chart.yaml", (CHART_YAML.decode() + "x: " + billion_laughs().replace("\n", "\n  ")).encode())], gz=False),
    "chart-yaml-symlink.tar": tar_bytes([("dir", "mychart/", None), ("file", "mychart/real.yaml", CHART_YAML),
                                         ("symlink", "mychart/Chart.yaml", "real.yaml")], gz=False),
    "many-files.tgz": tar_bytes(chart(*[("file", "mychart/f%d" % i, b"") for i in range(250)])),
    "gzip-bomb.tgz": tar_bytes(chart(("file", "mychart/zeros", b"\0" * (8 << 20)))),
    "empty.tar": b"\0" * 1024,
    "not-gzip.tgz": b"\x1f\x8bnot really gzip",
}

# --- API requests --------------------------------------------------------------------------------
NS = "/api/v1/namespaces/default"
CMJ = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "labels": {"app": "x"}}, "data": {"k": "v"}})
CRD = json.dumps({
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "properties": {"size": {"type": "integer", "maximum": 10}}}}}}}]}})


def req(method, path, body=b"", content_type="application/json"):
    head = "%s %s\n" % (method, path)
    if content_type:
        head += "Content-Type: %s\n" % content_type
    if isinstance(body, str):
        body = body.encode()
    return head.encode() + b"\n" + body


def seq(*requests):
    return b"\n%%\n".join(requests)


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def unknown(api_version, kind, raw):
    type_meta = field(1, api_version.encode()) + field(2, kind.encode())
    return b"k8s\0" + field(1, type_meta) + field(2, raw)


PB_CM = unknown("v1", "ConfigMap", field(1, field(1, b"pb") + field(3, b"default")) + field(2, field(1, b"k") + field(2, b"v")))

REQUESTS = {
    "create-get-list": seq(req("POST", NS + "/configmaps", CMJ), req("GET", NS + "/configmaps/cm"),
                           req("GET", NS + "/configmaps?labelSelector=app%3Dx&limit=1"),
                           req("GET", "/api/v1/configmaps?fieldSelector=metadata.name%3Dcm")),
    "create-yaml": req("POST", NS + "/configmaps", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  k: v\n", "application/yaml"),
    "yaml-alias-bomb": req("POST", NS + "/configmaps", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  " + billion_laughs().replace("\n", "\n  "), "application/yaml"),
    "yaml-quadratic": req("PATCH", NS + "/configmaps/q?fieldManager=m", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: q\nx:\n  " + quadratic_aliases(600, 300).replace("\n", "\n  "), "application/apply-patch+yaml"),
    "deep-json": req("POST", NS + "/configmaps", "[" * 5000 + "]" * 5000),
    "huge-numbers": req("POST", NS + "/configmaps", '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"n","generation":1e400,"resourceVersion":"99999999999999999999999"},"data":{"k":"v"}}'),
    "merge-patch": seq(req("POST", NS + "/configmaps", CMJ), req("PATCH", NS + "/configmaps/cm", '{"data":{"k":null,"z":"1"}}', "application/merge-patch+json")),
    "json-patch": seq(req("POST", NS + "/configmaps", CMJ), req("PATCH", NS + "/configmaps/cm", '[{"op":"add","path":"/data/a","value":"1"},{"op":"move","from":"/data","path":"/data/x"},{"op":"test","path":"/metadata/name","value":"cm"},{"op":"remove","path":"/data/~1x~0"},{"op":"copy","from":"/data/k","path":"/data/-"}]', "application/json-patch+json")),
    "json-patch-index": seq(req("POST", NS + "/configmaps", CMJ), req("PATCH", NS + "/configmaps/cm", '[{"op":"add","path":"/metadata/finalizers","value":[]},{"op":"add","path":"/metadata/finalizers/18446744073709551616","value":"x"},{"op":"replace","path":"/metadata/finalizers/-","value":"y"}]', "application/json-patch+json")),
    "strategic-patch": seq(req("POST", "/apis/apps/v1/namespaces/default/deployments", json.dumps({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})),
                           req("PATCH", "/apis/apps/v1/namespaces/default/deployments/d", '{"spec":{"template":{"spec":{"containers":[{"name":"c","$patch":"delete"},{"name":"e","image":"j"}],"$setElementOrder/containers":[{"name":"e"}]}}}}', "application/strategic-merge-patch+json"),
                           req("PATCH", "/apis/apps/v1/namespaces/default/deployments/d/scale", '{"spec":{"replicas":-5}}', "application/merge-patch+json")),
    "server-side-apply": seq(req("PATCH", NS + "/configmaps/cm?fieldManager=a", CMJ, "application/apply-patch+yaml"),
                             req("PATCH", NS + "/configmaps/cm?fieldManager=b", '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm"},"data":{"k":"w"}}', "application/apply-patch+yaml"),
                             req("PATCH", NS + "/configmaps/cm?fieldManager=b&force=true", '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm"},"data":{"k":"w"}}', "application/apply-patch+yaml")),
    "crd-and-custom-resource": seq(req("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD),
                                   req("POST", "/apis/example.com/v1/namespaces/default/widgets?fieldValidation=Strict", '{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"size":11,"extra":1}}'),
                                   req("PATCH", "/apis/example.com/v1/namespaces/default/widgets/w/status", '{"status":{"x":1}}', "application/merge-patch+json"),
                                   req("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")),
    "protobuf-create": req("POST", NS + "/configmaps", PB_CM, "application/vnd.kubernetes.protobuf"),
    "protobuf-truncated": req("POST", NS + "/configmaps", PB_CM[:-3], "application/vnd.kubernetes.protobuf"),
    "protobuf-huge-length": req("POST", NS + "/configmaps", b"k8s\0" + b"\x0a\xff\xff\xff\xff\x0f", "application/vnd.kubernetes.protobuf"),
    "protobuf-deep": req("POST", NS + "/configmaps", unknown("v1", "ConfigMap", b"".join([b"\x0a\x02"] * 1) + (field(1, field(1, field(1, field(1, b"x")))))), "application/vnd.kubernetes.protobuf"),
    "protobuf-delete-options": seq(req("POST", NS + "/configmaps", CMJ), req("DELETE", NS + "/configmaps/cm", unknown("v1", "DeleteOptions", field(1, b"\x08\x00")), "application/vnd.kubernetes.protobuf")),
    "delete-propagation": seq(req("POST", NS + "/configmaps", CMJ), req("DELETE", NS + "/configmaps/cm?propagationPolicy=Foreground&gracePeriodSeconds=-1&dryRun=All", '{"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"uid":"nope"}}'),
                              req("DELETE", NS + "/configmaps?labelSelector=app")),
    "selectors": seq(req("GET", NS + "/configmaps?labelSelector=a+in+(x,y),!b,c!=d,e,f+notin+()"),
                     req("GET", NS + "/configmaps?labelSelector=%28%28%28"),
                     req("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3D%3Dn,status.phase!%3DRunning,metadata.name%3D"),
                     req("GET", NS + "/configmaps?fieldSelector=nope%3D1"),
                     req("GET", NS + "/configmaps?limit=-1&continue=garbage"),
                     req("GET", NS + "/configmaps?limit=99999999999999999999")),
    "table": req("GET", NS + "/configmaps", b"", None) .replace(b"\n\n", b"\nAccept: application/json;as=Table;v=v1;g=meta.k8s.io\n\n", 1),
    "discovery": seq(req("GET", "/version", b"", None), req("GET", "/apis", b"", None), req("GET", "/apis/apps", b"", None),
                     req("GET", "/api/v1", b"", None), req("GET", "/openapi/v3", b"", None), req("GET", "/openapi/v3/apis/apps/v1", b"", None)),
    "odd-paths": seq(req("GET", "/api/v1/namespaces/default/configmaps/a/b/c", b"", None), req("GET", "//api//v1/namespaces", b"", None),
                     req("PUT", "/api/v1/namespaces/default/finalize", '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"default"},"spec":{"finalizers":[]}}'),
                     req("GET", "/api/v1/namespaces/%2e%2e/configmaps", b"", None)),
    "update-conflict": seq(req("POST", NS + "/configmaps", CMJ), req("PUT", NS + "/configmaps/cm", '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm","resourceVersion":"1"}}'),
                           req("PUT", NS + "/configmaps/other", '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm"}}')),
    "namespace-termination": seq(req("POST", "/api/v1/namespaces", '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"t"}}'),
                                 req("POST", "/api/v1/namespaces/t/configmaps", '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","finalizers":["x/y"]}}'),
                                 req("DELETE", "/api/v1/namespaces/t", b"", None),
                                 req("POST", "/api/v1/namespaces/t/configmaps", '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d"}}')),
    "owner-references": seq(req("POST", NS + "/configmaps", CMJ),
                            req("POST", NS + "/secrets", '{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"cm","uid":"u","blockOwnerDeletion":true,"controller":true}]},"stringData":{"a":"b"}}'),
                            req("DELETE", NS + "/configmaps/cm?propagationPolicy=Foreground", b"", None)),
    "reviews": req("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", '{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{}}'),
    "empty-body": req("POST", NS + "/configmaps", b"", None),
    "not-utf8": req("POST", NS + "/configmaps", b"\xff\xfe{\"a\":1}"),
}


def main():
    for name, text in EXPRESSIONS.items():
        write("expressions", name, text)
    for name, document in DOCUMENTS.items():
        write("expressions", name + ".json", json.dumps(document))
    for name, text in YAML.items():
        write("yaml_values", name + ".yaml", text)
    for name, text in MANIFESTS.items():
        write("manifest", name + ".yaml", text)
    for name, data in ARCHIVES.items():
        write("chart_archive", name, data)
    for name, data in REQUESTS.items():
        write("api_request", name, data)


if __name__ == "__main__":
    main()
