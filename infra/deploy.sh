#!/usr/bin/env bash
# Build and deploy the b3-pipeline AWS stack (infra/template.yaml).
#
#   infra/deploy.sh [--dry-run] STACK_NAME ARTIFACT_BUCKET [REGION] [-- Key=Value ...]
#   infra/deploy.sh --package-only DIR
#
# Deploy mode checks that ARTIFACT_BUCKET (an existing bucket you own) is in the stack's region
# (Lambda reads its code only from there) and that an ExistingLakeBucket=... override names a
# bucket in that region with EventBridge notifications on, builds the artifacts, uploads them
# under b3-pipeline/STACK_NAME/ (the template's ArtifactPrefix) with content-hashed names, so
# CloudFormation sees every code change, then runs `aws cloudformation deploy`. Anything after
# `--` is passed on as extra parameter overrides (e.g. NamePrefix=b3dev AlertEmail=me@x.com
# ExistingLakeBucket=b3-lake-123456789012-sa-east-1).
# --dry-run prints the aws commands instead of running them (and checks nothing).
#
# --package-only DIR builds the artifacts into DIR and touches no cloud at all:
#   DIR/lambda_handler.zip   lambda_handler/handler.py at the zip root (handler "handler.handler")
#   DIR/glue_package.zip     glue/*.py, *.sql and b3_holidays.txt under glue/ (the job's --extra-py-files)
#   DIR/job.py               glue/job.py, the Glue job script
#
# Needs python3 (PYTHON=... to choose another) and, for deploy mode, AWS CLI v2 with credentials.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"

usage() {
  cat >&2 <<'EOF'
usage: infra/deploy.sh [--dry-run] STACK_NAME ARTIFACT_BUCKET [REGION] [-- Key=Value ...]
       infra/deploy.sh --package-only DIR

  STACK_NAME       CloudFormation stack to create or update
  ARTIFACT_BUCKET  existing S3 bucket for the Lambda zip, the Glue script and the glue zip
  REGION           AWS region (default: AWS_REGION / AWS_DEFAULT_REGION / the CLI profile's)
  Key=Value        extra template parameters, e.g. NamePrefix=b3dev AlertEmail=me@example.com
                   ExistingLakeBucket=NAME (redeploy over the bucket a deleted stack kept)
  --dry-run        print the aws commands instead of running them
  --package-only   only build lambda_handler.zip, glue_package.zip and job.py into DIR
EOF
  exit 2
}

die() { echo "deploy.sh: $*" >&2; exit 1; }

# Zips with fixed timestamps and order: identical sources give identical bytes (and S3 keys).
make_zip() {
  local out="$1"; shift
  "$PYTHON" - "$out" "$@" <<'PY'
import sys
import zipfile

out = sys.argv[1]
pairs = sorted(tuple(a.split("=", 1)) for a in sys.argv[2:])  # "arcname=source path"
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
    for arcname, src in pairs:
        info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(src, "rb") as fh:
            zf.writestr(info, fh.read())
PY
}

short_hash() {
  "$PYTHON" -c 'import hashlib,sys;print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest()[:16])' "$1"
}

build_packages() {
  local out="$1"
  local handler="$ROOT/lambda_handler/handler.py" job="$ROOT/glue/job.py"
  [[ -f "$handler" ]] || die "missing $handler"
  [[ -f "$job" ]] || die "missing $job (the Glue job script)"
  mkdir -p "$out"

  make_zip "$out/lambda_handler.zip" "handler.py=$handler"

  local entries=() f
  shopt -s nullglob
  for f in "$ROOT"/glue/*.py "$ROOT"/glue/*.sql "$ROOT"/glue/*.txt; do
    entries+=("glue/$(basename "$f")=$f")
  done
  shopt -u nullglob
  make_zip "$out/glue_package.zip" ${entries[@]+"${entries[@]}"}

  cp "$job" "$out/job.py"
  echo "built $out/lambda_handler.zip $out/glue_package.zip $out/job.py" >&2
}

run() {
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '%q ' "$@"; echo
  else
    "$@"
  fi
}

# The region of bucket $1 as S3 reports it (us-east-1 answers None, old eu-west-1 buckets EU).
bucket_region() {
  local location
  location="$("${AWS[@]}" s3api get-bucket-location --bucket "$1" \
    --query LocationConstraint --output text)" \
    || die "cannot read the location of bucket '$1': does it exist, and may these credentials read it?"
  case "$location" in
    None|null|"") echo us-east-1 ;;
    EU) echo eu-west-1 ;;
    *) echo "$location" ;;
  esac
}

check_artifact_bucket() {
  local where
  where="$(bucket_region "$ARTIFACT_BUCKET")"
  [[ "$where" == "$REGION" ]] || die "artifact bucket '$ARTIFACT_BUCKET' is in $where but the \
stack deploys to $REGION, and Lambda reads its code only from a bucket in its own region. Use a \
bucket in $REGION (create one: aws s3 mb s3://NAME --region $REGION) or deploy to $where \
(pass $where as REGION)."
}

check_existing_lake() {
  local bucket="$1" where events
  where="$(bucket_region "$bucket")"
  [[ "$where" == "$REGION" ]] || die "ExistingLakeBucket '$bucket' is in $where but the stack \
deploys to $REGION: deploy to $where (pass it as REGION), or leave ExistingLakeBucket out to \
create a new lake bucket in $REGION."
  events="$("${AWS[@]}" s3api get-bucket-notification-configuration --bucket "$bucket" \
    --query EventBridgeConfiguration --output json)" \
    || die "cannot read the notification configuration of bucket '$bucket'"
  if [[ -z "$events" || "$events" == "null" ]]; then
    die "ExistingLakeBucket '$bucket' does not send events to EventBridge, so landing files would \
start nothing. Turn them on (this replaces the bucket's other notification settings): aws s3api \
put-bucket-notification-configuration --bucket $bucket --notification-configuration \
'{\"EventBridgeConfiguration\": {}}'"
  fi
}

DRY_RUN=0
case "${1:-}" in
  -h|--help|"") usage ;;
  --package-only)
    [[ $# -eq 2 ]] || usage
    build_packages "$2"
    exit 0
    ;;
  --dry-run) DRY_RUN=1; shift ;;
esac

[[ $# -ge 2 ]] || usage
STACK_NAME="$1"; ARTIFACT_BUCKET="$2"; shift 2
REGION=""
if [[ $# -gt 0 && "$1" != "--" ]]; then REGION="$1"; shift; fi
if [[ $# -gt 0 ]]; then
  [[ "$1" == "--" ]] || usage
  shift
fi
EXTRA_OVERRIDES=("$@")
EXISTING_LAKE=""
for kv in ${EXTRA_OVERRIDES[@]+"${EXTRA_OVERRIDES[@]}"}; do
  [[ "$kv" == *=* ]] || die "parameter override '$kv' is not Key=Value"
  if [[ "$kv" == ExistingLakeBucket=* ]]; then EXISTING_LAKE="${kv#*=}"; fi
done
[[ "$STACK_NAME" =~ ^[A-Za-z][A-Za-z0-9-]{0,127}$ ]] || die "invalid stack name '$STACK_NAME'"

if [[ "$DRY_RUN" != 1 ]] && ! command -v aws >/dev/null; then
  die "the AWS CLI (aws) is not installed"
fi
REGION="${REGION:-${AWS_REGION:-${AWS_DEFAULT_REGION:-}}}"
if [[ -z "$REGION" && "$DRY_RUN" != 1 ]]; then
  REGION="$(aws configure get region || true)"
  [[ -n "$REGION" ]] || die "no AWS region: pass REGION (e.g. sa-east-1) or set AWS_REGION"
fi
AWS=(aws)
if [[ -n "$REGION" ]]; then AWS+=(--region "$REGION"); fi

if [[ "$DRY_RUN" == 1 ]]; then
  run "${AWS[@]}" s3api get-bucket-location --bucket "$ARTIFACT_BUCKET"
else
  check_artifact_bucket
  if [[ -n "$EXISTING_LAKE" ]]; then check_existing_lake "$EXISTING_LAKE"; fi
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
build_packages "$WORK"

PREFIX="b3-pipeline/$STACK_NAME"
LAMBDA_KEY="$PREFIX/lambda_handler-$(short_hash "$WORK/lambda_handler.zip").zip"
PACKAGE_KEY="$PREFIX/glue_package-$(short_hash "$WORK/glue_package.zip").zip"
SCRIPT_KEY="$PREFIX/job-$(short_hash "$WORK/job.py").py"

run "${AWS[@]}" s3 cp --only-show-errors "$WORK/lambda_handler.zip" "s3://$ARTIFACT_BUCKET/$LAMBDA_KEY"
run "${AWS[@]}" s3 cp --only-show-errors "$WORK/glue_package.zip" "s3://$ARTIFACT_BUCKET/$PACKAGE_KEY"
run "${AWS[@]}" s3 cp --only-show-errors "$WORK/job.py" "s3://$ARTIFACT_BUCKET/$SCRIPT_KEY"

run "${AWS[@]}" cloudformation deploy \
  --template-file "$ROOT/infra/template.yaml" \
  --stack-name "$STACK_NAME" \
  --capabilities CAPABILITY_NAMED_IAM \
  --no-fail-on-empty-changeset \
  --parameter-overrides \
    "ArtifactBucket=$ARTIFACT_BUCKET" \
    "ArtifactPrefix=$PREFIX" \
    "LambdaCodeS3Key=$LAMBDA_KEY" \
    "GlueScriptS3Key=$SCRIPT_KEY" \
    "GluePackageS3Key=$PACKAGE_KEY" \
    ${EXTRA_OVERRIDES[@]+"${EXTRA_OVERRIDES[@]}"}

run "${AWS[@]}" cloudformation describe-stacks --stack-name "$STACK_NAME" \
  --query "Stacks[0].Outputs" --output table
