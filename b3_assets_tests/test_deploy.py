"""The container deployment's files without containers (the slow container smoke test,
test_container.py, runs them): deploy/dagster.yaml opens a real PostgreSQL-backed instance,
compose.yaml keeps the UI on loopback, .env.example names only real settings, and
infra/hosting.yaml is cfn-lint clean, has no inbound port and a shell-valid user data."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from b3_assets_tests.support import postgres
from b3_assets_tests.support.cfn import Stack, load_template
from b3_assets_tests.support.ci import skip_unless

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
HOSTING = REPO / "infra" / "hosting.yaml"
POLICY = "arn:aws:iam::123456789012:policy/b3-dagster-us-east-1"

postgres_server = postgres.postgres_server


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_the_shipped_dagster_yaml_runs_on_postgres(tmp_path, postgres_server, monkeypatch):
    """deploy/dagster.yaml as the image has it (only its /data folders moved): a run and its
    events land in PostgreSQL and read back."""
    home = tmp_path / "home"
    home.mkdir()
    text = (DEPLOY / "dagster.yaml").read_text().replace("/data/dagster", str(tmp_path / "data"))
    (home / "dagster.yaml").write_text(text)
    db = postgres_server.create_database()
    for key, value in {
        "DAGSTER_PG_HOST": postgres_server.host,
        "DAGSTER_PG_PORT": str(postgres_server.port),
        "DAGSTER_PG_USERNAME": postgres.USER,
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": db,
    }.items():
        monkeypatch.setenv(key, value)

    @dg.op
    def hello() -> int:
        return 1

    @dg.job
    def hello_job() -> None:
        hello()

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_monitoring_enabled
        result = hello_job.execute_in_process(instance=instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS


def test_compose_keeps_the_ui_on_loopback_and_every_part_checked(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "code", "webserver", "daemon"}
    assert services["webserver"]["ports"] == ["${B3_UI_BIND:-127.0.0.1}:${B3_UI_PORT:-3000}:3000"]
    for name in ("postgres", "code", "daemon"):
        assert "ports" not in services[name], name  # reachable on the stack's network only
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"], name
    for name in ("code", "webserver", "daemon"):
        service = services[name]
        assert service["image"] == services["code"]["image"]  # one image, three roles
        assert service["env_file"] == [{"path": ".env", "required": False}]
        assert service["stop_signal"] == "SIGINT"
        assert service["healthcheck"]["test"] == ["CMD", "b3-health", name]
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    (location,) = workspace["load_from"]
    assert location["grpc_server"]["host"] == "code"
    assert location["grpc_server"]["location_name"] == "b3_pipeline"


def test_env_example_names_only_real_settings(compose):
    compose_text = (DEPLOY / "compose.yaml").read_text()
    code = "\n".join(p.read_text() for p in (REPO / "b3_assets").rglob("*.py"))
    keys = re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (DEPLOY / ".env.example").read_text(), re.M)
    assert "B3_ENV" in keys and "POSTGRES_PASSWORD" in keys and "B3_ALERT_WEBHOOK" in keys
    for key in keys:
        known = f"${{{key}" in compose_text or f'"{key}"' in code or key.startswith("AWS_")
        assert known, f"{key} in .env.example is neither a compose variable nor a setting"


def test_hosting_template_is_lint_clean():
    exe = Path(sys.executable).with_name("cfn-lint")
    found = str(exe) if exe.exists() else shutil.which("cfn-lint")
    skip_unless(found is not None, "cfn-lint is not installed (uv sync --dev)")
    assert found is not None
    proc = subprocess.run([found, str(HOSTING)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("webhook", ["", "/b3/alert-webhook"])
def test_hosting_instance_is_closed_and_its_setup_is_valid_shell(tmp_path, webhook):
    stack = Stack(
        load_template(HOSTING),
        {
            "DagsterPolicyArn": POLICY,
            "LakeBucket": "b3-lake-123456789012-us-east-1",
            "RepositoryUrl": "https://github.com/example/b3-pipeline.git",
            "VpcId": "vpc-0123",
            "SubnetId": "subnet-0123",
            "AlertWebhookParameter": webhook,
        },
    )
    group = stack.properties("SecurityGroup")
    assert "SecurityGroupIngress" not in group  # the UI goes through SSM port forwarding
    assert {rule["FromPort"] for rule in group["SecurityGroupEgress"]} == {80, 443}
    role = stack.properties("InstanceRole")
    assert POLICY in role["ManagedPolicyArns"]
    assert any("AmazonSSMManagedInstanceCore" in arn for arn in role["ManagedPolicyArns"])
    if webhook:
        (policy,) = role["Policies"]
        (statement,) = policy["PolicyDocument"]["Statement"]
        assert statement["Action"] == "ssm:GetParameter"
        assert statement["Resource"].endswith(f":parameter{webhook}")
    else:
        assert "Policies" not in role
    # (The resolver has no Fn::Base64: the user data's Sub is resolved on its own.)
    raw = dict(stack.template["Resources"]["Instance"]["Properties"])
    user_data = stack.resolve(raw.pop("UserData")["Fn::Base64"])
    instance = stack.resolve(raw)
    assert instance["MetadataOptions"] == {"HttpTokens": "required", "HttpPutResponseHopLimit": 2}
    assert "B3_ENV=aws" in user_data and "b3-lake-123456789012-us-east-1" in user_data
    assert "podman-compose==1.6.0" in user_data
    script = tmp_path / "user-data.sh"
    script.write_text(user_data)
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "portNumber=3000" in stack.outputs()["OpenTheUi"]
