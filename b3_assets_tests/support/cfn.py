"""infra/template.yaml evaluated as CloudFormation would, for tests; no AWS, no cfn-lint.

:class:`Stack` resolves the intrinsic functions the template uses (``Ref``, ``Fn::Sub``,
``Fn::GetAtt``, ``Fn::If`` and the condition functions, ``Fn::Join``, ``Fn::Select``,
``Fn::Split``) with the given parameters over the template's defaults and fixed pseudo
parameters, naming each resource as a deployment would (its name property, or
``physical_ids``). :func:`allows` answers whether a list of IAM statements allows an action
on a resource, so tests state permissions as behaviour rather than restating policies.

    stack = Stack(load_template(), {"ArtifactBucket": "my-artifacts", ...})
    stack.properties("GlueJob")["DefaultArguments"]["--bucket"]   # -> "b3-lake-1234…-us-east-1"
    allows(stack.policy_statements("GlueJobRole"), "s3:PutObject", "arn:aws:s3:::lake/refined/x")
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import yaml

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
ACCOUNT, REGION, PARTITION, STACK_NAME = "123456789012", "us-east-1", "aws", "b3-pipeline"

_NO_VALUE = object()  # AWS::NoValue: the key or list item disappears


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (``!Ref x`` -> ``{"Ref": "x"}``)."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(cast(yaml.MappingNode, node), deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _tag)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain data, short tags turned into their long form."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)


#: The property holding a resource's physical name, by resource type.
_NAME_PROPERTY = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::Events::Rule": "Name",
    "AWS::Glue::Job": "Name",
    "AWS::Athena::WorkGroup": "Name",
    "AWS::SNS::Topic": "TopicName",
    "AWS::CloudWatch::Alarm": "AlarmName",
}
#: ARNs by resource type, from {p}artition, {r}egion, {a}ccount and the physical {n}ame.
_ARN = {
    "AWS::S3::Bucket": "arn:{p}:s3:::{n}",
    "AWS::SQS::Queue": "arn:{p}:sqs:{r}:{a}:{n}",
    "AWS::Lambda::Function": "arn:{p}:lambda:{r}:{a}:function:{n}",
    "AWS::Logs::LogGroup": "arn:{p}:logs:{r}:{a}:log-group:{n}:*",
    "AWS::IAM::Role": "arn:{p}:iam::{a}:role/{n}",
    "AWS::IAM::ManagedPolicy": "arn:{p}:iam::{a}:policy/{n}",
    "AWS::Events::Rule": "arn:{p}:events:{r}:{a}:rule/{n}",
    "AWS::Glue::Job": "arn:{p}:glue:{r}:{a}:job/{n}",
    "AWS::Athena::WorkGroup": "arn:{p}:athena:{r}:{a}:workgroup/{n}",
    "AWS::SNS::Topic": "arn:{p}:sns:{r}:{a}:{n}",
    "AWS::CloudWatch::Alarm": "arn:{p}:cloudwatch:{r}:{a}:alarm:{n}",
}
#: Attributes that are the physical name.
_NAME_ATTRIBUTES = {("AWS::SQS::Queue", "QueueName"), ("AWS::SNS::Topic", "TopicName")}
#: Types whose Ref is their ARN rather than their name (and SQS: its URL).
_REF_IS_ARN = {"AWS::SNS::Topic", "AWS::IAM::ManagedPolicy"}


class Stack:
    """One deployment of a template: parameters, conditions and resource names resolved."""

    def __init__(
        self,
        template: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
        *,
        account: str = ACCOUNT,
        region: str = REGION,
        partition: str = PARTITION,
        stack_name: str = STACK_NAME,
        physical_ids: Mapping[str, str] | None = None,
    ) -> None:
        self.template = template if template is not None else load_template()
        declared = self.template.get("Parameters", {})
        unknown = set(parameters or {}) - set(declared)
        if unknown:
            raise KeyError(f"not parameters of the template: {sorted(unknown)}")
        self.parameters = {k: str(v["Default"]) for k, v in declared.items() if "Default" in v}
        self.parameters.update({k: str(v) for k, v in (parameters or {}).items()})
        self.account, self.region, self.partition = account, region, partition
        self.pseudo = {
            "AWS::AccountId": account,
            "AWS::Region": region,
            "AWS::Partition": partition,
            "AWS::StackName": stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": _NO_VALUE,
        }
        #: Physical names to use instead of the name properties (e.g. a test's unique names).
        self.physical_ids = dict(physical_ids or {})

    # ------------------------------------------------------------------ conditions and names

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def exists(self, logical_id: str) -> bool:
        """Whether the resource is created with these parameters (its Condition holds)."""
        cond = self.template["Resources"][logical_id].get("Condition")
        return cond is None or self.condition(cond)

    def _resource(self, logical_id: str) -> dict[str, Any]:
        resources = self.template["Resources"]
        if logical_id not in resources:
            raise KeyError(f"no resource or parameter {logical_id!r}")
        if not self.exists(logical_id):
            raise KeyError(f"{logical_id} is not created with these parameters")
        return resources[logical_id]

    def physical_name(self, logical_id: str) -> str:
        if logical_id in self.physical_ids:
            return self.physical_ids[logical_id]
        res = self._resource(logical_id)
        field = _NAME_PROPERTY.get(res["Type"])
        if field and field in res.get("Properties", {}):
            return str(self.resolve(res["Properties"][field]))
        return f"{self.pseudo['AWS::StackName']}-{logical_id}-EXAMPLE"

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.template.get("Parameters", {}):
            raise KeyError(f"parameter {name} has no default: pass it")
        kind = self._resource(name)["Type"]
        if kind in _REF_IS_ARN:
            return self.get_att(name, "Arn")
        if kind == "AWS::SQS::Queue":
            return (
                f"https://sqs.{self.region}.amazonaws.com/{self.account}/{self.physical_name(name)}"
            )
        return self.physical_name(name)

    def get_att(self, logical_id: str, attribute: str) -> str:
        kind = self._resource(logical_id)["Type"]
        name = self.physical_name(logical_id)
        if attribute == "Arn" and kind in _ARN:
            return _ARN[kind].format(p=self.partition, r=self.region, a=self.account, n=name)
        if (kind, attribute) in _NAME_ATTRIBUTES:
            return name
        raise KeyError(f"the resolver does not know {logical_id}.{attribute} ({kind})")

    # ------------------------------------------------------------------ intrinsic functions

    def _sub(self, text: str, local: Mapping[str, Any]) -> str:
        def one(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in local:
                return str(self.resolve(local[expr]))
            if "." in expr and expr.split(".", 1)[0] in self.template["Resources"]:
                return self.get_att(*expr.split(".", 1))
            return str(self.ref(expr))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def _function(self, fn: str, arg: Any) -> Any:
        if fn == "Ref":
            return self.ref(arg)
        if fn == "Fn::Sub":
            text, local = (arg, {}) if isinstance(arg, str) else arg
            return self._sub(text, local)
        if fn == "Fn::GetAtt":
            return self.get_att(*arg)
        if fn == "Fn::If":
            cond, yes, no = arg
            return self.resolve(yes if self.condition(cond) else no)
        if fn == "Fn::Equals":
            left, right = (self.resolve(x) for x in arg)
            return str(left) == str(right)
        if fn == "Fn::Not":
            return not self.resolve(arg[0])
        if fn == "Fn::And":
            return all(self.resolve(x) for x in arg)
        if fn == "Fn::Or":
            return any(self.resolve(x) for x in arg)
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::Join":
            sep, items = arg
            return sep.join(str(x) for x in self.resolve(items))
        if fn == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if fn == "Fn::Split":
            sep, text = arg
            return str(self.resolve(text)).split(sep)
        raise KeyError(f"the resolver does not know {fn}")

    def resolve(self, node: Any) -> Any:
        """``node`` with every intrinsic function evaluated (AWS::NoValue removed)."""
        if isinstance(node, dict):
            if len(node) == 1:
                ((key, arg),) = node.items()
                if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                    return self._function(key, arg)
            out = {k: self.resolve(v) for k, v in node.items()}
            return {k: v for k, v in out.items() if v is not _NO_VALUE}
        if isinstance(node, list):
            return [v for v in (self.resolve(x) for x in node) if v is not _NO_VALUE]
        return node

    # ------------------------------------------------------------------ the deployment

    def resources(self) -> dict[str, dict[str, Any]]:
        """Every resource created with these parameters, fully resolved."""
        out = {}
        for logical_id, res in self.template["Resources"].items():
            if self.exists(logical_id):
                body = {k: v for k, v in res.items() if k != "Condition"}
                out[logical_id] = self.resolve(body)
        return out

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources().items() if v["Type"] == kind}

    def properties(self, logical_id: str) -> dict[str, Any]:
        return self.resolve(self._resource(logical_id).get("Properties", {}))

    def outputs(self) -> dict[str, Any]:
        return {
            name: self.resolve(out["Value"])
            for name, out in self.template.get("Outputs", {}).items()
            if "Condition" not in out or self.condition(out["Condition"])
        }

    def policy_statements(self, logical_id: str) -> list[dict[str, Any]]:
        """The statements an IAM role (inline policies) or managed policy grants, resolved."""
        props = self.properties(logical_id)
        docs = [p["PolicyDocument"] for p in props.get("Policies", [])]
        if "PolicyDocument" in props:
            docs.append(props["PolicyDocument"])
        return [st for doc in docs for st in _as_list(doc["Statement"])]


# --------------------------------------------------------------------------- IAM


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, *, case: bool = True) -> bool:
    """IAM wildcards: ``*`` any run of characters (``/`` and ``:`` included), ``?`` one."""
    regex = fnmatch.translate(pattern.replace("[", "[[]"))
    return re.match(regex, value, 0 if case else re.IGNORECASE) is not None


_OPERATORS = {
    "StringEquals": lambda want, got: got == want,
    "StringLike": lambda want, got: _glob(want, got),
    "ArnEquals": lambda want, got: got == want,
    "ArnLike": lambda want, got: _glob(want, got),
    "Bool": lambda want, got: str(got).lower() == str(want).lower(),
}


def _conditions_hold(conditions: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    for operator, tests in conditions.items():
        if_exists = operator.endswith("IfExists")
        test = _OPERATORS[operator.removesuffix("IfExists")]
        for key, wanted in tests.items():
            if key not in context:
                if if_exists:
                    continue
                return False
            if not any(test(w, context[key]) for w in _as_list(wanted)):
                return False
    return True


def allows(
    statements: list[dict[str, Any]],
    action: str,
    resource: str,
    context: Mapping[str, str] | None = None,
) -> bool:
    """Whether these identity-policy statements allow ``action`` on ``resource``.

    ``context`` holds the request's condition keys (e.g. ``{"s3:prefix": "refined/"}``); a key
    absent from it fails a condition on it, unless the operator ends with ``IfExists``. An
    explicit Deny wins. Only the condition operators the template uses are known.
    """
    context = context or {}

    def matches(st: dict[str, Any]) -> bool:
        return (
            any(_glob(a, action, case=False) for a in _as_list(st["Action"]))
            and any(_glob(r, resource) for r in _as_list(st["Resource"]))
            and _conditions_hold(st.get("Condition", {}), context)
        )

    hits = [st for st in statements if matches(st)]
    return bool(hits) and all(st["Effect"] == "Allow" for st in hits)


def grants(statements: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Action -> the resources some Allow statement names for it."""
    out: dict[str, set[str]] = {}
    for st in statements:
        if st["Effect"] == "Allow":
            for action in _as_list(st["Action"]):
                out.setdefault(action, set()).update(_as_list(st["Resource"]))
    return out
