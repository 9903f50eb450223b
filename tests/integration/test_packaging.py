"""`pip install .` builds a wheel with every package and data file, and without setuptools'
deprecation warnings (licence table, artifact directories missing from `packages`); installed
non-editable into a fresh venv, that wheel checks a policy, serves a request and scores prompts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from router.testing.processes import ServerProcess, free_port, guarded_env
from tests.conftest import write_policy

ROOT = Path(__file__).resolve().parents[2]
TOP_LEVEL = ("router", "classifiers", "policies")


def _tracked() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", *TOP_LEVEL, "pyproject.toml", "README.md"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    return [name for name in listed.stdout.decode().split("\0") if name]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[set[str], str, Path]:
    if shutil.which("git") is None:
        pytest.skip("needs git to list the checkout's files")
    source = tmp_path_factory.mktemp("source")
    for name in _tracked():  # a copy: building must not leave build/ or egg-info in the checkout
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    [wheel] = out.glob("tierwise-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist()), run.stdout + run.stderr, wheel


def test_the_wheel_has_every_package_and_data_file(built: tuple[set[str], str, Path]) -> None:
    names, _, _ = built
    tracked = _tracked()
    packages = [n for n in tracked if n.endswith("/__init__.py")]
    assert "router/alerts/__init__.py" in packages  # sub-packages, not only the listed few
    missing = [n for n in packages if n not in names]
    assert not missing, f"packages missing from the wheel: {missing}"
    data = [n for n in tracked if n.startswith("classifiers/artifacts/")]
    data += ["policies/default.yaml", "policies/examples/production.yaml", "policies/py.typed"]
    data += [n for n in tracked if n.startswith(("policies/examples/", "router/server/assets/"))]
    assert "router/server/assets/dashboard.html" in data
    assert not [n for n in data if n not in names], sorted(n for n in data if n not in names)
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "scripts/"))]


def test_building_warns_about_nothing(built: tuple[set[str], str, Path]) -> None:
    _, output, _ = built
    for warning in ("BuildBackendWarning", "SetuptoolsDeprecationWarning", "deprecated"):
        assert warning not in output, output


def _fresh_venv(where: Path, wheel: Path) -> Path:
    """A new venv with the wheel installed non-editable; its dependencies are read from this
    interpreter's site-packages through a `.pth` line (a path, not a site dir: the checkout's
    editable-install hook there is not run), so no download is needed and nothing of the
    checkout is importable. Returns the venv's bin directory."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=300)
    python = where / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)]
    done = subprocess.run(install, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "_checkout_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8"
    )
    return where / "bin"


def _fake_upstream(bin_dir: Path, port: int, log: Path, cwd: Path | None = None) -> ServerProcess:
    """The fake upstream as the installed wheel ships it (`router.testing.upstream`)."""
    command = [str(bin_dir / "python"), "-m", "router.testing.upstream", "--port", str(port)]
    return ServerProcess(command, port, "/_stats", log=log, cwd=cwd)


def _ask(proxy: ServerProcess, key: str, model: str) -> Any:
    """One chat completion through the proxy with the openai SDK: the raw 200 response."""
    client = OpenAI(base_url=f"{proxy.url}/v1", api_key=key, max_retries=0)
    try:
        reply = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "hi there"}]
        )
    finally:
        client.close()
    assert reply.status_code == 200
    return reply


def test_the_installed_wheel_checks_serves_and_scores(
    built: tuple[set[str], str, Path], tmp_path: Path
) -> None:
    _, _, wheel = built
    bin_dir = _fresh_venv(tmp_path / "venv", wheel)
    work = tmp_path / "work"  # outside the checkout: only the installed packages import
    work.mkdir()
    env = guarded_env()
    env.pop("PYTHONPATH", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args), cwd=work, env=env, capture_output=True, text=True, timeout=300
        )

    where = run(
        str(bin_dir / "python"),
        "-c",
        "import router, classifiers, policies as p; "
        "print(router.__file__, classifiers.__file__, p.__file__)",
    )
    assert where.returncode == 0, where.stderr
    assert all(str(tmp_path / "venv") in path for path in where.stdout.split()), where.stdout
    assert str(ROOT) not in where.stdout

    upstream_port, proxy_port = free_port(), free_port()
    upstream = _fake_upstream(bin_dir, upstream_port, tmp_path / "upstream.log", cwd=work)
    with upstream:
        policy = write_policy(work / "policy.yaml", upstream.url)
        checked = run(str(bin_dir / "tierwise"), "policy", "check", str(policy))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        serve = [str(bin_dir / "tierwise"), "serve", "--policy", str(policy)]
        proxy = ServerProcess(
            [*serve, "--port", str(proxy_port)],
            proxy_port,
            log=tmp_path / "proxy.log",
            cwd=work,
        )
        with proxy:
            reply = _ask(proxy, "k", "auto")
            assert reply.headers["x-tierwise-tier"] in ("cheap", "frontier")
            page = httpx.get(f"{proxy.url}/dashboard")  # the page ships in the wheel
            assert page.status_code == 200 and "<title>tierwise</title>" in page.text
            assert (reply.parse().choices[0].message.content or "").startswith("w")

    rows = work / "prompts.jsonl"
    rows.write_text(
        "\n".join(
            json.dumps({"id": str(i), "prompt": p})
            for i, p in enumerate(["hi", "Prove that there are infinitely many primes."])
        )
        + "\n",
        encoding="utf-8",
    )
    scored = run(str(bin_dir / "tierwise"), "score", "--data", str(rows), "--out", "scores.jsonl")
    assert scored.returncode == 0, scored.stdout + scored.stderr
    lines = [json.loads(line) for line in (work / "scores.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == ["0", "1"]
    assert all(0.0 <= line["difficulty"] <= 1.0 for line in lines)


def test_the_installed_wheel_runs_as_the_k8s_deployment_configures_it(
    built: tuple[set[str], str, Path], tmp_path: Path
) -> None:
    """The container's command, env, ConfigMap policy and Secret keys (deploy/k8s/), with only
    the addresses rewritten for this host: ready on the probe path, healthy by the Dockerfile's
    HEALTHCHECK command, refusing callers without a key and serving those the Secret names."""
    import uuid

    import httpx
    import redis
    import yaml

    _, _, wheel = built
    bin_dir = _fresh_venv(tmp_path / "venv", wheel)
    k8s = ROOT / "deploy" / "k8s"
    deployment = yaml.safe_load((k8s / "deployment.yaml").read_text(encoding="utf-8"))
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    secret = yaml.safe_load((k8s / "secret.yaml").read_text(encoding="utf-8"))["stringData"]
    config = yaml.safe_load((k8s / "configmap.yaml").read_text(encoding="utf-8"))["data"]
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    [check] = [line for line in dockerfile.splitlines() if line.startswith("HEALTHCHECK")]
    healthcheck = json.loads(check[check.index("CMD") + 3 :])

    upstream_port, proxy_port = free_port(), free_port()
    upstream = _fake_upstream(bin_dir, upstream_port, tmp_path / "upstream.log")
    prefix = f"deploy-{uuid.uuid4().hex[:8]}"
    env = guarded_env({e["name"]: e["value"] for e in container["env"]} | secret)
    env.pop("PYTHONPATH", None)
    policy_file = tmp_path / Path(env["TIERWISE_POLICY"]).name
    policy_file.write_text(
        config["policy.yaml"].replace("http://model:8000/v1", f"{upstream.url}/v1"),
        encoding="utf-8",
    )
    env |= {
        "TIERWISE_HOST": "127.0.0.1",
        "TIERWISE_PORT": str(proxy_port),
        "TIERWISE_POLICY": str(policy_file),
        "TIERWISE_LEDGER_URL": f"redis://127.0.0.1:6379/13?prefix={prefix}",
        "TIERWISE_SPOOL_DIR": str(tmp_path / "spool"),
    }
    key = secret["TIERWISE_API_KEYS"].split(",")[0].split("=", 1)[1]
    try:
        with upstream:
            proxy = ServerProcess(
                [str(bin_dir / "tierwise"), *container["args"]],
                proxy_port,
                container["readinessProbe"]["httpGet"]["path"],
                log=tmp_path / "proxy.log",
                cwd=tmp_path,
                env=env,
            )
            with proxy:
                for probe in ("readinessProbe", "livenessProbe"):
                    path = container[probe]["httpGet"]["path"]
                    assert httpx.get(f"{proxy.url}{path}").status_code == 200, probe
                health = subprocess.run(
                    [str(bin_dir / healthcheck[0]), *healthcheck[1:]],
                    env=env,
                    capture_output=True,
                    timeout=30,
                )
                assert health.returncode == 0, health.stderr
                refused = httpx.post(
                    f"{proxy.url}/v1/chat/completions",
                    json={"model": "cheap", "messages": [{"role": "user", "content": "hi"}]},
                )
                assert refused.status_code == 401
                assert _ask(proxy, key, "cheap").headers["x-tierwise-tier"] == "cheap"
    finally:
        client_ = redis.Redis(host="127.0.0.1", port=6379, db=13)
        for name in client_.scan_iter(f"{{{prefix}}}:*"):
            client_.delete(name)
        client_.close()
