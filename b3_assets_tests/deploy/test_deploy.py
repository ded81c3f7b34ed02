"""The container deployment's files without containers (the slow container smoke test,
test_container.py, runs them): deploy/dagster.yaml opens a real PostgreSQL-backed instance,
compose.yaml keeps the UI on loopback, .env.example names only real settings, and
infra/hosting.yaml is cfn-lint clean, has no inbound port and a shell-valid user data."""

from __future__ import annotations

import json
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

REPO = Path(__file__).resolve().parents[2]
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


HOSTING_PARAMETERS = {
    "DagsterPolicyArn": POLICY,
    "LakeBucket": "b3-lake-123456789012-us-east-1",
    "RepositoryUrl": "https://github.com/example/b3-pipeline.git",
    "VpcId": "vpc-0123",
    "SubnetId": "subnet-0123",
    "AvailabilityZone": "us-east-1a",
    "ImageId": "ami-0123456789abcdef0",
}


def hosting(**overrides: str) -> Stack:
    return Stack(load_template(HOSTING), {**HOSTING_PARAMETERS, **overrides})


@pytest.mark.parametrize("webhook", ["", "/b3/alert-webhook"])
def test_hosting_instance_is_closed_and_its_setup_is_valid_shell(tmp_path, webhook):
    stack = hosting(AlertWebhookParameter=webhook)
    group = stack.properties("SecurityGroup")
    assert "SecurityGroupIngress" not in group  # the UI goes through SSM port forwarding
    assert {rule["FromPort"] for rule in group["SecurityGroupEgress"]} == {80, 443}
    role = stack.properties("InstanceRole")
    assert POLICY in role["ManagedPolicyArns"]
    assert any("AmazonSSMManagedInstanceCore" in arn for arn in role["ManagedPolicyArns"])
    policies = {p["PolicyName"]: p for p in role["Policies"]}
    if webhook:
        (statement,) = policies["read-alert-webhook"]["PolicyDocument"]["Statement"]
        assert statement["Action"] == "ssm:GetParameter"
        assert statement["Resource"].endswith(f":parameter{webhook}")
    else:
        assert set(policies) == {"attach-the-data-volume"}
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


def test_hosting_data_survives_an_instance_replacement():
    """PostgreSQL's data and deploy/.env live on a volume of their own: nothing of it depends
    on the instance, so a new AMI or instance type (which replace the instance) leave it as it
    is; deleting it leaves a snapshot; the AMI is an explicit id, not SSM's "latest", so an
    update replaces the instance only when asked; daily snapshots back it up."""
    template = load_template(HOSTING)
    assert template["Parameters"]["ImageId"]["Type"] == "AWS::EC2::Image::Id"
    volume = template["Resources"]["DataVolume"]
    assert volume["DeletionPolicy"] == volume["UpdateReplacePolicy"] == "Snapshot"
    def instance(stack: Stack) -> dict[str, Any]:
        raw = dict(stack.template["Resources"]["Instance"]["Properties"])
        raw.pop("UserData")  # (the resolver has no Fn::Base64)
        return stack.resolve(raw)

    before = hosting()
    after = hosting(ImageId="ami-0fedcba9876543210", InstanceType="t3.medium")
    assert instance(before)["ImageId"] != instance(after)["ImageId"]
    assert before.properties("DataVolume") == after.properties("DataVolume")
    assert "Instance" not in json.dumps(template["Resources"]["DataVolume"])
    (root,) = instance(before)["BlockDeviceMappings"]
    assert root["Ebs"]["DeleteOnTermination"] is True  # the root holds no state
    user_data = before.resolve(
        dict(before.template["Resources"]["Instance"]["Properties"])["UserData"]["Fn::Base64"])
    volume_id = before.resolve({"Ref": "DataVolume"})
    assert f"vol={volume_id}" in user_data
    assert 'volume_path = "/srv/b3/volumes"' in user_data  # PostgreSQL's named volume
    assert "ln -sf /srv/b3/.env deploy/.env" in user_data
    assert before.properties("DataVolume")["AvailabilityZone"] == "us-east-1a"
    assert instance(before)["AvailabilityZone"] == "us-east-1a"
    assert "SnapshotId" not in before.properties("DataVolume")
    restored = hosting(DataSnapshotId="snap-0123456789abcdef0")
    assert restored.properties("DataVolume")["SnapshotId"] == "snap-0123456789abcdef0"
    backups = before.properties("DataVolumeBackups")["PolicyDetails"]
    assert backups["TargetTags"] == [{"Key": "b3-pipeline-backup", "Value": before.resolve(
        {"Ref": "AWS::StackName"})}]
    assert backups["Schedules"][0]["RetainRule"] == {"Count": "7"}
