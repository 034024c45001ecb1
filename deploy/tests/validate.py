#!/usr/bin/env python3
"""Validate everything in deploy/ that can be checked offline.

- YAML style: yamllint.
- Kubernetes: the kustomize base and the 100-workers overlay rendered by the real
  `kubectl kustomize`, the Helm chart by the real `helm template` (defaults and each
  value), checked for what a first run needs (no Secret rendered, a pinned image, the
  RDS CA mounted, spools on the shared volume, ...) and against the Kubernetes schemas
  (kubernetes-validate, strict).
- CloudFormation: cfn-lint.
- Dockerfile: hadolint.
- systemd units: systemd-analyze verify, with ExecStart pointed at the built binary.

Usage: validate.py FLEETLOAD_BINARY [PLAN_DIR]. Exits non-zero naming every failure.
With PLAN_DIR, the plans the base and the chart ship are written there, for the
caller to check with fleetload itself.
"""
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


def rendered(what, cmd):
    """Documents a real renderer printed (kubectl kustomize, helm template)."""
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        failures.append(f"{what}: {p.stderr.strip()}")
        print(f"FAIL {what}\n{p.stderr.strip()}")
        return []
    print(f"ok   {what}")
    return [d for d in yaml.safe_load_all(p.stdout) if d]


def kustomize(path):
    return rendered(f"kubectl kustomize {path.relative_to(DEPLOY)}", ["kubectl", "kustomize", str(path)])


def base_docs():
    return kustomize(DEPLOY / "kubernetes" / "base")


def overlay_docs():
    return kustomize(DEPLOY / "kubernetes" / "overlays" / "100-workers")


def chart_docs(sets=(), set_files=()):
    cmd = ["helm", "template", "ci", str(DEPLOY / "helm" / "fleetload")]
    for s in sets:
        cmd += ["--set", s]
    for s in set_files:
        cmd += ["--set-file", s]
    return rendered(f"helm template {' '.join(sets + set_files) or 'defaults'}", cmd)


def find(docs, kind, suffix):
    return next((d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)), None)


def pod(docs, suffix):
    job = find(docs, "Job", suffix)
    return job["spec"]["template"]["spec"] if job else {}


def container(docs, suffix):
    spec = pod(docs, suffix)
    return spec["containers"][0] if spec else {}


def expect(what, ok):
    if ok:
        print(f"ok   {what}")
    else:
        failures.append(what)
        print(f"FAIL {what}")


def check_common(what, docs):
    """What every rendering must hold for a first real run to work."""
    expect(f"{what}: renders no Secret (the user's own is never overwritten)",
           not any(d["kind"] == "Secret" for d in docs) and "change-me" not in yaml.safe_dump_all(docs))
    for suffix in ("coordinator", "workers"):
        c = container(docs, suffix)
        image = c.get("image", "")
        expect(f"{what}: the {suffix} image has a fixed tag ({image})",
               ":" in image and not image.endswith(":latest"))
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        expect(f"{what}: the {suffix} pod mounts the RDS CA bundle at /etc/ssl/rds", mounts.get("/etc/ssl/rds") == "rds-ca")
        expect(f"{what}: the {suffix} pod mounts the shared report volume at /report", "/report" in mounts)
    expect(f"{what}: workers spool to the shared report volume",
           "--spool-dir=/report/spool" in container(docs, "workers").get("args", []))
    expect(f"{what}: the coordinator writes a directory per run under /report",
           container(docs, "coordinator").get("workingDir") == "/report"
           and not any(a.startswith("--report-dir") for a in container(docs, "coordinator").get("args", [])))
    expect(f"{what}: workers are spread over nodes", bool(pod(docs, "workers").get("topologySpreadConstraints")))
    pvc = find(docs, "PersistentVolumeClaim", "report")
    expect(f"{what}: the report volume is ReadWriteMany (every pod mounts it)",
           pvc is not None and pvc["spec"]["accessModes"] == ["ReadWriteMany"])
    plan = find(docs, "ConfigMap", "plan")["data"]["plan.toml"]
    expect(f"{what}: the plan verifies the database against the RDS CA bundle",
           'tls_ca = "/etc/ssl/rds/global-bundle.pem"' in plan and "/etc/ssl/certs/ca-certificates.crt" not in plan)


def check_helm_values():
    """Each value does what the chart's README says, rendered by the real helm."""
    docs = chart_docs(("tls.enabled=true",))
    args = container(docs, "coordinator")["args"]
    expect("helm tls.enabled: the coordinator serves TLS, not --insecure",
           "--tls-cert=/etc/fleetload-tls/tls.crt" in args and "--insecure" not in args)
    w = container(docs, "workers")
    env = {e["name"]: e.get("value") for e in w["env"]}
    expect("helm tls.enabled: workers dial https:// and verify with --tls-ca",
           env["FLEETLOAD_COORDINATOR"].startswith("https://") and "--tls-ca=/etc/fleetload-tls/ca.crt" in w["args"])
    docs = chart_docs()
    expect("helm defaults: plaintext in-cluster with --insecure and http://",
           "--insecure" in container(docs, "coordinator")["args"]
           and container(docs, "workers")["env"][0]["value"].startswith("http://"))
    docs = chart_docs(("worker.extraArgs[0]=--max-sessions=256", "coordinator.extraArgs[0]=--checkpoint=10s"))
    expect("helm worker.extraArgs / coordinator.extraArgs are added",
           "--max-sessions=256" in container(docs, "workers")["args"]
           and "--checkpoint=10s" in container(docs, "coordinator")["args"])
    docs = chart_docs(("worker.nodeSelector.pool=load", "coordinator.nodeSelector.pool=control"))
    expect("helm nodeSelector per component",
           pod(docs, "workers").get("nodeSelector") == {"pool": "load"}
           and pod(docs, "coordinator").get("nodeSelector") == {"pool": "control"})
    docs = chart_docs(("worker.tolerations[0].key=dedicated", "worker.tolerations[0].operator=Exists"))
    expect("helm worker.tolerations", pod(docs, "workers").get("tolerations") == [{"key": "dedicated", "operator": "Exists"}])
    docs = chart_docs(("worker.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=zone",
                       "worker.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists"))
    expect("helm worker.affinity", "nodeAffinity" in pod(docs, "workers").get("affinity", {}))
    docs = chart_docs(("worker.topologySpreadConstraints[0].maxSkew=2",
                       "worker.topologySpreadConstraints[0].topologyKey=kubernetes.io/hostname",
                       "worker.topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule"))
    tsc = pod(docs, "workers").get("topologySpreadConstraints", [])
    expect("helm worker.topologySpreadConstraints replaces the default spread", len(tsc) == 1 and tsc[0]["maxSkew"] == 2)
    docs = chart_docs(("imagePullSecrets[0].name=regcred",))
    expect("helm imagePullSecrets on both pods",
           all(pod(docs, s).get("imagePullSecrets") == [{"name": "regcred"}] for s in ("coordinator", "workers")))
    scenario = DEPLOY.parent / "examples" / "scenarios" / "point_select.toml"
    docs = chart_docs(("plan=scenario = \"checkout.toml\"",), (f"files.checkout\\.toml={scenario}",))
    cm = find(docs, "ConfigMap", "plan")["data"]
    expect("helm files: a scenario file beside plan.toml in /etc/fleetload",
           cm.get("checkout.toml", "").strip() == scenario.read_text().strip())
    docs = chart_docs(("prepare=true",))
    expect("helm prepare: the coordinator loads the data through the fleet", "--prepare" in container(docs, "coordinator")["args"])
    expect("helm defaults: no --prepare", "--prepare" not in container(chart_docs(), "coordinator")["args"])
    docs = chart_docs(("extraVolumes[0].name=client-cert", "extraVolumes[0].secret.secretName=fleetload-client",
                       "extraVolumeMounts[0].name=client-cert", "extraVolumeMounts[0].mountPath=/etc/fleetload-client"))
    expect("helm extraVolumes / extraVolumeMounts on both pods",
           all(any(v["name"] == "client-cert" for v in pod(docs, s)["volumes"])
               and any(m["mountPath"] == "/etc/fleetload-client" for m in container(docs, s)["volumeMounts"])
               for s in ("coordinator", "workers")))
    docs = chart_docs(("rdsCa.configMap=",))
    expect("helm rdsCa.configMap empty: no CA volume",
           not any(v["name"] == "rds-ca" for v in pod(docs, "workers")["volumes"]))
    docs = chart_docs(("image.tag=1.2.3",))
    expect("helm image.tag", container(docs, "workers")["image"] == "REGISTRY/fleetload:1.2.3")
    docs = chart_docs(("workers=100",))
    expect("helm workers=100 on both jobs",
           find(docs, "Job", "workers")["spec"]["parallelism"] == 100
           and "--workers=100" in container(docs, "coordinator")["args"])


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Sub, !Ref, ...) kept as {tag: value}."""


CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: {
    suffix: (loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode)
             else loader.construct_mapping(node) if isinstance(node, yaml.MappingNode)
             else loader.construct_scalar(node))})


def substitute(text, values):
    """Fn::Sub's ${Name} and ${Res.Attr} replaced; bash's $var left alone."""
    def one(m):
        name = m.group(1)
        if name not in values:
            raise KeyError(f"${{{name}}} has no value in the check")
        return values[name]
    return re.sub(r"\$\{([A-Za-z0-9:.]+)\}", one, text)


def check_ec2(binary, plan_dir):
    """The stack's user data: valid bash (shellcheck), the units and binary from the
    release archive that scripts/package builds (never fetched unpinned), a worker
    unit template with %i that restarts, and a plan whose scheme follows the engine,
    naming the secret as password_secret and verifying against the RDS CA."""
    template = yaml.load((DEPLOY / "ec2" / "fleetload.yaml").read_text(), Loader=CfnLoader)
    res = template["Resources"]
    coord_sub = res["Coordinator"]["Properties"]["UserData"]["Fn::Base64"]["Sub"]
    worker_sub = res["WorkerLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Sub"]
    common = {"AWS::Region": "eu-west-1", "ReleaseUrl": "https://example.invalid/fleetload.tar.gz",
              "ReleaseSha256": "0" * 64, "TlsSecretArn": "arn:tls", "TokenSecretArn": "arn:token",
              "DatabaseSecretArn": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:rds!cluster-abc",
              "WorkerCount": "50", "WorkersPerInstance": "2", "AuroraEndpoint": "c.cluster-x.eu-west-1.rds.amazonaws.com",
              "DatabaseName": "test", "Coordinator.PrivateDnsName": "ip-10-0-0-1.ec2.internal"}
    engines = template["Mappings"]["EngineMap"]
    archive = subprocess.run([str(DEPLOY.parent / "scripts" / "package"), str(binary), tempfile.mkdtemp()],
                             capture_output=True, text=True)
    if archive.returncode != 0:
        failures.append(f"scripts/package: {archive.stderr}")
        return
    members = subprocess.run(["tar", "tzf", archive.stdout.split()[0]], capture_output=True, text=True).stdout.split()
    for engine, port in (("aurora-mysql", "3306"), ("aurora-postgresql", "5432")):
        values = dict(common, AuroraPort=port, Scheme=engines[engine]["Scheme"])
        for what, script in (("coordinator", substitute(coord_sub[0], values)), ("worker", substitute(worker_sub, values))):
            with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
                f.write(script)
            run(f"ec2 {what} user data ({engine}): shellcheck", ["shellcheck", "-s", "bash", f.name])
            expect(f"ec2 {what} user data fetches nothing unpinned (units from the checked release archive)",
                   "raw.githubusercontent" not in script and "sha256sum -c" in script)
            for path in re.findall(r"/opt/(fleetload/\S+)", script):
                expect(f"ec2 {what} user data installs {path}, which the release archive holds", path in members)
            expect(f"ec2 {what} pod gets the RDS CA bundle", "/etc/ssl/rds/global-bundle.pem" in script)
            expect(f"ec2 {what} user data writes no database password to disk", "FLEETLOAD_DB_PASSWORD" not in script)
            if what == "coordinator":
                plan = re.search(r"<<'PLAN'\n(.*?)\nPLAN", script, re.S).group(1)
                expect(f"ec2 plan ({engine}) uses the engine's scheme on its port",
                       plan.split('"')[1].startswith(f"{engines[engine]['Scheme']}://") and f":{port}/" in plan)
                expect(f"ec2 plan ({engine}) names the database secret as password_secret",
                       f'password_secret = "{common["DatabaseSecretArn"]}"' in plan)
                if plan_dir:
                    (plan_dir / f"ec2-{engine}-plan.toml").write_text(plan + "\n")
            else:
                expect(f"ec2 worker user data starts template instances", 'fleetload-worker@$i' in script)
    unit = (DEPLOY / "systemd" / "fleetload-worker@.service").read_text()
    expect("the worker unit is a template that uses %i", "%i" in unit)
    expect("the worker unit restarts (waits for the next coordinator instead of giving up)",
           "Restart=always" in unit and "StartLimitIntervalSec=0" in unit)


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
    for what, docs in (("kustomize base", base_docs()), ("helm chart", chart_docs())):
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
    base = base_docs()
    check_common("kustomize base", base)
    validate_k8s("kubernetes base", base)
    overlay = overlay_docs()
    check_common("kustomize overlay 100-workers", overlay)
    expect("the 100-workers overlay sets 100 workers on both jobs",
           find(overlay, "Job", "workers")["spec"]["completions"] == 100
           and container(overlay, "coordinator")["env"][0]["value"] == "100")
    expect("the 100-workers overlay prepares the data first", "--prepare" in container(overlay, "coordinator")["args"])
    expect("the 100-workers overlay gives each single-threaded worker one core",
           container(overlay, "workers")["resources"]["limits"]["cpu"] == "1")
    cm = find(overlay, "ConfigMap", "plan")["data"]
    expect("the 100-workers overlay ships its plan and the scenario file it names",
           'scenario = "point_select.toml"' in cm.get("plan.toml", "") and "[[operation]]" in cm.get("point_select.toml", ""))
    validate_k8s("kubernetes overlay 100-workers", overlay)
    chart = chart_docs()
    check_common("helm chart", chart)
    kinds = lambda docs: sorted(d["kind"] for d in docs)
    expect("the chart renders what the kustomize base does", kinds(chart) == kinds(base))
    validate_k8s("helm chart defaults", chart)
    validate_k8s("helm chart tls", chart_docs(("tls.enabled=true", "workers=100")))
    check_helm_values()
    run("cfn-lint", ["cfn-lint", str(DEPLOY / "ec2" / "fleetload.yaml")])
    check_ec2(binary, Path(sys.argv[2]) if len(sys.argv) > 2 else None)
    check_iam_policy()
    run("hadolint", ["hadolint", str(DEPLOY / "container" / "Dockerfile")])
    with tempfile.TemporaryDirectory() as d:
        units = []
        for u in (DEPLOY / "systemd").glob("*.service"):
            text = u.read_text().replace("/usr/local/bin/fleetload", str(binary))
            text = text.replace("/etc/fleetload/", d + "/")
            # A template is verified as one of its instances.
            name = u.name.replace("@.service", "@1.service")
            (Path(d) / name).write_text(text)
            units.append(str(Path(d) / name))
        for env in ("coordinator.env", "worker.env"):
            (Path(d) / env).write_text("")
        if shutil.which("systemd-analyze"):
            run("systemd-analyze verify", ["systemd-analyze", "verify", "--man=no", *units])
        else:
            print("skip systemd-analyze (not installed)")
    if len(sys.argv) > 2:
        out = Path(sys.argv[2])
        plan_of = lambda docs: find(docs, "ConfigMap", "plan")["data"]
        (out / "kustomize-plan.toml").write_text(plan_of(base)["plan.toml"])
        (out / "helm-plan.toml").write_text(plan_of(chart)["plan.toml"])
        ov = plan_of(overlay)
        (out / "overlay").mkdir(exist_ok=True)
        for name, text in ov.items():
            (out / "overlay" / name).write_text(text)
    if failures:
        print(f"\n{len(failures)} failure(s)")
        sys.exit(1)
    print("\ndeploy/ is valid")


if __name__ == "__main__":
    main()
