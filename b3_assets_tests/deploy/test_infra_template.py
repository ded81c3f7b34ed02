"""infra/: the template lints clean, routes only landing files, grants least privilege and
alerts on failures; deploy.sh packages what Lambda and Glue expect and checks the regions.
Nothing here talks to AWS.

What the template creates is pinned by one snapshot of its resolved resources
(``__snapshots__/test_infra_template/``): after a deliberate template change, review the diff
and run ``pytest b3_assets_tests/deploy/test_infra_template.py --snapshot-update``. The tests below
state behaviour: which keys start the job, who may do what where.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

from b3_assets.platform.local_aws import object_created_event
from b3_assets.settings import Settings
from b3_assets_tests.support.cfn import (
    ACCOUNT,
    REGION,
    TEMPLATE_PATH,
    Stack,
    allows,
    grants,
    load_template,
)
from b3_assets_tests.support.ci import skip_unless
from glue.layout import TABLE_NAME, landing_date_from_key, landing_key, refined_run_prefix

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "infra" / "deploy.sh"

PREFIX = "b3-pipeline/b3-pipeline"  # what deploy.sh uploads under for stack "b3-pipeline"
PARAMS = {
    "ArtifactBucket": "my-artifacts",
    "ArtifactPrefix": PREFIX,
    "LambdaCodeS3Key": f"{PREFIX}/lambda_handler-0123456789abcdef.zip",
    "GlueScriptS3Key": f"{PREFIX}/job-0123456789abcdef.py",
    "GluePackageS3Key": f"{PREFIX}/glue_package-0123456789abcdef.zip",
}
LAKE = f"b3-lake-{ACCOUNT}-{REGION}"
GLUE = f"arn:aws:glue:{REGION}:{ACCOUNT}"
DAY = date(2025, 3, 5)


def stack(**overrides: Any) -> Stack:
    """The stack with default parameters plus the sample artifacts and ``overrides``."""
    return Stack(parameters={**PARAMS, **overrides})


@pytest.fixture(scope="module")
def default() -> Stack:
    return stack()


def s3(key: str | None = None, bucket: str = LAKE) -> str:
    return f"arn:aws:s3:::{bucket}" + ("" if key is None else f"/{key}")


# --------------------------------------------------------------------------- the whole template


def test_cfn_lint_is_clean() -> None:
    exe = Path(sys.executable).with_name("cfn-lint")
    found = str(exe) if exe.exists() else shutil.which("cfn-lint")
    skip_unless(found is not None, "cfn-lint is not installed (uv sync --dev)")
    assert found is not None
    proc = subprocess.run(
        [found, "--include-checks", "I", "--regions", "us-east-1", "sa-east-1", "--",
         str(TEMPLATE_PATH)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_resolved_resources(default: Stack, snapshot: Any) -> None:
    """Every resource as CloudFormation would create it, default parameters + sample artifacts."""
    assert default.resources() == snapshot(extension_class=JSONSnapshotExtension)


def test_outputs_are_the_pipeline_settings(default: Stack) -> None:
    """The stack's defaults are the pipeline's defaults: only B3_BUCKET must be set for AWS."""
    out = default.outputs()
    defaults = Settings()
    assert out["BucketName"] == LAKE
    assert out["GlueJobName"] == defaults.glue_job_name
    assert out["GlueDatabaseName"] == defaults.glue_database
    assert out["GlueTableName"] == TABLE_NAME
    assert out["AthenaWorkGroupName"] == defaults.athena_workgroup
    assert out["DagsterPolicyArn"] == f"arn:aws:iam::{ACCOUNT}:policy/b3-dagster-{REGION}"
    export = default.resolve(default.template["Outputs"]["DagsterPolicyArn"]["Export"])
    assert export == {"Name": "b3-pipeline-DagsterPolicyArn"}


def test_lambda_and_job_get_only_what_their_code_reads(default: Stack) -> None:
    """The lake layout is fixed (glue/layout.py): no prefixes or table name are passed."""
    env = default.properties("LandingTriggerFunction")["Environment"]["Variables"]
    assert env == {"GLUE_JOB_NAME": "b3-etl-soma-acao", "B3_BUCKET": LAKE,
                   "GLUE_DATABASE": "default"}
    job = default.properties("GlueJob")
    assert job["JobRunQueuingEnabled"] is True  # starts past MaxConcurrentRuns wait, not fail
    args = job["DefaultArguments"]
    assert (args["--bucket"], args["--database"]) == (LAKE, "default")
    # Dates come with each run (the Lambda, the sensor); the layout is fixed; Glue 5.0 logs
    # in real time anyway, and the job catalogs through boto3, not Spark's metastore.
    assert not {"--landing_prefix", "--refined_prefix", "--table", "--data_carteira",
                "--data_carteiras", "--enable-continuous-cloudwatch-log",
                "--enable-glue-datacatalog"} & set(args)


def test_lambda_concurrency_is_reserved_only_when_asked() -> None:
    """A new account's concurrency quota is 10 with 100 that must stay unreserved: any
    reservation is refused there, so the default reserves nothing (issue #20)."""
    fn = "LandingTriggerFunction"
    assert "ReservedConcurrentExecutions" not in stack().properties(fn)
    assert stack(LambdaReservedConcurrency=2).properties(fn)["ReservedConcurrentExecutions"] == "2"
    assert "ReservedConcurrentExecutions" not in stack(LambdaReservedConcurrency=0).properties(fn)


def test_every_log_group_is_the_stacks_with_the_retention_asked_for() -> None:
    st = stack(LogRetentionDays=90)
    groups = {g["Properties"]["LogGroupName"]: g
              for g in st.of_type("AWS::Logs::LogGroup").values()}
    assert all(g["Properties"]["RetentionInDays"] == "90" for g in groups.values())
    logging_config = st.properties("LandingTriggerFunction")["LoggingConfig"]
    assert logging_config == {"LogGroup": "/aws/lambda/b3-landing-trigger", "LogFormat": "JSON"}
    # Glue 5.0 writes to <--custom-logGroup-prefix>/error and /output: both exist, retained.
    glue_prefix = st.properties("GlueJob")["DefaultArguments"]["--custom-logGroup-prefix"]
    assert set(groups) == {logging_config["LogGroup"], f"{glue_prefix}/error",
                           f"{glue_prefix}/output"}
    assert {"GlueJobErrorLogGroup", "GlueJobOutputLogGroup"} <= set(
        st.template["Resources"]["GlueJob"]["DependsOn"])


# --------------------------------------------------------------------------- landing event routing


def _pattern(st: Stack, rule: str) -> Any:
    from moto.events.models import EventPattern

    return EventPattern.load(json.dumps(st.properties(rule)["EventPattern"]))


@pytest.fixture(scope="module")
def landing_rule(default: Stack) -> Any:
    return _pattern(default, "LandingObjectCreatedRule")


RULE_ACCEPTS = [landing_key(DAY), landing_key(date(2024, 12, 30))]
RULE_REJECTS = [
    "raw/ibov/dt=2025-03-05/manifest.json",
    "raw/ibov/dt=2025-03-05/ibov.parquet",
    "landing/ibov/dt=2025-03-05/part-0001.parquet",
    "landing/ibov/dt=2025-03-05/ibov.parquet.tmp",
    "landing/ibov/dt=2025-03-05/manifest.json",
    "landing/ibov_teorica/dt=2025-03-05/ibov_teorica.parquet",  # DESIGN: never starts the job
    "landing/ibov_previa/dt=2025-03-05/ibov_previa.parquet",
    "landing/ibovespa/dt=2025-03-05/ibov.parquet",
    "landing/ibov/ibov.parquet",
    f"{refined_run_prefix(DAY, 'PETR', 'jr_1')}part-0.parquet",
    "reports/dt=2025-03-05/petr.png",
    "athena-results/abc.parquet",
]


@pytest.mark.parametrize("encode_key", [True, False], ids=["encoded", "literal"])
@pytest.mark.parametrize("key", RULE_ACCEPTS)
def test_rule_matches_landing_files(landing_rule: Any, key: str, encode_key: bool) -> None:
    assert landing_rule.matches_event(object_created_event(LAKE, key, encode_key=encode_key))


@pytest.mark.parametrize("encode_key", [True, False], ids=["encoded", "literal"])
@pytest.mark.parametrize("key", RULE_REJECTS)
def test_rule_ignores_everything_else(landing_rule: Any, key: str, encode_key: bool) -> None:
    assert not landing_rule.matches_event(object_created_event(LAKE, key, encode_key=encode_key))


def test_rule_ignores_other_buckets_event_types_and_sources(landing_rule: Any) -> None:
    good = landing_key(DAY)
    assert not landing_rule.matches_event(object_created_event("other-bucket", good))
    deleted = object_created_event(LAKE, good)
    deleted["detail-type"] = "Object Deleted"
    assert not landing_rule.matches_event(deleted)
    foreign = object_created_event(LAKE, good)
    foreign["source"] = "my.app"  # anyone may put_events; only S3's own events count
    assert not landing_rule.matches_event(foreign)


def test_rule_never_drops_a_landing_file(landing_rule: Any) -> None:
    """The rule is a coarse pre-filter; the layout (and the Lambda) are the strict check."""
    keys = [*RULE_ACCEPTS, *RULE_REJECTS, landing_key(date(2000, 1, 1)),
            "landing/ibov/dt=2025-02-30/ibov.parquet", "landing/ibov/dt=2025-03-05/x/ibov.parquet",
            "landing/ibov/dt=2025-3-5/ibov.parquet", "landing/ibov/dt=../ibov.parquet"]
    assert any(landing_date_from_key(k) for k in keys)
    for key in keys:
        for encode_key in (True, False):
            if landing_date_from_key(key) is not None:
                event = object_created_event(LAKE, key, encode_key=encode_key)
                assert landing_rule.matches_event(event), key


# --------------------------------------------------------------------------- IAM


def _policies(st: Stack) -> dict[str, list[dict[str, Any]]]:
    names = [*st.of_type("AWS::IAM::Role"), *st.of_type("AWS::IAM::ManagedPolicy")]
    return {name: st.policy_statements(name) for name in names}


def test_no_wildcard_actions_and_star_only_for_glue_metrics(default: Stack) -> None:
    policies = _policies(default)
    assert set(policies) == {"LandingTriggerRole", "GlueJobRole", "DagsterPolicy"}
    assert not default.of_type("AWS::IAM::Policy")
    star = set()
    for name, statements in policies.items():
        assert "ManagedPolicyArns" not in default.properties(name), "no broad managed policies"
        for st in statements:
            assert st["Effect"] == "Allow"
            assert "NotAction" not in st and "NotResource" not in st
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            assert not [a for a in actions if "*" in a], name
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            for resource in resources:
                if resource == "*":
                    star |= {(name, a) for a in actions}
                    assert st["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Glue"}}
                else:
                    assert resource.startswith("arn:aws:"), resource
    assert star == {("GlueJobRole", "cloudwatch:PutMetricData")}


def test_lambda_role_can_only_start_its_job(default: Stack) -> None:
    assert grants(default.policy_statements("LandingTriggerRole")) == {
        "glue:StartJobRun": {f"{GLUE}:job/b3-etl-soma-acao"},
        "s3:GetObjectTagging": {s3("landing/ibov/*")},
        "logs:CreateLogStream": {
            f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/b3-landing-trigger:*"},
        "logs:PutLogEvents": {
            f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/b3-landing-trigger:*"},
        "sqs:SendMessage": {f"arn:aws:sqs:{REGION}:{ACCOUNT}:b3-landing-dlq"},
    }


REFINED_KEY = f"{refined_run_prefix(DAY, 'PETR', 'jr_abc')}part-00000.snappy.parquet"
OUTSIDE_REFINED = [
    landing_key(DAY), "raw/ibov/dt=2025-03-05/payload.json", "reports/dt=2025-03-05/x.png",
    "athena-results/q.csv", "refinedx/y", "b3_etl_soma_acao/x",
]
WRITES = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]


def test_glue_role_writes_only_under_refined(default: Stack) -> None:
    glue = default.policy_statements("GlueJobRole")
    for action in WRITES:
        assert allows(glue, action, s3(REFINED_KEY)), action
        for key in OUTSIDE_REFINED:
            assert not allows(glue, action, s3(key)), (action, key)
        assert not allows(glue, action, s3(REFINED_KEY, bucket="other-bucket"))
    assert allows(glue, "s3:ListMultipartUploadParts", s3(REFINED_KEY))
    assert allows(glue, "s3:ListBucketMultipartUploads", s3())
    assert not [a for a in grants(glue) if a.startswith("s3:") and a not in {
        *WRITES, "s3:GetObject", "s3:ListBucket", "s3:ListMultipartUploadParts",
        "s3:ListBucketMultipartUploads"}]


def test_glue_role_reads_landing_refined_and_its_code_only(default: Stack) -> None:
    glue = default.policy_statements("GlueJobRole")
    for key in (landing_key(DAY), REFINED_KEY):
        assert allows(glue, "s3:GetObject", s3(key))
    assert not allows(glue, "s3:GetObject", s3("raw/ibov/dt=2025-03-05/payload.json"))
    assert not allows(glue, "s3:GetObject", s3("reports/dt=2025-03-05/x.png"))
    for artifact in ("GlueScriptS3Key", "GluePackageS3Key"):  # the prefix, not each hashed key
        assert allows(glue, "s3:GetObject", s3(PARAMS[artifact], bucket="my-artifacts"))
    assert allows(glue, "s3:GetObject", s3(f"{PREFIX}/job-fedcba9876543210.py", "my-artifacts"))
    assert not allows(glue, "s3:GetObject", s3("b3-pipeline/other-stack/job.py", "my-artifacts"))
    # Listing: the job's own prefixes; a HEAD (no s3:prefix) must get 404 rather than 403.
    for prefix in ("landing/ibov/dt=", "refined/DataCarteira=2025-03-05/", "refined"):
        assert allows(glue, "s3:ListBucket", s3(), {"s3:prefix": prefix}), prefix
    for prefix in ("raw/", "reports/", ""):
        assert not allows(glue, "s3:ListBucket", s3(), {"s3:prefix": prefix}), prefix
    assert allows(glue, "s3:ListBucket", s3())


def test_glue_role_catalogs_only_its_database_and_table(default: Stack) -> None:
    glue = default.policy_statements("GlueJobRole")
    table, db = f"{GLUE}:table/default/{TABLE_NAME}", f"{GLUE}:database/default"
    assert grants(glue)["glue:CreateDatabase"] == {f"{GLUE}:catalog", db}
    for action in ("glue:GetTable", "glue:CreateTable", "glue:UpdateTable",
                   "glue:GetPartitions", "glue:BatchCreatePartition",
                   "glue:BatchUpdatePartition", "glue:BatchDeletePartition",
                   "glue:UpdatePartition"):
        assert allows(glue, action, table), action
        assert not allows(glue, action, f"{GLUE}:table/default/other_table"), action
    assert not allows(glue, "glue:DeleteTable", table)
    assert not allows(glue, "glue:DeleteDatabase", db)
    assert not allows(glue, "glue:CreateDatabase", f"{GLUE}:database/other")
    assert not allows(glue, "glue:StartJobRun", f"{GLUE}:job/b3-etl-soma-acao")
    # Runs of a date are serialized by a lock object, not by reading the job's runs.
    assert "glue:GetJobRuns" not in grants(glue)

    other = stack(GlueDatabaseName="b3").policy_statements("GlueJobRole")
    assert allows(other, "glue:CreateDatabase", f"{GLUE}:database/b3")
    assert allows(other, "glue:BatchUpdatePartition", f"{GLUE}:table/b3/{TABLE_NAME}")
    assert not allows(other, "glue:GetTable", table)


def test_glue_role_logs_only_to_its_own_log_groups(default: Stack) -> None:
    glue = default.policy_statements("GlueJobRole")
    logs = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:"
    for group in default.outputs()["GlueJobLogGroups"].split():
        assert allows(glue, "logs:PutLogEvents", f"{logs}{group}:log-stream:jr_1-driver")
        assert allows(glue, "logs:CreateLogStream", f"{logs}{group}:log-stream:jr_1-driver")
    assert not allows(glue, "logs:PutLogEvents", f"{logs}/aws-glue/jobs/output:log-stream:x")
    assert not allows(glue, "logs:PutLogEvents", f"{logs}/aws/lambda/b3-landing-trigger:x")


def test_dagster_policy_lets_dagster_run_the_pipeline_and_nothing_more(default: Stack) -> None:
    dag = default.policy_statements("DagsterPolicy")
    for key in ("raw/ibov/dt=2025-03-05/payload.json", landing_key(DAY),
                "reports/dt=2025-03-05/petr.png", "athena-results/q.csv",
                "raw/ibov_teorica/dt=2025-03-05/page-001.json",
                "landing/ibov_previa/dt=2025-03-05/ibov_previa.parquet"):
        assert allows(dag, "s3:PutObject", s3(key)) and allows(dag, "s3:GetObject", s3(key))
    assert allows(dag, "s3:GetObject", s3(REFINED_KEY))
    for key in (REFINED_KEY, "raw/other/x", "landing/ibov_other/dt=2025-03-05/x.parquet"):
        assert not allows(dag, "s3:PutObject", s3(key)), key
    assert not [a for a in grants(dag) if "Delete" in a]
    for prefix in ("raw/ibov/dt=2025-03-05/", "landing/ibov/dt=", "refined/", "reports/"):
        assert allows(dag, "s3:ListBucket", s3(), {"s3:prefix": prefix}), prefix
    assert not allows(dag, "s3:ListBucket", s3(), {"s3:prefix": "secrets/"})

    job = f"{GLUE}:job/b3-etl-soma-acao"
    for action in ("glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns"):
        assert allows(dag, action, job) and not allows(dag, action, f"{GLUE}:job/other")
    for action in ("glue:GetDatabase", "glue:GetTable", "glue:GetPartitions"):
        assert allows(dag, action, f"{GLUE}:table/default/{TABLE_NAME}")
    # Catalog writes: only the marts' tables (Dagster computes them); never the refined table.
    for action in ("glue:CreateTable", "glue:UpdateTable"):
        assert allows(dag, action, f"{GLUE}:table/default/ibov_indicadores"), action
        assert not allows(dag, action, f"{GLUE}:table/default/{TABLE_NAME}"), action
    assert not [a for a in grants(dag) if a.startswith("glue:") and re.match(
        r"glue:(Delete|Batch(Create|Update|Delete)|UpdatePartition|CreatePartition)", a)]
    for key in ("marts/ibov_indicadores/ano=2025.parquet",):
        assert allows(dag, "s3:PutObject", s3(key)) and allows(dag, "s3:GetObject", s3(key))
    assert allows(dag, "s3:GetObject", s3("serving/b3_etl_soma_acao/ano=2025/run=x/a.parquet"))
    assert not allows(dag, "s3:PutObject", s3("serving/b3_etl_soma_acao/ano=2025/run=x/a.parquet"))
    # Every B3 index and the index levels: raw, landing, the catalog's year files, the mart.
    for key in ("raw/indices/dt=2025-03-05/indice=SMLL/x/payload.json",
                "landing/indices/dt=2025-03-05/carteiras.parquet",
                "raw/index_levels/indice=SMLL/ano=2025/dt=2025-03-05/x/payload.json",
                "landing/index_levels/indice=SMLL/ano=2025.parquet",
                "serving/b3_carteiras/ano=2025.parquet", "serving/b3_composicao/ano=2025.parquet",
                "marts/b3_movimentos/ano=2025.parquet"):
        assert allows(dag, "s3:PutObject", s3(key)) and allows(dag, "s3:GetObject", s3(key)), key
    for prefix in ("raw/indices/dt=2025-03-05/", "landing/indices/", "raw/index_levels/",
                   "landing/index_levels/indice=SMLL/"):
        assert allows(dag, "s3:ListBucket", s3(), {"s3:prefix": prefix}), prefix
    for table in ("b3_carteiras", "b3_composicao", "b3_indices_fechamento", "b3_movimentos"):
        for action in ("glue:GetTable", "glue:CreateTable", "glue:UpdateTable"):
            assert allows(dag, action, f"{GLUE}:table/default/{table}"), (action, table)
    assert not allows(dag, "glue:CreateTable", f"{GLUE}:table/default/b3_other")
    workgroup = f"arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/b3-pipeline"
    for action in ("athena:StartQueryExecution", "athena:GetQueryExecution",
                   "athena:GetQueryResults", "athena:StopQueryExecution"):
        assert allows(dag, action, workgroup)
        assert not allows(dag, action, f"arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/primary")


# --------------------------------------------------------------------------- alerts


def _glue_state_change(job: str, state: str) -> dict[str, Any]:
    return {
        "version": "0", "id": "e-1", "detail-type": "Glue Job State Change",
        "source": "aws.glue", "account": ACCOUNT, "time": "2025-03-05T12:00:00Z",
        "region": REGION, "resources": [],
        "detail": {"jobName": job, "severity": "ERROR", "state": state, "jobRunId": "jr_1",
                   "message": "boom"},
    }


def test_failed_glue_runs_are_published_to_the_alerts_topic(default: Stack) -> None:
    rule = _pattern(default, "GlueJobFailedRule")
    for state in ("FAILED", "TIMEOUT", "ERROR", "STOPPED", "EXPIRED"):
        assert rule.matches_event(_glue_state_change("b3-etl-soma-acao", state)), state
    for state in ("SUCCEEDED", "RUNNING", "WAITING"):
        assert not rule.matches_event(_glue_state_change("b3-etl-soma-acao", state)), state
    assert not rule.matches_event(_glue_state_change("someone-elses-job", "FAILED"))
    topic = default.outputs()["AlertsTopicArn"]
    assert [t["Arn"] for t in default.properties("GlueJobFailedRule")["Targets"]] == [topic]


def test_dead_letters_raise_an_alarm_on_the_alerts_topic(default: Stack) -> None:
    alarm = default.properties("DeadLetterAlarm")
    topic = default.outputs()["AlertsTopicArn"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        "AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": "b3-landing-dlq"}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm["AlarmActions"] == [topic]


def test_only_the_rule_and_the_alarm_may_publish_to_the_topic(default: Stack) -> None:
    policy = default.properties("AlertsTopicPolicy")
    topic = default.outputs()["AlertsTopicArn"]
    assert policy["Topics"] == [topic]
    publishers = {(st["Principal"]["Service"], st["Condition"]["ArnEquals"]["aws:SourceArn"])
                  for st in policy["PolicyDocument"]["Statement"]
                  if st["Effect"] == "Allow" and st["Action"] == "sns:Publish"
                  and st["Resource"] == topic}
    assert publishers == {
        ("events.amazonaws.com", f"arn:aws:events:{REGION}:{ACCOUNT}:rule/b3-glue-job-failed"),
        ("cloudwatch.amazonaws.com",
         f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:b3-landing-dlq-not-empty"),
    }
    assert len(policy["PolicyDocument"]["Statement"]) == 2


def test_email_subscription_only_when_an_address_is_given(default: Stack) -> None:
    assert not default.of_type("AWS::SNS::Subscription")
    (sub,) = stack(AlertEmail="ops@example.com").of_type("AWS::SNS::Subscription").values()
    assert sub["Properties"] == {"TopicArn": default.outputs()["AlertsTopicArn"],
                                 "Protocol": "email", "Endpoint": "ops@example.com"}


# --------------------------------------------------------------------------- the lake bucket


def test_a_retained_bucket_is_reused_everywhere_with_existing_lake_bucket() -> None:
    old = "old-lake"
    st = stack(ExistingLakeBucket=old)
    assert not st.of_type("AWS::S3::Bucket")
    resolved = json.dumps([st.resources(), st.outputs()])
    assert "b3-lake-" not in resolved and "LakeBucket-EXAMPLE" not in resolved
    assert st.outputs()["BucketName"] == old
    # The bucket's own policy is not replaced (a bucket policy is one document).
    assert not st.exists("LakeBucketPolicy")
    assert st.properties("LandingTriggerFunction")["Environment"]["Variables"]["B3_BUCKET"] == old
    assert st.properties("GlueJob")["DefaultArguments"]["--bucket"] == old
    rule = _pattern(st, "LandingObjectCreatedRule")
    assert rule.matches_event(object_created_event(old, landing_key(DAY)))
    assert allows(st.policy_statements("GlueJobRole"), "s3:PutObject", s3(REFINED_KEY, old))
    assert allows(st.policy_statements("DagsterPolicy"), "s3:PutObject", s3(landing_key(DAY), old))


def test_the_created_bucket_is_private_and_retained(default: Stack) -> None:
    (bucket,) = default.of_type("AWS::S3::Bucket").values()
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"
    props = bucket["Properties"]
    assert props["BucketName"] == LAKE
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert props["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    assert stack(BucketName="my-lake").outputs()["BucketName"] == "my-lake"


# --------------------------------------------------------------------------- deploy.sh


@pytest.fixture
def deploy_tree(tmp_path: Path) -> Path:
    """A copy of the files deploy.sh packages, with a stand-in glue/ (written by another module)."""
    skip_unless(shutil.which("bash") is not None, "bash is not installed")
    tree = tmp_path / "repo"
    (tree / "infra").mkdir(parents=True)
    (tree / "lambda_handler").mkdir()
    (tree / "glue").mkdir()
    shutil.copy2(DEPLOY, tree / "infra" / "deploy.sh")
    shutil.copy2(TEMPLATE_PATH, tree / "infra" / "template.yaml")
    shutil.copy2(ROOT / "lambda_handler" / "handler.py", tree / "lambda_handler" / "handler.py")
    (tree / "glue" / "__init__.py").write_text("")
    (tree / "glue" / "job.py").write_text("print('job')\n")
    (tree / "glue" / "transform.py").write_text("X = 1\n")
    (tree / "glue" / "refine.sql").write_text("select 1\n")
    (tree / "glue" / "b3_holidays.txt").write_text("# holidays\n")
    (tree / "glue" / "notes.md").write_text("not shipped\n")
    return tree


def _run_deploy(
    tree: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items()
                if k not in {"AWS_REGION", "AWS_DEFAULT_REGION"}}
    full_env.update({"PYTHON": sys.executable, **(env or {})})
    return subprocess.run(["bash", str(tree / "infra" / "deploy.sh"), *args], capture_output=True,
                          text=True, timeout=60, env=full_env)


FAKE_AWS = """#!/bin/sh
# Logs each call; answers the preflight reads from the environment.
echo "$*" >> "$AWS_LOG"
case "$*" in
  *"get-bucket-location --bucket my-artifacts "*) echo "$ARTIFACTS_AT" ;;
  *get-bucket-location*) echo "$LAKE_AT" ;;
  *get-bucket-notification-configuration*) echo "$LAKE_EVENTS" ;;
esac
exit 0
"""


@pytest.fixture
def fake_aws(tmp_path: Path) -> dict[str, str]:
    """Environment putting a logging ``aws`` stand-in first on PATH (log: ``AWS_LOG``)."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "aws").write_text(FAKE_AWS)
    (fake_bin / "aws").chmod(0o755)
    return {"PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
            "AWS_LOG": str(tmp_path / "aws.log"), "ARTIFACTS_AT": "sa-east-1",
            "LAKE_AT": "sa-east-1", "LAKE_EVENTS": "{}"}


def _aws_calls(env: dict[str, str]) -> list[str]:
    log = Path(env["AWS_LOG"])
    return log.read_text().splitlines() if log.exists() else []


def test_package_only_builds_the_lambda_and_glue_zips(deploy_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "dist"
    proc = _run_deploy(deploy_tree, "--package-only", str(out))
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(out / "lambda_handler.zip") as zf:
        assert zf.namelist() == ["handler.py"]
        assert zf.read("handler.py") == (ROOT / "lambda_handler" / "handler.py").read_bytes()
    with zipfile.ZipFile(out / "glue_package.zip") as zf:
        assert sorted(zf.namelist()) == ["glue/__init__.py", "glue/b3_holidays.txt", "glue/job.py",
                                         "glue/refine.sql", "glue/transform.py"]
    assert (out / "job.py").read_text() == "print('job')\n"

    again = tmp_path / "dist2"
    assert _run_deploy(deploy_tree, "--package-only", str(again)).returncode == 0
    for name in ("lambda_handler.zip", "glue_package.zip"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), "zips are reproducible"


def test_package_only_zip_is_a_loadable_lambda(deploy_tree: Path, tmp_path: Path) -> None:
    """The zip alone (boto3 and the standard library) imports, with the handler the stack names."""
    out = tmp_path / "dist"
    assert _run_deploy(deploy_tree, "--package-only", str(out)).returncode == 0
    module, func = stack().properties("LandingTriggerFunction")["Handler"].split(".")
    code = (f"import sys; sys.path[:0] = [sys.argv[1]]; import {module} as m; "
            f"assert callable(m.{func}); print(m.__file__)")
    proc = subprocess.run([sys.executable, "-I", "-c", code, str(out / "lambda_handler.zip")],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "lambda_handler.zip" in proc.stdout


def test_deploy_dry_run_prints_the_commands_and_calls_no_aws(
    deploy_tree: Path, fake_aws: dict[str, str]
) -> None:
    proc = _run_deploy(deploy_tree, "--dry-run", "my-stack", "my-artifacts", "sa-east-1", "--",
                       "NamePrefix=b3dev", env=fake_aws)
    assert proc.returncode == 0, proc.stderr
    assert _aws_calls(fake_aws) == []
    lines = proc.stdout.splitlines()
    assert any("s3api get-bucket-location --bucket my-artifacts" in line for line in lines)
    uploads = [line for line in lines if " s3 cp " in line]
    assert len(uploads) == 3
    assert all("s3://my-artifacts/b3-pipeline/my-stack/" in line for line in uploads)
    (deploy,) = [line for line in lines if "cloudformation deploy" in line]
    assert "--region sa-east-1" in deploy and "CAPABILITY_NAMED_IAM" in deploy
    assert "--stack-name my-stack" in deploy and "NamePrefix=b3dev" in deploy
    keys = dict(re.findall(r"(\w+)=(\S+)", deploy.split("--parameter-overrides", 1)[1]))
    assert keys["ArtifactBucket"] == "my-artifacts"
    assert keys["ArtifactPrefix"] == "b3-pipeline/my-stack"
    assert re.fullmatch(r"b3-pipeline/my-stack/lambda_handler-[0-9a-f]{16}\.zip",
                        keys["LambdaCodeS3Key"])
    assert re.fullmatch(r"b3-pipeline/my-stack/glue_package-[0-9a-f]{16}\.zip",
                        keys["GluePackageS3Key"])
    assert re.fullmatch(r"b3-pipeline/my-stack/job-[0-9a-f]{16}\.py", keys["GlueScriptS3Key"])
    assert set(PARAMS) <= set(keys) <= set(stack().template["Parameters"])


@pytest.mark.parametrize(("region", "location"), [("sa-east-1", "sa-east-1"),
                                                  ("us-east-1", "None"), ("eu-west-1", "EU")])
def test_deploy_runs_when_the_artifact_bucket_is_in_the_stacks_region(
    deploy_tree: Path, fake_aws: dict[str, str], region: str, location: str
) -> None:
    env = {**fake_aws, "ARTIFACTS_AT": location}
    proc = _run_deploy(deploy_tree, "my-stack", "my-artifacts", region, env=env)
    assert proc.returncode == 0, proc.stderr
    calls = _aws_calls(env)
    assert calls[0].startswith(f"--region {region} s3api get-bucket-location --bucket my-artifacts")
    assert sum(" s3 cp " in f" {c}" for c in calls) == 3
    assert any("cloudformation deploy" in c for c in calls)


def test_deploy_refuses_an_artifact_bucket_in_another_region(
    deploy_tree: Path, fake_aws: dict[str, str]
) -> None:
    env = {**fake_aws, "ARTIFACTS_AT": "us-west-2"}
    proc = _run_deploy(deploy_tree, "my-stack", "my-artifacts", "sa-east-1", env=env)
    assert proc.returncode == 1
    assert "'my-artifacts' is in us-west-2" in proc.stderr and "sa-east-1" in proc.stderr
    assert "aws s3 mb" in proc.stderr  # says what to do
    assert not [c for c in _aws_calls(env) if " s3 cp " in f" {c}" or "cloudformation" in c]


def test_deploy_takes_the_region_from_the_environment(
    deploy_tree: Path, fake_aws: dict[str, str]
) -> None:
    env = {**fake_aws, "AWS_REGION": "sa-east-1"}
    proc = _run_deploy(deploy_tree, "my-stack", "my-artifacts", env=env)
    assert proc.returncode == 0, proc.stderr
    assert all(c.startswith("--region sa-east-1 ") for c in _aws_calls(env))


@pytest.mark.parametrize(("lake_at", "events", "says"), [
    ("us-west-2", "{}", "'old-lake' is in us-west-2"),
    ("sa-east-1", "null", "put-bucket-notification-configuration --bucket old-lake"),
])
def test_deploy_checks_an_existing_lake_bucket(
    deploy_tree: Path, fake_aws: dict[str, str], lake_at: str, events: str, says: str
) -> None:
    env = {**fake_aws, "LAKE_AT": lake_at, "LAKE_EVENTS": events}
    proc = _run_deploy(deploy_tree, "my-stack", "my-artifacts", "sa-east-1", "--",
                       "ExistingLakeBucket=old-lake", env=env)
    assert proc.returncode == 1
    assert says in proc.stderr
    assert not [c for c in _aws_calls(env) if "cloudformation" in c]

    ok = {**env, "LAKE_AT": "sa-east-1", "LAKE_EVENTS": "{}"}
    Path(ok["AWS_LOG"]).unlink(missing_ok=True)
    proc = _run_deploy(deploy_tree, "my-stack", "my-artifacts", "sa-east-1", "--",
                       "ExistingLakeBucket=old-lake", env=ok)
    assert proc.returncode == 0, proc.stderr
    (deploy,) = [c for c in _aws_calls(ok) if "cloudformation deploy" in c]
    assert "ExistingLakeBucket=old-lake" in deploy


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
    shipped = {p.name for p in (ROOT / "glue").iterdir() if p.suffix in {".py", ".sql", ".txt"}}
    with zipfile.ZipFile(tmp_path / "glue_package.zip") as zf:
        assert {n.removeprefix("glue/") for n in zf.namelist()} == shipped
    # The Glue job tells a stray landing file on a holiday from a session without
    # exchange_calendars: the holiday list travels in the zip and loads from it.
    code = ("import sys; sys.path[:0] = [sys.argv[1]]; from datetime import date; "
            "import glue.sessions as s; assert s.__file__.startswith(sys.argv[1]); "
            "print(s.is_b3_session(date(2025, 3, 4)), s.is_b3_session(date(2025, 3, 5)))")
    proc = subprocess.run([sys.executable, "-I", "-c", code, str(tmp_path / "glue_package.zip")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"]


# --------------------------------------------------------------------------- accounts users have


IAM_TYPES = ("AWS::IAM::Role", "AWS::IAM::ManagedPolicy", "AWS::IAM::Policy",
             "AWS::IAM::InstanceProfile", "AWS::IAM::User", "AWS::IAM::Group")


def test_every_iam_resource_is_conditional_on_creating_iam() -> None:
    """A Learner Lab account cannot create IAM roles or policies: each IAM resource of the
    template carries the CreateIamResources condition, so ExistingRoleName removes them all."""
    resources = load_template()["Resources"]
    iam = {k: r for k, r in resources.items() if r["Type"].startswith("AWS::IAM::")}
    assert set(iam) == {"LandingTriggerRole", "GlueJobRole", "DagsterPolicy"}
    assert all(r.get("Condition") == "CreateIamResources" for r in iam.values())


def test_an_existing_role_runs_the_job_and_the_lambda() -> None:
    """ExistingRoleName=LabRole: no IAM resource, both the Glue job and the Lambda use it,
    and nothing resolved refers to a role the stack did not create."""
    st = stack(ExistingRoleName="LabRole")
    lab = f"arn:aws:iam::{ACCOUNT}:role/LabRole"
    assert not [r for r in st.resources().values() if r["Type"] in IAM_TYPES]
    assert st.properties("GlueJob")["Role"] == lab
    assert st.properties("LandingTriggerFunction")["Role"] == lab
    assert "ReservedConcurrentExecutions" not in st.properties("LandingTriggerFunction")
    outputs = st.outputs()
    assert "DagsterPolicyArn" not in outputs and outputs["RoleArn"] == lab
    resolved = json.dumps([st.resources(), outputs])
    assert "GlueJobRole" not in resolved and "LandingTriggerRole" not in resolved


def test_a_new_account_gets_its_own_roles_and_no_reservation(default: Stack) -> None:
    assert {"GlueJobRole", "LandingTriggerRole", "DagsterPolicy"} <= set(default.resources())
    assert default.properties("GlueJob")["Role"] == default.get_att("GlueJobRole", "Arn")
    assert "ReservedConcurrentExecutions" not in default.properties("LandingTriggerFunction")


def test_replaced_versions_expire(default: Stack) -> None:
    """Versioning keeps a replaced object only NoncurrentVersionDays, not forever."""
    rules = {r["Id"]: r for r in
             default.properties("LakeBucket")["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": "30"}
