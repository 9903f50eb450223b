"""Structural checks of the deploy files (Dockerfile, deploy/compose.yaml, deploy/k8s/): what a
container runtime or a cluster would take from them must agree with the code: settings that
exist, the health paths the app serves, ports, probes, labels, secrets the policy reads, and a
policy that loads. (No Docker daemon or cluster runs here; `docs/deploy.md` says what was run.)"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from policies import parse_policy
from router.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SETTINGS = {f"TIERWISE_{name.upper()}" for name in Settings.model_fields}


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n\s*", " ", text)
    steps = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            steps.append((word.upper(), rest.strip()))
    return steps


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    last = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last:]


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> document, over every file the kustomization lists."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")):
            assert doc["apiVersion"] and doc["metadata"]["name"], name
            found[doc["kind"], doc["metadata"]["name"]] = doc
    return found


def served_paths() -> set[str]:
    from router.server.app import create_app

    app = create_app(Settings())
    return {route.path for route in app.app.routes}  # type: ignore[attr-defined]


def env_names(text: str) -> set[str]:
    return set(re.findall(r"\b(TIERWISE_[A-Z_]+)=", text))


# -- Dockerfile ----------------------------------------------------------------------------------


def test_the_image_is_slim_and_runs_the_wheel_as_a_non_root_user() -> None:
    steps = final_stage()
    assert steps[0][1].endswith("-slim"), steps[0]
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    runs = " ".join(args for word, args in steps if word == "RUN")
    assert "pip install" in runs and ".whl" in runs, runs
    build = " ".join(args for word, args in dockerfile() if word == "RUN")
    assert "pip wheel" in build
    entry = json.loads(dict(steps)["ENTRYPOINT"]) + json.loads(dict(steps)["CMD"])
    assert entry == ["tierwise", "serve"]
    user_index = max(i for i, (word, _) in enumerate(steps) if word == "USER")
    assert user_index < max(i for i, (word, _) in enumerate(steps) if word == "ENTRYPOINT")


def test_the_image_copies_only_what_exists_and_sets_only_real_settings() -> None:
    for word, args in dockerfile():
        if word == "COPY" and not args.startswith("--from"):
            for source in shlex.split(args)[:-1]:
                assert (ROOT / source).exists(), source
    env = " ".join(args for word, args in final_stage() if word == "ENV")
    names = env_names(env)
    assert names and names <= SETTINGS, names - SETTINGS
    assert "TIERWISE_HOST=0.0.0.0" in env  # reachable from outside the container
    port = re.search(r"TIERWISE_PORT=(\d+)", env)
    assert port is not None and ("EXPOSE", port.group(1)) in final_stage()
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert ".venv" in ignored and ".git" in ignored


def test_the_healthcheck_asks_the_path_the_app_serves() -> None:
    [check] = [args for word, args in final_stage() if word == "HEALTHCHECK"]
    command = json.loads(check[check.index("CMD") + 3 :].strip())
    assert command[0] == "python"
    assert "/healthz" in command[-1]
    assert "/healthz" in served_paths() and "/readyz" in served_paths()


# -- compose -------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    return loaded


def test_compose_runs_two_proxies_on_redis_behind_one_port() -> None:
    services = compose()["services"]
    proxies = [name for name, s in services.items() if s.get("image", "").startswith("tierwise")]
    assert len(proxies) == 2, proxies
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == {"lb"}, published
    nginx = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    for name in proxies:
        assert f"server {name}:8080" in nginx
        env = services[name]["environment"]
        assert set(env) <= SETTINGS, set(env) - SETTINGS
        assert env["TIERWISE_LEDGER_URL"].startswith("redis://redis:")
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert services[name]["build"]["context"] == ".."
    assert "proxy_buffering off" in nginx  # streams reach the client as they are produced
    assert "healthcheck" in services["redis"]
    assert "--appendonly" in services["redis"]["command"]
    for name in services["lb"]["depends_on"]:
        assert name in services


def test_compose_mounts_files_that_exist_and_a_policy_that_loads() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                if source == "./models":  # the user's GGUF (docs/deploy.md)
                    continue
                assert (DEPLOY / source).exists(), (name, source)
    policy = parse_policy(yaml.safe_load((DEPLOY / "policy.yaml").read_text(encoding="utf-8")))
    cheap = policy.tiers[policy.routing.cheap_tier]
    assert cheap.local and cheap.api_base == "http://model:8000/v1"
    models = [
        s
        for s in services.values()
        if "model" in s.get("networks", {}).get("default", {}).get("aliases", [])
    ]
    assert len(models) == 2 and {tuple(s["profiles"]) for s in models} == {("cpu",), ("gpu",)}
    for service in models:
        assert "local" in service["command"]  # the served name the policy's `openai/local` uses


def test_compose_env_example_names_every_variable_the_policy_reads() -> None:
    policy = parse_policy(yaml.safe_load((DEPLOY / "policy.yaml").read_text(encoding="utf-8")))
    example = (DEPLOY / "env.example").read_text(encoding="utf-8")
    given = set(re.findall(r"^([A-Z_]+)=", example, re.M))
    assert needed_variables(policy) <= given, needed_variables(policy) - given


def needed_variables(policy: Any) -> set[str]:
    names = {t.api_key_env for t in policy.tiers.values() if t.api_key_env}
    names |= {policy.access.keys_env, policy.access.admin_keys_env}
    return {name for name in names if name}


# -- Kubernetes ----------------------------------------------------------------------------------


def test_every_listed_manifest_exists_and_none_is_left_out() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    kinds = {kind for kind, _ in manifests()}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "HorizontalPodAutoscaler"} <= kinds


def test_the_deployment_is_ready_on_readyz_and_reachable_through_its_service() -> None:
    found = manifests()
    deployment = found["Deployment", "tierwise"]
    pod = deployment["spec"]["template"]
    assert (
        deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    )
    [container] = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert set(env) <= SETTINGS, set(env) - SETTINGS
    assert int(env["TIERWISE_PORT"]) == ports["http"] and env["TIERWISE_HOST"] == "0.0.0.0"
    paths = served_paths()
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz" in paths
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz" in paths
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    security = pod["spec"]["securityContext"]
    assert security["runAsNonRoot"] and security["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    service = found["Service", "tierwise"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)
    hpa = found["HorizontalPodAutoscaler", "tierwise"]["spec"]
    assert hpa["scaleTargetRef"]["kind"] == "Deployment"
    assert hpa["scaleTargetRef"]["name"] == "tierwise"
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]


def test_the_deployment_mounts_declared_volumes_and_its_ledger_service_exists() -> None:
    found = manifests()
    pod = found["Deployment", "tierwise"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert set(mounts.values()) <= set(volumes)
    env = {e["name"]: e.get("value") for e in container["env"]}
    policy_dir = str(Path(env["TIERWISE_POLICY"]).parent)
    config = volumes[mounts[policy_dir]]["configMap"]["name"]
    assert Path(env["TIERWISE_POLICY"]).name in found["ConfigMap", config]["data"]
    assert env["TIERWISE_SPOOL_DIR"] in mounts  # writable with a read-only root filesystem
    host = env["TIERWISE_LEDGER_URL"].removeprefix("redis://").split(":")[0]
    assert ("Service", host) in found


def test_the_configmap_policy_is_the_deploy_policy_and_the_secret_has_its_keys() -> None:
    found = manifests()
    text = found["ConfigMap", "tierwise-policy"]["data"]["policy.yaml"]
    assert text == (DEPLOY / "policy.yaml").read_text(encoding="utf-8")
    policy = parse_policy(yaml.safe_load(text))
    pod = found["Deployment", "tierwise"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    [source] = container["envFrom"]
    secret = found["Secret", source["secretRef"]["name"]]
    assert needed_variables(policy) <= set(secret["stringData"])


# -- Grafana -------------------------------------------------------------------------------------


def _metric_names() -> set[str]:
    """Every series name /metrics can answer with (counters' `_total`, histograms' parts)."""
    from router.server.metrics import Metrics

    names = set()
    for family in Metrics().registry.collect():
        for suffix in ("", "_total", "_bucket", "_count", "_sum", "_created"):
            names.add(family.name + suffix)
    for gauge in ("limit_usd", "spent_usd", "reserved_usd", "pace"):
        names.add(f"tierwise_budget_{gauge}")
    return names


def test_the_grafana_dashboard_queries_only_metrics_the_proxy_exports() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "tierwise.json").read_text(encoding="utf-8"))
    known = _metric_names()
    used = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used |= set(re.findall(r"\btierwise_[a-z_]+", target["expr"]))
    assert used and used <= known, sorted(used - known)
    assert {
        "tierwise_requests_total",
        "tierwise_budget_spent_usd",
        "tierwise_overhead_seconds_bucket",
    } <= used
