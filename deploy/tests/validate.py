#!/usr/bin/env python3
"""Validate everything in deploy/ that can be checked offline.

- YAML style: yamllint.
- Kubernetes: every base resource, the 100-workers overlay (its JSON patches applied
  here, as kustomize would) and the Helm chart (rendered here: the chart uses a small
  subset of Helm's language, implemented below) against the Kubernetes schemas
  (kubernetes-validate, strict).
- CloudFormation: cfn-lint.
- Dockerfile: hadolint.
- systemd units: systemd-analyze verify, with ExecStart pointed at the built binary.

Usage: validate.py FLEETLOAD_BINARY [PLAN_DIR]. Exits non-zero naming every failure.
With PLAN_DIR, the plans the base and the chart ship are written there, for the
caller to check with fleetload itself.
"""
import copy
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent.parent
K8S_VERSION = "1.30.0"
failures = []


def run(what, cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    out = (p.stdout + p.stderr).strip()
    if p.returncode != 0:
        failures.append(f"{what}: {out}")
        print(f"FAIL {what}\n{out}")
    else:
        print(f"ok   {what}")
    return p


def validate_k8s(what, docs):
    with tempfile.TemporaryDirectory() as d:
        for i, doc in enumerate(docs):
            f = Path(d) / f"{i}-{doc['kind']}.yaml"
            f.write_text(yaml.safe_dump(doc))
            run(f"{what}: {doc['kind']}/{doc['metadata']['name']}",
                ["kubernetes-validate", "-k", K8S_VERSION, "--strict", str(f)])


def base_docs():
    base = DEPLOY / "kubernetes" / "base"
    kust = yaml.safe_load((base / "kustomization.yaml").read_text())
    docs = []
    for r in kust["resources"]:
        docs.extend(d for d in yaml.safe_load_all((base / r).read_text()) if d)
    return docs


def json_patch(doc, ops):
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        node = doc
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node[p]
        last = parts[-1]
        if op["op"] in ("replace", "add"):
            if isinstance(node, list):
                node[int(last)] = op["value"]
            else:
                if op["op"] == "replace" and last not in node:
                    raise KeyError(f"replace of missing {op['path']}")
                node[last] = op["value"]
        else:
            raise ValueError(f"unsupported op {op['op']}")
    return doc


def overlay_docs():
    ov = yaml.safe_load((DEPLOY / "kubernetes" / "overlays" / "100-workers" / "kustomization.yaml").read_text())
    docs = base_docs()
    for patch in ov["patches"]:
        t = patch["target"]
        ops = yaml.safe_load(patch["patch"])
        docs = [json_patch(d, ops) if d["kind"] == t["kind"] and d["metadata"]["name"] == t["name"] else d for d in docs]
    return docs


def lookup(ctx, path):
    node = ctx
    for part in path.strip(".").split("."):
        node = node[part]
    return node


def to_yaml(v):
    return yaml.safe_dump(v, default_flow_style=False, sort_keys=False).rstrip("\n")


def render(text, ctx):
    """Render the subset of Helm the chart uses: {{ .Values.a.b }}, {{ .Release.Name }},
    pipes `quote`, `toYaml`, `nindent N`, `indent N`, and `{{-` trimming."""
    def expr(m):
        body = m.group(2).strip()
        stages = [s.strip() for s in body.split("|")]
        first = stages[0]
        if first.startswith("toYaml "):
            value = to_yaml(lookup(ctx, first[len("toYaml "):]))
        else:
            value = lookup(ctx, first)
        for s in stages[1:]:
            if s == "quote":
                value = json.dumps(str(value))
            elif s.startswith("nindent "):
                n = int(s.split()[1])
                value = "\n" + "\n".join(" " * n + line if line else line for line in str(value).rstrip("\n").split("\n"))
            elif s.startswith("indent "):
                n = int(s.split()[1])
                value = "\n".join(" " * n + line for line in str(value).split("\n"))
            elif s == "toYaml":
                value = to_yaml(value)
            else:
                raise ValueError(f"template function {s!r} is not supported by this renderer")
        return str(value)

    text = re.sub(r"\s*\{\{-", "{{", text)  # {{- trims the whitespace before it
    return re.sub(r"\{\{(-?)(.*?)-?\}\}", expr, text)


def chart_docs(overrides):
    chart = DEPLOY / "helm" / "fleetload"
    values = yaml.safe_load((chart / "values.yaml").read_text())
    values.update(overrides)
    ctx = {"Values": values, "Release": {"Name": "ci"}, "Chart": yaml.safe_load((chart / "Chart.yaml").read_text())}
    docs = []
    for t in sorted((chart / "templates").glob("*.yaml")):
        rendered = render(t.read_text(), ctx)
        try:
            docs.extend(d for d in yaml.safe_load_all(rendered) if d)
        except yaml.YAMLError as e:
            failures.append(f"helm template {t.name} renders to invalid YAML: {e}\n{rendered}")
    return docs


def check_iam_policy():
    """The policy docs/aws.md points to grants exactly what fleetload calls, and every
    ServiceAccount carries the IRSA annotation that hands it to the pods."""
    policy = json.loads((DEPLOY / "aurora" / "fleetload-iam-policy.json").read_text())
    actions = sorted(s["Action"] for s in policy["Statement"])
    want = ["cloudwatch:GetMetricData", "rds-db:connect", "secretsmanager:GetSecretValue"]
    if actions != want:
        failures.append(f"fleetload-iam-policy.json grants {actions}, fleetload calls {want}")
    else:
        print("ok   aurora/fleetload-iam-policy.json")
    for what, docs in (("kustomize base", base_docs()), ("helm chart", chart_docs({}))):
        accounts = [d for d in docs if d["kind"] == "ServiceAccount"]
        pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Job"]
        if len(accounts) != 1 or "eks.amazonaws.com/role-arn" not in (accounts[0]["metadata"].get("annotations") or {}):
            failures.append(f"{what}: no ServiceAccount with the IRSA annotation eks.amazonaws.com/role-arn")
        elif any(p.get("serviceAccountName") != accounts[0]["metadata"]["name"] for p in pods):
            failures.append(f"{what}: a Job does not run as the ServiceAccount {accounts[0]['metadata']['name']}")


def main():
    binary = Path(sys.argv[1]).resolve()
    run("yamllint", ["yamllint", "-c", str(DEPLOY / ".yamllint"), str(DEPLOY / "kubernetes"), str(DEPLOY / "ec2"),
                     str(DEPLOY / "helm" / "fleetload" / "values.yaml"), str(DEPLOY / "helm" / "fleetload" / "Chart.yaml")])
    validate_k8s("kubernetes base", base_docs())
    overlay = overlay_docs()
    workers = next(d for d in overlay if d["metadata"]["name"] == "fleetload-workers")
    coordinator = next(d for d in overlay if d["metadata"]["name"] == "fleetload-coordinator")
    if workers["spec"]["completions"] != 100 or coordinator["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] != "100":
        failures.append("the 100-workers overlay does not set 100 workers on both jobs")
    validate_k8s("kubernetes overlay 100-workers", overlay)
    for overrides in ({}, {"workers": 100}):
        docs = chart_docs(overrides)
        names = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
        base_kinds = sorted(d["kind"] for d in base_docs() if d["kind"] != "Secret")
        if sorted(d["kind"] for d in docs) != base_kinds:
            failures.append(f"the chart renders {names}, the kustomize base has {base_kinds}")
        jobs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Job"}
        want = overrides.get("workers", 4)
        if jobs["ci-workers"]["spec"]["parallelism"] != want or f"--workers={want}" not in jobs["ci-coordinator"]["spec"]["template"]["spec"]["containers"][0]["args"]:
            failures.append(f"helm workers={want} is not applied to both jobs")
        validate_k8s(f"helm chart {overrides or 'defaults'}", docs)
    run("cfn-lint", ["cfn-lint", str(DEPLOY / "ec2" / "fleetload.yaml")])
    check_iam_policy()
    run("hadolint", ["hadolint", str(DEPLOY / "container" / "Dockerfile")])
    with tempfile.TemporaryDirectory() as d:
        units = []
        for u in (DEPLOY / "systemd").glob("*.service"):
            text = u.read_text().replace("/usr/local/bin/fleetload", str(binary))
            text = text.replace("/etc/fleetload/", d + "/")
            (Path(d) / u.name).write_text(text)
            units.append(str(Path(d) / u.name))
        for env in ("coordinator.env", "worker.env"):
            (Path(d) / env).write_text("")
        if shutil.which("systemd-analyze"):
            run("systemd-analyze verify", ["systemd-analyze", "verify", "--man=no", *units])
        else:
            print("skip systemd-analyze (not installed)")
    if len(sys.argv) > 2:
        out = Path(sys.argv[2])
        plan_of = lambda docs: next(d for d in docs if d["kind"] == "ConfigMap")["data"]["plan.toml"]
        (out / "kustomize-plan.toml").write_text(plan_of(base_docs()))
        (out / "helm-plan.toml").write_text(plan_of(chart_docs({})))
    if failures:
        print(f"\n{len(failures)} failure(s)")
        sys.exit(1)
    print("\ndeploy/ is valid")


if __name__ == "__main__":
    main()
