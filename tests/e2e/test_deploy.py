"""deploy/: the Dockerfile's image (non-root, `llm-users run`) and the Kubernetes manifests,
rendered by kustomize and run as local processes: a master and the workers, with the
ConfigMap's config file, the Secret's key, and the simulator in place of the server."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_users.simulator import SimulatorProcess
from llm_users.simulator.process import stop_process
from tests.e2e.image import Image, clean_env
from tests.helpers import ROOT

pytestmark = pytest.mark.e2e

KUBECTL = shutil.which("kubectl")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_image_is_non_root_and_runs_llm_users(image: Image) -> None:
    assert image.user not in ("", "root", "0") and not image.user.startswith("0:")
    assert image.entrypoint == ["llm-users", "run"]
    assert set(image.exposed) == {"8089", "5557"}
    assert (image.bin / "llm-users").is_file()


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str], dict[str, Any]]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed: cannot render deploy/k8s")
    out = subprocess.run(
        [KUBECTL, "kustomize", str(ROOT / "deploy" / "k8s")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    return {(d["kind"], d["metadata"]["name"].rsplit("-", 1)[0]): d for d in docs} | {
        (d["kind"], d["metadata"]["name"]): d for d in docs
    }


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def _env(container: dict[str, Any], secret: dict[str, Any]) -> dict[str, str]:
    env = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"]
            env[e["name"]] = secret["stringData"][ref["key"]]
    return env


def _localise(args: list[str], mounts: dict[str, Path], overrides: dict[str, str]) -> list[str]:
    """Mounted paths -> local folders; --name=value options replaced by ``overrides``."""
    out = []
    for a in args:
        name, eq, value = a.partition("=")
        if eq and name in overrides:
            a = f"{name}={overrides[name]}"
        for mount, local in mounts.items():
            a = a.replace(mount, str(local))
        out.append(a)
    return out


def test_manifests_shape(rendered) -> None:
    master = rendered[("Deployment", "llm-users-master")]
    workers = rendered[("Deployment", "llm-users-worker")]
    service = rendered[("Service", "llm-users-master")]
    assert {p["port"] for p in service["spec"]["ports"]} == {5557, 8089}
    assert workers["spec"]["replicas"] >= 2
    for d in (master, workers):
        c = _container(d)
        assert d["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
        (key,) = (e for e in c["env"] if e["name"] == "OPENAI_API_KEY")
        assert "secretKeyRef" in key["valueFrom"]  # never a literal, never on the command line
        assert not any("api-key" in a for a in c["args"])
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    # a worker is one gevent process: a whole core, requested and capped alike (no throttling)
    wres = _container(workers)["resources"]
    assert wres["requests"]["cpu"] == wres["limits"]["cpu"] == "1"


@pytest.mark.timeout(120)
def test_master_and_workers_from_the_manifests_run_locally(
    rendered, image: Image, tmp_path: Path
) -> None:
    master_d = rendered[("Deployment", "llm-users-master")]
    workers_d = rendered[("Deployment", "llm-users-worker")]
    secret = rendered[("Secret", "llm-users-api-key")]
    config = rendered[("ConfigMap", "llm-users-config")]
    # the volumes, as local folders: the ConfigMap's files, an empty reports folder
    conf_dir, reports = tmp_path / "config", tmp_path / "reports"
    conf_dir.mkdir()
    reports.mkdir()
    for name, text in config["data"].items():
        (conf_dir / name).write_text(text)
    mounts = {}
    for c in (_container(master_d), _container(workers_d)):
        for m in c["volumeMounts"]:
            mounts[m["mountPath"]] = conf_dir if m["name"] == "config" else reports
    port = _free_port()
    entry = [str(image.bin / image.entrypoint[0]), *image.entrypoint[1:]]
    replicas = workers_d["spec"]["replicas"]

    m = _container(master_d)
    key = _env(m, secret)["OPENAI_API_KEY"]
    master_args = _localise(
        m["args"],
        mounts,
        {"--master-bind-port": str(port), "--web-port": str(_free_port())},
    )
    summary = reports / "summary.json"
    assert f"--summary-json={summary}" in master_args  # the manifest's summary, in its volume
    with SimulatorProcess(ttft_ms=20, itl_ms=2, output_tokens=8, api_key=key) as sim:
        run = [
            *["--headless", "-u", "4", "-r", "4", "--requests-per-user", "3"],
            *["--host", sim.url, "--expect-workers", str(replicas)],
            *["--master-bind-host", "127.0.0.1", "--web-host", "127.0.0.1"],
        ]
        env = clean_env(**_env(m, secret))
        master = subprocess.Popen(
            [*entry, *master_args, *run],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        w = _container(workers_d)
        worker_args = _localise(
            w["args"], mounts, {"--master-host": "127.0.0.1", "--master-port": str(port)}
        )
        workers = [
            subprocess.Popen(
                [*entry, *worker_args],
                cwd=tmp_path,
                env=clean_env(**_env(w, secret)),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(replicas)
        ]
        try:
            out, _ = master.communicate(timeout=90)
        finally:
            for p in [master, *workers]:
                stop_process(p, timeout=10)
        completed = sim.stats()["completed"]
    assert master.returncode == 0, out[-3000:]
    s = json.loads(summary.read_text())
    assert s["requests"] == 12 == completed and s["failures"] == 0
    assert len(s["workers"]) == replicas and all(w["final_report"] for w in s["workers"].values())
    assert s["mode"] == "streaming"  # from the ConfigMap's `stream = true`
