"""TLS: verified by default, --ca-bundle for a private CA, --insecure with a warning."""

from __future__ import annotations

import json
import subprocess

import pytest

from llm_users.simulator import SimulatorProcess
from tests.helpers import run_headless

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def https_sim(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    with SimulatorProcess(tls=(str(cert), str(key)), ttft_ms=2, itl_ms=1, output_tokens=4) as sim:
        yield sim, cert


def test_unverified_certificate_is_refused(https_sim):
    sim, _ = https_sim
    proc = run_headless(sim.url, 1, "--requests-per-user", "1")
    assert proc.returncode == 2
    assert "cannot reach the server" in proc.stderr and "CERTIFICATE_VERIFY_FAILED" in proc.stderr


def test_ca_bundle_verifies(https_sim, tmp_path):
    sim, cert = https_sim
    out = tmp_path / "s.json"
    proc = run_headless(
        sim.url,
        2,
        "--stream",
        "--requests-per-user",
        "2",
        "--ca-bundle",
        str(cert),
        "--summary-json",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(out.read_text())["requests"] == 4


def test_insecure_warns_and_works(https_sim, tmp_path):
    sim, _ = https_sim
    out = tmp_path / "s.json"
    proc = run_headless(
        sim.url,
        1,
        "--requests-per-user",
        "2",
        "--insecure",
        "--summary-json",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--insecure: TLS certificates are NOT verified" in proc.stderr
    assert json.loads(out.read_text())["requests"] == 2
