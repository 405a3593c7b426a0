"""The deployment files: the stack file as Docker reads it, the secrets, HZZ_BROKER_FILE.

`docker stack config` parses and validates a stack file (compose schema, interpolation,
merging of several -c files) without a Docker engine, so it runs in CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cluster.defaults import environment
from cluster.service.amqp import BROKER_FILE_ENV, BrokerConfigError, broker_url

ROOT = Path(__file__).resolve().parents[1]
STACK = ROOT / "docker-stack.yml"
MIRROR_OVERRIDE = ROOT / "docker-stack.mirror.yml"
CI_OVERRIDE = ROOT / "docker-stack.ci.yml"


def stack_config(*files: Path, env: dict[str, str] | None = None) -> dict:
    """The merged stack as `docker stack config` prints it; fails with Docker's message."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the docker client is not installed: cannot validate the stack file")
    argv = [docker, "stack", "config"]
    for path in files:
        argv += ["-c", str(path)]
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"docker stack config rejects {files}: {result.stderr}"
    return yaml.safe_load(result.stdout)


@pytest.mark.docker
def test_docker_accepts_the_stack_file_as_users_deploy_it() -> None:
    stack = stack_config(STACK)
    services = stack["services"]
    assert set(services) == {"rabbitmq", "dask-scheduler", "dask-worker", "plotter", "analysis"}
    worker = services["dask-worker"]
    assert worker["deploy"]["mode"] == "replicated"
    assert worker["deploy"]["replicas"] == 2
    assert worker["deploy"]["resources"]["limits"]["memory"]
    assert "--nthreads=1" in worker["command"]
    assert any(arg.startswith("--memory-limit=") for arg in worker["command"])
    # Only the dashboard is published; 8786 stays on the overlay network.
    ports = services["dask-scheduler"]["ports"]
    assert [(p["target"], int(p["published"])) for p in ports] == [(8787, 8787)]
    network = stack["networks"]["hzz"]
    assert network["driver"] == "overlay" and "encrypted" in network["driver_opts"]
    for name in ("plotter", "analysis"):
        assert services[name]["environment"][BROKER_FILE_ENV] == "/run/secrets/hzz_broker_url"
        assert "guest" not in str(services[name])
    rabbit_secret = services["rabbitmq"]["secrets"][0]
    assert rabbit_secret["target"].startswith("/etc/rabbitmq/conf.d/")
    assert "HZZ_DATA" not in services["analysis"].get("environment", {})  # HTTPS by default


#: The Dask role of each service that speaks Dask, and the secret files it is given.
DASK_ROLES = {"dask-scheduler": "scheduler", "dask-worker": "worker", "analysis": "client"}


@pytest.mark.docker
def test_dask_speaks_mutual_tls_with_certificates_from_secrets() -> None:
    stack = stack_config(STACK)
    services = stack["services"]
    scheduler = services["dask-scheduler"]["command"]
    assert scheduler[:2] == ["dask", "scheduler"] and "--protocol=tls" in scheduler
    assert "--port=8786" in scheduler
    assert services["dask-worker"]["command"][2] == "tls://dask-scheduler:8786"
    assert services["analysis"]["environment"]["HZZ_SCHEDULER"] == "tls://dask-scheduler:8786"
    for name, role in DASK_ROLES.items():
        service = services[name]
        assert service["environment"]["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "True"
        mounted = {s["source"]: s for s in service["secrets"] if isinstance(s, dict)}
        wanted = {"hzz_dask_ca": "ca.pem", f"hzz_dask_{role}_cert": f"{role}.pem"}
        wanted[f"hzz_dask_{role}_key"] = f"{role}-key.pem"
        for source, file_name in wanted.items():
            secret = mounted[source]
            assert secret["target"] == f"/run/secrets/dask/{file_name}", name
            assert (secret["uid"], secret["mode"]) == ("10001", 0o400), name  # the image's user
            assert stack["secrets"][source]["file"].endswith(f"/secrets/dask/{file_name}")
        # Only its own role's key; the CA's key reaches no service.
        assert {s for s in mounted if s.endswith("_key")} == {f"hzz_dask_{role}_key"}, name
        # Certificates only as secret files: paths on the command line, no PEM anywhere.
        assert "BEGIN" not in str(service)
        command = " ".join(service.get("command", []))
        assert all(p.startswith("/run/secrets/dask/") for p in _tls_paths(command)), name
    assert services["analysis"]["environment"]["HZZ_CERTIFICATES"] == "/run/secrets/dask"
    assert "hzz_dask" not in str(services["plotter"]) + str(services["rabbitmq"])
    assert not any("ca-key" in str(secret) for secret in stack["secrets"].values())


def _tls_paths(command: str) -> list[str]:
    return [word.split("=", 1)[1] for word in command.split() if word.startswith("--tls-")]


@pytest.mark.docker
def test_placement_keeps_the_stateful_services_on_the_manager_and_spreads_workers() -> None:
    services = stack_config(STACK)["services"]
    for name in ("dask-scheduler", "rabbitmq", "plotter", "analysis"):
        constraints = services[name]["deploy"]["placement"]["constraints"]
        assert constraints == ["node.role == manager"], name
    placement = services["dask-worker"]["deploy"]["placement"]
    assert placement == {"preferences": [{"spread": "node.id"}]}


@pytest.mark.docker
def test_mirror_override_mounts_the_mirror_in_workers_and_analysis() -> None:
    stack = stack_config(STACK, MIRROR_OVERRIDE, env={"HZZ_MIRROR": "/srv/mirror/4lep"})
    for name in ("dask-worker", "analysis"):
        mounts = stack["services"][name]["volumes"]
        assert {
            "type": "bind",
            "source": "/srv/mirror/4lep",
            "target": "/data/4lep",
            "read_only": True,
        } in mounts
    assert stack["services"]["analysis"]["environment"]["HZZ_DATA"] == "/data/4lep"


@pytest.mark.docker
def test_ci_override_keeps_the_stack_and_avoids_only_what_needs_ipvs(tmp_path: Path) -> None:
    env = {"HZZ_CI_SECRETS": str(tmp_path), "HZZ_DASHBOARD_PORT": "18787", "HZZ_MIRROR": "/m"}
    users = stack_config(STACK, MIRROR_OVERRIDE, env={"HZZ_MIRROR": "/m"})
    stack = stack_config(STACK, MIRROR_OVERRIDE, CI_OVERRIDE, env=env)
    # No ESP on the CI kernel: the same network, unencrypted (Dask's TLS stays on).
    assert stack["networks"]["hzz"] == {"driver": "overlay", "attachable": True}
    assert users["networks"]["hzz"]["driver_opts"] == {"encrypted": "true"}
    assert stack["secrets"]["hzz_broker_url"]["file"] == f"{tmp_path}/broker-url"
    assert stack["secrets"]["hzz_dask_ca"]["file"] == f"{tmp_path}/dask/ca.pem"
    ports = stack["services"]["dask-scheduler"]["ports"]
    assert [(p["target"], int(p["published"]), p["mode"]) for p in ports] == [(8787, 18787, "host")]
    for name, service in stack["services"].items():
        assert service["deploy"]["endpoint_mode"] == "dnsrr", name
        # Everything else of the users' stack stays as it is.
        for key in ("image", "healthcheck", "secrets", "volumes", "environment"):
            assert service.get(key) == users["services"][name].get(key), (name, key)
        kept = {k: v for k, v in service["deploy"].items() if k != "endpoint_mode"}
        assert kept == users["services"][name]["deploy"], name


@pytest.mark.docker
def test_every_service_checks_its_own_health() -> None:
    services = stack_config(STACK)["services"]
    dockerfiles = {
        name: (ROOT / f"Dockerfile.{name}").read_text() for name in ("scheduler", "worker")
    }
    # Scheduler and workers: the image's probe of dask's own /health, every few seconds
    # (swarm resolves a service's name only once it is healthy).
    for name, port in (("scheduler", 8787), ("worker", 8789)):
        healthcheck = next(
            line for line in dockerfiles[name].splitlines() if line.startswith("HEALTHCHECK")
        )
        assert "--interval=5s" in healthcheck, healthcheck
        assert f":{port}/health" in dockerfiles[name]
    assert "healthcheck" not in services["dask-worker"]
    assert "healthcheck" not in services["dask-scheduler"]
    # The plotter runs the worker image but is checked by its own heartbeat.
    plotter = services["plotter"]
    heartbeat = plotter["command"][plotter["command"].index("--health-file") + 1]
    assert plotter["healthcheck"]["test"][:4] == ["CMD", "hzz", "health", heartbeat]
    # The one-shot analysis serves nothing: no check to fail it.
    assert services["analysis"]["healthcheck"] == {"disable": True}


def test_make_secrets_writes_one_password_twice_and_private(tmp_path: Path) -> None:
    out = tmp_path / "secrets"
    env = {**os.environ, "HZZ": str(Path(sys.executable).parent / "hzz")}
    subprocess.run(["sh", str(ROOT / "deploy" / "make-secrets.sh"), str(out)], check=True, env=env)
    conf = (out / "rabbitmq-credentials.conf").read_text().splitlines()
    url = (out / "broker-url").read_text().strip()
    assert conf[0] == "default_user = hzz"
    password = conf[1].removeprefix("default_pass = ")
    assert len(password) == 48
    assert url == f"amqp://hzz:{password}@rabbitmq:5672/%2F"
    assert {p.name for p in (out / "dask").iterdir()} >= {"ca.pem", "worker-key.pem"}
    for path in [*out.iterdir(), *(out / "dask").iterdir()]:
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
    again = subprocess.run(
        ["sh", str(ROOT / "deploy" / "make-secrets.sh"), str(out)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert again.returncode == 1 and "already holds secrets" in again.stderr


def test_broker_url_is_read_from_the_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "hzz_broker_url"
    secret.write_text("amqp://hzz:s3cret@rabbitmq:5672/%2F\n")
    monkeypatch.delenv("HZZ_BROKER", raising=False)
    monkeypatch.setenv(BROKER_FILE_ENV, str(secret))
    assert broker_url() == "amqp://hzz:s3cret@rabbitmq:5672/%2F"
    assert broker_url("amqp://explicit/") == "amqp://explicit/"
    monkeypatch.setenv("HZZ_BROKER", "amqp://from-env/")
    environment.cache_clear()  # as a new process would read it
    assert broker_url() == "amqp://from-env/"


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "cannot read it"), ("hunter2-not-a-url", "expected one amqp://")],
)
def test_bad_secret_file_is_named_and_its_content_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None, expected: str
) -> None:
    secret = tmp_path / "hzz_broker_url"
    if content is not None:
        secret.write_text(content)
    monkeypatch.delenv("HZZ_BROKER", raising=False)
    monkeypatch.setenv(BROKER_FILE_ENV, str(secret))
    with pytest.raises(BrokerConfigError) as raised:
        broker_url()
    assert str(secret) in str(raised.value) and expected in str(raised.value)
    assert "hunter2" not in str(raised.value)
    # The plotter says so and exits 2 instead of a traceback.
    result = subprocess.run(
        [sys.executable, "-m", "cluster.cli", "plotter", "--once", "--timeout", "1"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "HZZ_BROKER"}
        | {BROKER_FILE_ENV: str(secret)},
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert str(secret) in result.stderr and "hunter2" not in result.stderr
