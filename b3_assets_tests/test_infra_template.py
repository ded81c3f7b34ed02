"""infra/: the CloudFormation template lints clean, is least-privilege, routes only landing files,
and deploy.sh packages what Lambda and Glue expect. Nothing here talks to AWS.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from lambda_handler import handler as lh

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "infra" / "template.yaml"
DEPLOY = ROOT / "infra" / "deploy.sh"

ACCOUNT, REGION, PARTITION = "123456789012", "us-east-1", "aws"
PARAMS = {"ArtifactBucket": "my-artifacts", "LambdaCodeS3Key": "b3/lambda.zip",
          "GlueScriptS3Key": "b3/job.py", "GluePackageS3Key": "b3/glue.zip"}
LAKE = f"b3-lake-{ACCOUNT}-{REGION}"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _cfn_lint_missing(what: str) -> None:
    if _in_ci():
        pytest.fail(f"{what} is required when CI=true")
    pytest.skip(f"{what} is not installed")


# --------------------------------------------------------------------------- template + resolver


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    try:
        from cfnlint.decode.cfn_yaml import loads
    except ImportError:
        _cfn_lint_missing("cfn-lint (its YAML decoder for !Ref/!Sub/!GetAtt)")
    return loads(TEMPLATE.read_text(encoding="utf-8"), str(TEMPLATE))


class Resolver:
    """Evaluates the intrinsic functions the template uses, with parameter defaults + PARAMS.

    Resources resolve to plausible physical names/ARNs, so policies can be compared to the exact
    ARNs a deployment in ACCOUNT/REGION would produce.
    """

    def __init__(self, tpl: dict[str, Any], overrides: dict[str, str] | None = None) -> None:
        self.tpl = tpl
        self.params = {k: str(v.get("Default", "")) for k, v in tpl["Parameters"].items()}
        self.params.update(PARAMS)
        self.params.update(overrides or {})
        self.pseudo = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION,
                       "AWS::Partition": PARTITION, "AWS::NoValue": None}

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.tpl["Conditions"][name]))

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        res = self.tpl["Resources"][name]
        props = res.get("Properties", {})
        kind = res["Type"]
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.resolve(props['QueueName'])}"
        for field in ("BucketName", "Name", "FunctionName", "LogGroupName", "RoleName"):
            if field in props:
                return self.resolve(props[field])
        return f"{name}-physical-id"

    def get_att(self, name: str, attr: str) -> str:
        kind = self.tpl["Resources"][name]["Type"]
        physical = self.ref(name)
        arns = {
            "AWS::S3::Bucket": f"arn:aws:s3:::{physical}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{str(physical).rsplit('/', 1)[-1]}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{physical}",
            "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{physical}:*",
            "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{physical}",
            "AWS::Events::Rule": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{physical}",
        }
        assert attr == "Arn", f"unexpected attribute {name}.{attr}"
        return arns[kind]

    def sub(self, text: str, local: dict[str, Any]) -> str:
        def one(m: re.Match[str]) -> str:
            expr = m.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in local:
                return str(self.resolve(local[expr]))
            if "." in expr and expr.split(".")[0] in self.tpl["Resources"]:
                return self.get_att(*expr.split(".", 1))
            return str(self.ref(expr))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, dict):
            if len(node) == 1:
                (fn, arg), = node.items()
                if fn == "Ref":
                    return self.ref(arg)
                if fn == "Fn::Sub":
                    text, local = (arg, {}) if isinstance(arg, str) else arg
                    return self.sub(text, local)
                if fn == "Fn::GetAtt":
                    name, attr = arg.split(".", 1) if isinstance(arg, str) else arg
                    return self.get_att(name, attr)
                if fn == "Fn::If":
                    cond, yes, no = arg
                    return self.resolve(yes if self.condition(cond) else no)
                if fn == "Fn::Equals":
                    a, b = (self.resolve(x) for x in arg)
                    return str(a) == str(b)
                if fn == "Fn::Not":
                    return not self.resolve(arg[0])
                if fn == "Fn::Join":
                    sep, items = arg
                    return sep.join(str(self.resolve(i)) for i in items)
                if fn.startswith("Fn::"):
                    raise AssertionError(f"resolver does not know {fn}")
            out = {k: self.resolve(v) for k, v in node.items()}
            return {k: v for k, v in out.items() if v is not None}
        if isinstance(node, list):
            return [self.resolve(v) for v in node]
        return node


@pytest.fixture(scope="module")
def r(template: dict[str, Any]) -> Resolver:
    return Resolver(template)


def _resources(tpl: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in tpl["Resources"].items() if v["Type"] == kind}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(role: dict[str, Any], r: Resolver) -> list[dict[str, Any]]:
    out = []
    for policy in role["Properties"].get("Policies", []):
        out += [r.resolve(s) for s in policy["PolicyDocument"]["Statement"]]
    return out


# --------------------------------------------------------------------------- lint


def test_cfn_lint_is_clean() -> None:
    exe = Path(sys.executable).with_name("cfn-lint")
    cmd = [str(exe)] if exe.exists() else ([shutil.which("cfn-lint")] if shutil.which(
        "cfn-lint") else None)
    if cmd is None:
        _cfn_lint_missing("cfn-lint")
    proc = subprocess.run(
        [*cmd, "--include-checks", "I", "--regions", "us-east-1", "sa-east-1", "--",
         str(TEMPLATE)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- IAM


ALLOWED_STAR = {("GlueJobRole", "cloudwatch:PutMetricData")}


def test_no_wildcard_resources_or_actions_except_where_aws_demands(
    template: dict[str, Any], r: Resolver
) -> None:
    roles = _resources(template, "AWS::IAM::Role")
    assert set(roles) == {"LandingTriggerRole", "GlueJobRole"}
    assert not _resources(template, "AWS::IAM::Policy")
    assert not _resources(template, "AWS::IAM::ManagedPolicy")
    star = set()
    for name, role in roles.items():
        assert "ManagedPolicyArns" not in role["Properties"], "no broad AWS managed policies"
        for st in _statements(role, r):
            assert st["Effect"] == "Allow"
            assert "NotAction" not in st and "NotResource" not in st
            for action in _as_list(st["Action"]):
                assert "*" not in action, f"{name}: wildcard action {action}"
            for resource in _as_list(st["Resource"]):
                if resource == "*":
                    star |= {(name, a) for a in _as_list(st["Action"])}
                    assert st["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Glue"}}
                else:
                    assert resource.startswith(f"arn:{PARTITION}:"), resource
    assert star == ALLOWED_STAR


def test_lambda_role_can_only_start_that_one_job(template: dict[str, Any], r: Resolver) -> None:
    role = template["Resources"]["LandingTriggerRole"]
    principal = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
    assert principal == {"Service": "lambda.amazonaws.com"}
    grants = {}
    for st in _statements(role, r):
        for action in _as_list(st["Action"]):
            grants[action] = _as_list(st["Resource"])
    job_name = r.ref("GlueJob")
    assert job_name == "b3-etl-soma-acao"
    assert grants == {
        "glue:StartJobRun": [f"arn:aws:glue:{REGION}:{ACCOUNT}:job/{job_name}"],
        "logs:CreateLogStream": [
            f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/b3-landing-trigger:*"],
        "logs:PutLogEvents": [
            f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/b3-landing-trigger:*"],
        "sqs:SendMessage": [f"arn:aws:sqs:{REGION}:{ACCOUNT}:b3-landing-dlq"],
    }
    fn = template["Resources"]["LandingTriggerFunction"]["Properties"]
    assert fn["Role"] == {"Fn::GetAtt": ["LandingTriggerRole", "Arn"]}
    assert fn["LoggingConfig"]["LogGroup"] == {"Ref": "LandingTriggerLogGroup"}


def test_glue_role_is_scoped_to_the_lake_prefixes_and_the_table(
    template: dict[str, Any], r: Resolver
) -> None:
    role = template["Resources"]["GlueJobRole"]
    principal = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
    assert principal == {"Service": "glue.amazonaws.com"}
    grants: dict[str, set[str]] = {}
    conditions: dict[str, Any] = {}
    for st in _statements(role, r):
        for action in _as_list(st["Action"]):
            grants.setdefault(action, set()).update(_as_list(st["Resource"]))
            if "Condition" in st:
                conditions[action] = st["Condition"]
    lake = f"arn:aws:s3:::{LAKE}"
    assert grants["s3:GetObject"] == {
        f"{lake}/landing/ibov/*", f"{lake}/refined/*", f"{lake}/refined_$folder$",
        "arn:aws:s3:::my-artifacts/b3/job.py", "arn:aws:s3:::my-artifacts/b3/glue.zip"}
    for write in ("s3:PutObject", "s3:DeleteObject"):
        assert grants[write] == {f"{lake}/refined/*", f"{lake}/refined_$folder$"}
    assert grants["s3:ListBucket"] == {lake}
    assert conditions["s3:ListBucket"] == {"StringLikeIfExists": {"s3:prefix": [
        "landing/ibov", "landing/ibov/*", "refined", "refined/*"]}}
    assert not {a for a in grants if a.startswith("s3:")} - {
        "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"}

    glue_arn = f"arn:aws:glue:{REGION}:{ACCOUNT}"
    # Its own job's runs, to wait out an overlapping run of the same date; nothing else.
    assert grants.pop("glue:GetJobRuns") == {f"{glue_arn}:job/{r.ref('GlueJob')}"}
    catalog_actions = {a for a in grants if a.startswith("glue:")}
    assert {"glue:GetTable", "glue:CreateTable", "glue:UpdateTable", "glue:GetPartition",
            "glue:GetPartitions", "glue:BatchCreatePartition", "glue:BatchDeletePartition",
            "glue:CreatePartition", "glue:DeletePartition", "glue:GetDatabase"} <= catalog_actions
    assert not {a for a in catalog_actions if "Delete" in a and "Partition" not in a}
    assert "glue:StartJobRun" not in catalog_actions
    table_scope = {f"{glue_arn}:catalog", f"{glue_arn}:database/default",
                   f"{glue_arn}:table/default/b3_etl_soma_acao"}
    for action in catalog_actions:
        assert grants[action] <= table_scope, action
    for action in ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"):
        assert grants[action] == {f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws-glue/*"}


def test_glue_role_follows_a_non_default_database(template: dict[str, Any]) -> None:
    r2 = Resolver(template, {"GlueDatabaseName": "b3", "CreateGlueDatabase": "true"})
    resources = set()
    for st in _statements(template["Resources"]["GlueJobRole"], r2):
        if any(a.startswith("glue:") for a in _as_list(st["Action"])):
            resources |= set(_as_list(st["Resource"]))
    glue_arn = f"arn:aws:glue:{REGION}:{ACCOUNT}"
    assert f"{glue_arn}:table/b3/b3_etl_soma_acao" in resources
    assert f"{glue_arn}:database/b3" in resources
    assert r2.condition("CreateDatabase") and not Resolver(template).condition("CreateDatabase")
    assert template["Resources"]["GlueDatabase"]["Condition"] == "CreateDatabase"


# --------------------------------------------------------------------------- resources


def test_bucket_is_private_encrypted_tls_only_and_notifies_eventbridge(
    template: dict[str, Any], r: Resolver
) -> None:
    (name, bucket), = _resources(template, "AWS::S3::Bucket").items()
    props = r.resolve(bucket["Properties"])
    assert props["BucketName"] == LAKE
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True,
        "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert props["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    assert "VersioningConfiguration" not in props  # optional, off by default
    versioned = Resolver(template, {"EnableVersioning": "true"}).resolve(bucket["Properties"])
    assert versioned["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["DeletionPolicy"] == "Retain"
    named = Resolver(template, {"BucketName": "my-lake"}).resolve(bucket["Properties"])
    assert named["BucketName"] == "my-lake"

    (policy,) = _resources(template, "AWS::S3::BucketPolicy").values()
    doc = r.resolve(policy["Properties"])
    assert doc["Bucket"] == LAKE
    (deny,) = doc["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert set(deny["Resource"]) == {f"arn:aws:s3:::{LAKE}", f"arn:aws:s3:::{LAKE}/*"}
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_lambda_retries_and_dead_letters(template: dict[str, Any], r: Resolver) -> None:
    res = template["Resources"]
    fn = r.resolve(res["LandingTriggerFunction"]["Properties"])
    assert fn["Runtime"] == "python3.11" and fn["Handler"] == "handler.handler"
    assert fn["Timeout"] == 900  # time to wait for a free Glue slot during a backfill
    assert fn["Code"] == {"S3Bucket": "my-artifacts", "S3Key": "b3/lambda.zip"}
    env = fn["Environment"]["Variables"]
    assert env["GLUE_JOB_NAME"] == "b3-etl-soma-acao" and env["B3_BUCKET"] == LAKE
    assert env["LANDING_PREFIX"] == "landing/ibov"
    assert {"REFINED_PREFIX", "GLUE_DATABASE", "GLUE_TABLE"} <= set(env)
    dlq_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:b3-landing-dlq"
    assert fn["DeadLetterConfig"] == {"TargetArn": dlq_arn}

    (invoke,) = _resources(template, "AWS::Lambda::EventInvokeConfig").values()
    props = invoke["Properties"]
    assert props["FunctionName"] == {"Ref": "LandingTriggerFunction"}
    assert 0 <= props["MaximumRetryAttempts"] <= 2
    assert 60 <= props["MaximumEventAgeInSeconds"] <= 21600

    (perm,) = _resources(template, "AWS::Lambda::Permission").values()
    perm_props = perm["Properties"]
    assert perm_props["Principal"] == "events.amazonaws.com"
    assert perm_props["SourceArn"] == {"Fn::GetAtt": ["LandingObjectCreatedRule", "Arn"]}

    (target,) = res["LandingObjectCreatedRule"]["Properties"]["Targets"]
    target = r.resolve(target)
    assert target["Arn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:b3-landing-trigger"
    assert target["DeadLetterConfig"] == {"Arn": dlq_arn}
    assert {"MaximumRetryAttempts", "MaximumEventAgeInSeconds"} <= set(target["RetryPolicy"])

    queue_policy = r.resolve(res["LandingDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"])
    allow = next(s for s in queue_policy["Statement"] if s["Effect"] == "Allow")
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage" and allow["Resource"] == dlq_arn
    assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": (
        f"arn:aws:events:{REGION}:{ACCOUNT}:rule/b3-landing-object-created")}}


def test_glue_job_and_catalog(template: dict[str, Any], r: Resolver) -> None:
    job = r.resolve(template["Resources"]["GlueJob"]["Properties"])
    assert job["GlueVersion"] == "5.0" and job["WorkerType"] == "G.1X"
    assert job["NumberOfWorkers"] == 2
    assert job["ExecutionProperty"] == {"MaxConcurrentRuns": "10"}
    assert job["Command"]["Name"] == "glueetl"
    assert job["Command"]["ScriptLocation"] == "s3://my-artifacts/b3/job.py"
    args = job["DefaultArguments"]
    assert args["--bucket"] == LAKE and args["--landing_prefix"] == "landing/ibov"
    assert args["--refined_prefix"] == "refined"
    assert args["--database"] == "default" and args["--table"] == "b3_etl_soma_acao"
    assert args["--extra-py-files"] == "s3://my-artifacts/b3/glue.zip"
    assert args["--job-bookmark-option"] == "job-bookmark-disable"
    assert "--data_carteira" not in args  # always per run, from the Lambda or the sensor
    # The job creates and updates the table; the stack must never own it.
    assert not _resources(template, "AWS::Glue::Table")
    assert not _resources(template, "AWS::Glue::Crawler")
    rule = template["Rules"]["DefaultDatabaseIsNotCreated"]
    assert rule["Assertions"][0]["Assert"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "GlueDatabaseName"}, "default"]}]}


def test_athena_workgroup(template: dict[str, Any], r: Resolver) -> None:
    (wg,) = _resources(template, "AWS::Athena::WorkGroup").values()
    props = r.resolve(wg["Properties"])
    assert props["Name"] == "b3-pipeline"
    conf = props["WorkGroupConfiguration"]
    assert conf["EnforceWorkGroupConfiguration"] is True
    assert conf["BytesScannedCutoffPerQuery"] == "1073741824"
    assert conf["ResultConfiguration"]["OutputLocation"] == f"s3://{LAKE}/athena-results/"


def test_outputs(template: dict[str, Any], r: Resolver) -> None:
    outputs = {k: r.resolve(v["Value"]) for k, v in template["Outputs"].items()}
    assert outputs["BucketName"] == LAKE
    assert outputs["GlueJobName"] == "b3-etl-soma-acao"
    assert outputs["AthenaWorkGroupName"] == "b3-pipeline"
    assert outputs["DeadLetterQueueUrl"] == (
        f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/b3-landing-dlq")


# --------------------------------------------------------------------------- event routing


@pytest.fixture(scope="module")
def rule_pattern(template: dict[str, Any], r: Resolver) -> Any:
    from moto.events.models import EventPattern

    pattern = r.resolve(template["Resources"]["LandingObjectCreatedRule"]["Properties"][
        "EventPattern"])
    return EventPattern.load(json.dumps(pattern))


RULE_ACCEPTS = [
    "landing/ibov/dt=2025-03-05/ibov.parquet",
    "landing/ibov/dt=2024-12-30/part-0001.parquet",
]
RULE_REJECTS = [
    "raw/ibov/dt=2025-03-05/manifest.json",
    "raw/ibov/dt=2025-03-05/ibov.parquet",
    "landing/ibov/dt=2025-03-05/ibov.parquet.tmp",
    "landing/ibov/dt=2025-03-05/manifest.json",
    "refined/DataCarteira=2025-03-05/Acao=PETR/x.parquet",
    "landing/ibovespa/dt=2025-03-05/ibov.parquet",
    "athena-results/abc.parquet",
    "landing/ibov/ibov.parquet",
]


@pytest.mark.parametrize("encode_key", [True, False], ids=["encoded", "literal"])
@pytest.mark.parametrize("key", RULE_ACCEPTS)
def test_rule_matches_landing_parquet(rule_pattern: Any, key: str, encode_key: bool) -> None:
    event = lh.object_created_event(LAKE, key, encode_key=encode_key)
    assert rule_pattern.matches_event(event)
    # and what the rule lets through, the Lambda accepts
    assert lh.decide(event, LAKE).start


@pytest.mark.parametrize("encode_key", [True, False], ids=["encoded", "literal"])
@pytest.mark.parametrize("key", RULE_REJECTS)
def test_rule_ignores_everything_else(rule_pattern: Any, key: str, encode_key: bool) -> None:
    assert not rule_pattern.matches_event(lh.object_created_event(LAKE, key,
                                                                  encode_key=encode_key))


def test_rule_ignores_other_buckets_and_event_types(rule_pattern: Any) -> None:
    good = RULE_ACCEPTS[0]
    assert not rule_pattern.matches_event(lh.object_created_event("other-bucket", good))
    deleted = lh.object_created_event(LAKE, good)
    deleted["detail-type"] = "Object Deleted"
    assert not rule_pattern.matches_event(deleted)
    foreign = lh.object_created_event(LAKE, good)
    foreign["source"] = "my.app"  # anyone may put_events; only S3's own events count
    assert not rule_pattern.matches_event(foreign)


def test_rule_never_drops_what_the_lambda_would_accept(rule_pattern: Any) -> None:
    """The rule is a coarse pre-filter; the Lambda is the strict check (dates, nesting, '..')."""
    from b3_assets_tests.test_lambda_handler import ENCODED, REJECTED_KEYS

    keys = [*RULE_ACCEPTS, *RULE_REJECTS, *REJECTED_KEYS.values()]
    events = [lh.object_created_event(LAKE, k, encode_key=e) for k in keys for e in (True, False)]
    events += [lh.object_created_event(LAKE, raw, encode_key=False) for raw, _ in ENCODED.values()
               if "%2F" not in raw]  # S3 keeps "/" unencoded
    for event in events:
        if lh.decide(event, LAKE).start:
            assert rule_pattern.matches_event(event), event["detail"]["object"]["key"]


# --------------------------------------------------------------------------- deploy.sh


@pytest.fixture
def deploy_tree(tmp_path: Path) -> Path:
    """A copy of the files deploy.sh packages, with a stand-in glue/ (written by another module)."""
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    tree = tmp_path / "repo"
    (tree / "infra").mkdir(parents=True)
    (tree / "lambda_handler").mkdir()
    (tree / "glue").mkdir()
    shutil.copy2(DEPLOY, tree / "infra" / "deploy.sh")
    shutil.copy2(TEMPLATE, tree / "infra" / "template.yaml")
    shutil.copy2(ROOT / "lambda_handler" / "handler.py", tree / "lambda_handler" / "handler.py")
    (tree / "glue" / "__init__.py").write_text("")
    (tree / "glue" / "job.py").write_text("print('job')\n")
    (tree / "glue" / "transform.py").write_text("X = 1\n")
    (tree / "glue" / "refine.sql").write_text("select 1\n")
    (tree / "glue" / "notes.md").write_text("not shipped\n")
    return tree


def _run_deploy(
    tree: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    return subprocess.run(["bash", str(tree / "infra" / "deploy.sh"), *args], capture_output=True,
                          text=True, timeout=60, env=full_env)


def test_package_only_builds_the_lambda_and_glue_zips(deploy_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "dist"
    proc = _run_deploy(deploy_tree, "--package-only", str(out))
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(out / "lambda_handler.zip") as zf:
        assert zf.namelist() == ["handler.py"]
        assert zf.read("handler.py") == (ROOT / "lambda_handler" / "handler.py").read_bytes()
    with zipfile.ZipFile(out / "glue_package.zip") as zf:
        assert sorted(zf.namelist()) == ["glue/__init__.py", "glue/job.py", "glue/refine.sql",
                                         "glue/transform.py"]
    assert (out / "job.py").read_text() == "print('job')\n"

    again = tmp_path / "dist2"
    assert _run_deploy(deploy_tree, "--package-only", str(again)).returncode == 0
    for name in ("lambda_handler.zip", "glue_package.zip"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), "zips are reproducible"


def test_package_only_zip_is_a_loadable_lambda(deploy_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "dist"
    assert _run_deploy(deploy_tree, "--package-only", str(out)).returncode == 0
    code = ("import sys, json; sys.path.insert(0, sys.argv[1]); import handler; "
            "print(json.dumps(handler.decide(handler.object_created_event('b', sys.argv[2]), "
            "'b').data_carteira))")
    proc = subprocess.run([sys.executable, "-c", code, str(out / "lambda_handler.zip"),
                           "landing/ibov/dt=2025-03-05/ibov.parquet"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == "2025-03-05"


def test_deploy_dry_run_prints_the_commands_and_calls_no_aws(
    deploy_tree: Path, tmp_path: Path
) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    called = tmp_path / "aws-called"
    (fake_bin / "aws").write_text(f"#!/bin/sh\ntouch {called}\nexit 97\n")
    (fake_bin / "aws").chmod(0o755)
    env = {"PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"}
    proc = _run_deploy(deploy_tree, "--dry-run", "my-stack", "my-artifacts", "sa-east-1", "--",
                       "NamePrefix=b3dev", env=env)
    assert proc.returncode == 0, proc.stderr
    assert not called.exists()
    lines = proc.stdout.splitlines()
    uploads = [line for line in lines if " s3 cp " in line]
    assert len(uploads) == 3
    assert all("s3://my-artifacts/b3-pipeline/my-stack/" in line for line in uploads)
    (deploy,) = [line for line in lines if "cloudformation deploy" in line]
    assert "--region sa-east-1" in deploy and "CAPABILITY_NAMED_IAM" in deploy
    assert "--stack-name my-stack" in deploy and "NamePrefix=b3dev" in deploy
    keys = dict(re.findall(r"(\w+)=(\S+)", deploy.split("--parameter-overrides", 1)[1]))
    assert keys["ArtifactBucket"] == "my-artifacts"
    assert re.fullmatch(r"b3-pipeline/my-stack/lambda_handler-[0-9a-f]{16}\.zip",
                        keys["LambdaCodeS3Key"])
    assert re.fullmatch(r"b3-pipeline/my-stack/glue_package-[0-9a-f]{16}\.zip",
                        keys["GluePackageS3Key"])
    assert re.fullmatch(r"b3-pipeline/my-stack/job-[0-9a-f]{16}\.py", keys["GlueScriptS3Key"])
    assert set(PARAMS) <= set(keys) <= set(yaml_parameters())


def yaml_parameters() -> list[str]:
    from cfnlint.decode.cfn_yaml import loads

    return list(loads(TEMPLATE.read_text(encoding="utf-8"))["Parameters"])


@pytest.mark.parametrize("args", [[], ["only-stack"], ["--package-only"],
                                  ["s", "b", "r", "NotAnOverride"]])
def test_deploy_usage_errors(deploy_tree: Path, args: list[str]) -> None:
    proc = _run_deploy(deploy_tree, *args)
    assert proc.returncode == 2
    assert "usage: infra/deploy.sh" in proc.stderr


def test_deploy_refuses_without_a_glue_job_script(deploy_tree: Path, tmp_path: Path) -> None:
    (deploy_tree / "glue" / "job.py").unlink()
    proc = _run_deploy(deploy_tree, "--package-only", str(tmp_path / "dist"))
    assert proc.returncode == 1 and "glue/job.py" in proc.stderr


@pytest.mark.skipif(not (ROOT / "glue" / "job.py").exists(), reason="glue/job.py not written yet")
def test_package_only_on_the_real_repository(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(DEPLOY), "--package-only", str(tmp_path)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr
    shipped = {p.name for p in (ROOT / "glue").iterdir() if p.suffix in {".py", ".sql"}}
    with zipfile.ZipFile(tmp_path / "glue_package.zip") as zf:
        assert {n.removeprefix("glue/") for n in zf.namelist()} == shipped
