"""Every AWS call a principal makes in a test, as the IAM requests AWS would authorize.

moto runs no IAM, so a test on moto passes whatever the stack's policies say. The recorder
closes that gap offline: it hooks botocore's events on every client built while it is
installed (and on clients handed to :meth:`IamRecorder.watch`), turns each API call into the
IAM actions, resource ARNs and condition keys AWS evaluates for it (:func:`needs_of`), and
attributes it to the principal named by the innermost :meth:`IamRecorder.as_principal`
block. :meth:`IamRecorder.denied` then checks them against that principal's statements as
resolved from infra/template.yaml (``support.cfn.allows``).

    with IamRecorder() as rec:
        with rec.as_principal("DagsterPolicy"):
            materialize(platform, "2025-03-05")
        assert not rec.denied("DagsterPolicy", stack.policy_statements("DagsterPolicy"))

Calls outside any block, or through a client passed to :meth:`IamRecorder.ignore` (a test's
own set-up), are recorded unattributed and never checked. A call the mapping does not know
is kept with ``needs=None`` and reported by :meth:`IamRecorder.unmapped`, so new code paths
fail loudly instead of passing unchecked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import botocore.session

from b3_assets_tests.support.cfn import ACCOUNT, PARTITION, allows


@dataclass(frozen=True)
class Need:
    """One authorization a call needs: ``action`` on ``resource`` with condition ``context``."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)
    why: str = ""  # set when the need is not obvious from the operation's name

    def __str__(self) -> str:
        extra = f" {dict(self.context)}" if self.context else ""
        return f"{self.action} on {self.resource}{extra}" + (f" ({self.why})" if self.why else "")


@dataclass
class Call:
    """One API call as made: who, what, the parameters that name resources, and its needs."""

    principal: str | None
    service: str  # the IAM prefix: s3, glue, athena
    operation: str
    params: dict[str, Any]
    region: str
    status: int | None = None  # HTTP status; None when no response came back
    needs: list[Need] | None = None  # None: the mapping does not know this operation

    def __str__(self) -> str:
        names = {k: v for k, v in self.params.items() if k in _SHOWN_PARAMS}
        status = f" -> {self.status}" if self.status is not None else ""
        return f"{self.principal}: {self.service}.{self.operation}({names}){status}"


_SHOWN_PARAMS = frozenset(
    {"Bucket", "Key", "Prefix", "JobName", "Name", "DatabaseName", "TableName", "WorkGroup",
     "QueryExecutionId", "Tagging"}
)  # fmt: skip


# --------------------------------------------------------------------------- the mapping


class _Arns:
    """ARN builders for one region and account."""

    def __init__(self, region: str, account: str, partition: str = PARTITION) -> None:
        self.region, self.account, self.p = region, account, partition

    def bucket(self, bucket: str) -> str:
        return f"arn:{self.p}:s3:::{bucket}"

    def object(self, bucket: str, key: str) -> str:
        return f"arn:{self.p}:s3:::{bucket}/{key}"

    def glue(self, kind: str, name: str = "") -> str:
        suffix = f"{kind}/{name}" if name else kind
        return f"arn:{self.p}:glue:{self.region}:{self.account}:{suffix}"

    def workgroup(self, name: str) -> str:
        return f"arn:{self.p}:athena:{self.region}:{self.account}:workgroup/{name}"


#: S3 operations on one object -> the IAM action they need.
_S3_OBJECT_ACTIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListParts": "s3:ListMultipartUploadParts",
    "DeleteObject": "s3:DeleteObject",
    "GetObjectTagging": "s3:GetObjectTagging",
    "PutObjectTagging": "s3:PutObjectTagging",
    "DeleteObjectTagging": "s3:DeleteObjectTagging",
}
#: S3 operations on the bucket -> the IAM action they need.
_S3_BUCKET_ACTIONS = {
    "HeadBucket": "s3:ListBucket",
    "GetBucketLocation": "s3:GetBucketLocation",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "CreateBucket": "s3:CreateBucket",
    "DeleteBucket": "s3:DeleteBucket",
}
_GLUE_JOB_OPS = frozenset(
    {"StartJobRun", "GetJobRun", "GetJobRuns", "BatchStopJobRun", "GetJob", "UpdateJob",
     "DeleteJob", "GetJobBookmark", "ResetJobBookmark"}
)  # fmt: skip
_GLUE_DATABASE_OPS = frozenset(
    {"GetDatabase", "CreateDatabase", "UpdateDatabase", "DeleteDatabase"}
)
_GLUE_TABLE_OPS = frozenset(
    {"GetTable", "CreateTable", "UpdateTable", "DeleteTable", "GetPartition", "GetPartitions",
     "BatchGetPartition", "CreatePartition", "BatchCreatePartition", "UpdatePartition",
     "BatchUpdatePartition", "DeletePartition", "BatchDeletePartition"}
)  # fmt: skip
_ATHENA_BY_QUERY = frozenset(
    {"GetQueryExecution", "GetQueryResults", "StopQueryExecution", "GetQueryRuntimeStatistics"}
)


def _s3_needs(op: str, params: Mapping[str, Any], status: int | None, arn: _Arns) -> list[Need]:
    bucket = str(params.get("Bucket", ""))
    if op in ("ListObjectsV2", "ListObjects"):
        # s3:prefix exists in the request context only when the request carries a prefix.
        context = {"s3:prefix": str(params["Prefix"])} if "Prefix" in params else {}
        if "Delimiter" in params:
            context["s3:delimiter"] = str(params["Delimiter"])
        return [Need("s3:ListBucket", arn.bucket(bucket), context)]
    if op == "ListBuckets":
        return [Need("s3:ListAllMyBuckets", "*")]
    if op in _S3_BUCKET_ACTIONS:
        return [Need(_S3_BUCKET_ACTIONS[op], arn.bucket(bucket))]
    if op == "DeleteObjects":
        keys = [str(o["Key"]) for o in params.get("Delete", {}).get("Objects", [])]
        return [Need("s3:DeleteObject", arn.object(bucket, k)) for k in keys]
    if op == "CopyObject":
        source = params["CopySource"]
        if isinstance(source, str):
            src_bucket, _, src_key = source.lstrip("/").partition("/")
        else:
            src_bucket, src_key = source["Bucket"], source["Key"]
        return [
            Need("s3:PutObject", arn.object(bucket, str(params["Key"]))),
            Need("s3:GetObject", arn.object(src_bucket, src_key)),
        ]
    if op not in _S3_OBJECT_ACTIONS:
        return []
    obj = arn.object(bucket, str(params.get("Key", "")))
    needs = [Need(_S3_OBJECT_ACTIONS[op], obj)]
    if op in ("PutObject", "CreateMultipartUpload") and params.get("Tagging"):
        keys = ",".join(k for k, _ in parse_qsl(str(params["Tagging"]), keep_blank_values=True))
        needs.append(Need("s3:PutObjectTagging", obj, why=f"Tagging={keys}"))
    if op in ("GetObject", "HeadObject") and status == 404:
        # S3 answers a missing key with 404 only to callers allowed to list the bucket;
        # anyone else gets 403 AccessDenied, which the code does not treat as "missing".
        needs.append(Need("s3:ListBucket", arn.bucket(bucket), why="404, not 403, when missing"))
    return needs


def _glue_needs(op: str, params: Mapping[str, Any], arn: _Arns) -> list[Need]:
    action = f"glue:{op}"
    if op in _GLUE_JOB_OPS:
        return [Need(action, arn.glue("job", str(params["JobName"])))]
    if op == "CreateJob":
        return [Need(action, arn.glue("job", str(params["Name"])))]
    if op in _GLUE_DATABASE_OPS:
        name = params.get("Name") or params.get("DatabaseInput", {}).get("Name", "")
        return [Need(action, arn.glue("catalog")), Need(action, arn.glue("database", str(name)))]
    if op == "GetDatabases":
        return [Need(action, arn.glue("catalog")), Need(action, arn.glue("database", "*"))]
    if op in _GLUE_TABLE_OPS:
        database = str(params["DatabaseName"])
        table = params.get("TableName") or params.get("Name") or params["TableInput"]["Name"]
        return [
            Need(action, arn.glue("catalog")),
            Need(action, arn.glue("database", database)),
            Need(action, arn.glue("table", f"{database}/{table}")),
        ]
    return []


class IamRecorder:
    """Records AWS calls by principal while installed (a context manager).

    Clients copy their session's event handlers when they are built, and the code under test
    builds clients from boto3's default session (``boto3.client``) and from sessions of its
    own alike, so the recorder wraps ``botocore.session.Session.create_client`` to hook every
    client built while it is installed; :meth:`watch` hooks one built before.
    """

    def __init__(self, account: str = ACCOUNT) -> None:
        self.account = account
        self.calls: list[Call] = []
        self._principals: list[str | None] = []
        self._ignored: dict[int, Any] = {}  # id -> client (kept alive so ids stay unique)
        self._query_workgroups: dict[str, str] = {}
        self._lock = threading.Lock()
        self._original: Callable[..., Any] | None = None
        # Where a call's principal and parameters wait in its context until the response; one
        # key per recorder, as a client may outlive a test and be hooked by the next one too.
        self._key = f"b3-iam-recorder-{id(self)}"

    # ------------------------------------------------------------------ installing

    def __enter__(self) -> IamRecorder:
        original = botocore.session.Session.create_client
        recorder = self

        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            return recorder.watch(original(session, *args, **kwargs))

        self._original = original
        botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
        return self

    def __exit__(self, *_: object) -> None:
        if self._original is not None:
            botocore.session.Session.create_client = self._original  # type: ignore[method-assign]
            self._original = None

    def watch(self, client: Any) -> Any:
        """Record ``client``'s calls from now on (idempotent); returns it."""
        events = client.meta.events
        tag = self._key
        events.register(
            "before-parameter-build.*.*",
            lambda params, model, context, **_: self._before(client, model, params, context),
            unique_id=f"{tag}-params",
        )
        events.register(
            "after-call.*.*",
            lambda http_response, parsed, context, **_: self._after(
                context, http_response.status_code, parsed
            ),
            unique_id=f"{tag}-after",
        )
        events.register(
            "after-call-error.*.*",
            lambda context, **_: self._after(context, None, {}),
            unique_id=f"{tag}-error",
        )
        return client

    def ignore(self, client: Any) -> Any:
        """A test's own client (set-up, assertions): its calls are never attributed."""
        self._ignored[id(client)] = client
        return self.watch(client)

    @contextmanager
    def as_principal(self, name: str | None) -> Iterator[None]:
        """Attribute the calls made in the block to ``name`` (None: to nobody)."""
        self._principals.append(name)
        try:
            yield
        finally:
            self._principals.pop()

    # ------------------------------------------------------------------ recording

    def _before(
        self, client: Any, model: Any, params: Mapping[str, Any], context: dict[str, Any]
    ) -> None:
        """Who makes the call is decided when it is made (a later block may be another's)."""
        if self._original is None:
            return  # uninstalled: a client kept from an earlier test
        principal = None if id(client) in self._ignored else self._current()
        shown = {k: v for k, v in params.items() if k != "Body"}
        service = model.service_model.signing_name or model.service_model.endpoint_prefix
        context[self._key] = (principal, service, model.name, shown)

    def _current(self) -> str | None:
        return self._principals[-1] if self._principals else None

    def _after(self, context: dict[str, Any], status: int | None, parsed: Any) -> None:
        if self._key not in context:
            return  # not recording, or the call failed before its parameters were built
        principal, service, operation, params = context.pop(self._key)
        region = str(context.get("client_region") or "us-east-1")
        with self._lock:
            self._learn(service, operation, params, parsed)
            call = Call(principal, service, operation, params, region, status)
            call.needs = self._needs(call)
            self.calls.append(call)

    def _learn(self, service: str, op: str, params: Mapping[str, Any], parsed: Any) -> None:
        """Which workgroup each Athena query runs in (later calls name only the query id)."""
        if service != "athena" or not isinstance(parsed, Mapping):
            return
        if op == "StartQueryExecution" and "QueryExecutionId" in parsed:
            wg = str(params.get("WorkGroup") or "primary")
            self._query_workgroups[str(parsed["QueryExecutionId"])] = wg
        execution = parsed.get("QueryExecution") or {}
        if execution.get("QueryExecutionId") and execution.get("WorkGroup"):
            self._query_workgroups[execution["QueryExecutionId"]] = execution["WorkGroup"]

    def _needs(self, call: Call) -> list[Need] | None:
        arn = _Arns(call.region, self.account)
        op, params = call.operation, call.params
        if call.service == "s3":
            needs = _s3_needs(op, params, call.status, arn)
        elif call.service == "glue":
            needs = _glue_needs(op, params, arn)
        elif call.service == "athena":
            needs = self._athena_needs(op, params, arn)
        else:
            needs = []
        return needs or None

    def _athena_needs(self, op: str, params: Mapping[str, Any], arn: _Arns) -> list[Need]:
        action = f"athena:{op}"
        if op in ("StartQueryExecution", "ListQueryExecutions", "GetWorkGroup"):
            return [Need(action, arn.workgroup(str(params.get("WorkGroup") or "primary")))]
        if op in ("CreateWorkGroup", "DeleteWorkGroup"):
            return [Need(action, arn.workgroup(str(params.get("Name") or params["WorkGroup"])))]
        if op in _ATHENA_BY_QUERY:
            wg = self._query_workgroups.get(str(params["QueryExecutionId"]))
            return [Need(action, arn.workgroup(wg))] if wg else []
        return []

    # ------------------------------------------------------------------ checking

    def of(self, principal: str) -> list[Call]:
        """The calls attributed to ``principal``, in order."""
        return [c for c in self.calls if c.principal == principal]

    def unmapped(self, principal: str | None = None) -> list[Call]:
        """Attributed calls whose needs the mapping does not know (to extend the mapping)."""
        return [
            c
            for c in self.calls
            if c.needs is None and c.principal is not None
            and (principal is None or c.principal == principal)
        ]  # fmt: skip

    def denied(self, principal: str, statements: list[dict[str, Any]]) -> list[str]:
        """Each need of ``principal``'s calls that ``statements`` do not allow, as text."""
        return denied_needs(self.of(principal), statements)


def denied_needs(calls: Sequence[Call], statements: list[dict[str, Any]]) -> list[str]:
    """``call: need`` for every need of ``calls`` the statements do not allow (or know)."""
    out = []
    for call in calls:
        if call.needs is None:
            out.append(f"{call}: no IAM mapping for {call.service}:{call.operation}")
            continue
        for need in call.needs:
            if not allows(statements, need.action, need.resource, need.context):
                out.append(f"{call}: {need}")
    return out
