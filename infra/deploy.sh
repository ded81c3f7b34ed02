#!/usr/bin/env bash
# Build and deploy the b3-pipeline AWS stack (infra/template.yaml).
#
#   infra/deploy.sh [--dry-run] STACK_NAME ARTIFACT_BUCKET [REGION] [-- Key=Value ...]
#   infra/deploy.sh --package-only DIR
#
# Deploy mode builds the artifacts, uploads them to ARTIFACT_BUCKET (an existing bucket you own)
# under b3-pipeline/STACK_NAME/ with content-hashed names, so CloudFormation sees every code
# change, then runs `aws cloudformation deploy`. Anything after `--` is passed on as extra
# parameter overrides (e.g. NamePrefix=b3dev MaxConcurrentRuns=20 BucketName=my-lake).
# --dry-run prints the aws commands instead of running them.
#
# --package-only DIR builds the artifacts into DIR and touches no cloud at all:
#   DIR/lambda_handler.zip   lambda_handler/handler.py at the zip root (handler "handler.handler")
#   DIR/glue_package.zip     glue/*.py and glue/*.sql under glue/ (the job's --extra-py-files)
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
  Key=Value        extra template parameters, e.g. NamePrefix=b3dev BucketName=my-lake
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
  for f in "$ROOT"/glue/*.py "$ROOT"/glue/*.sql; do
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
for kv in ${EXTRA_OVERRIDES[@]+"${EXTRA_OVERRIDES[@]}"}; do
  [[ "$kv" == *=* ]] || die "parameter override '$kv' is not Key=Value"
done
[[ "$STACK_NAME" =~ ^[A-Za-z][A-Za-z0-9-]{0,127}$ ]] || die "invalid stack name '$STACK_NAME'"

AWS=(aws)
if [[ -n "$REGION" ]]; then AWS+=(--region "$REGION"); fi
if [[ "$DRY_RUN" != 1 ]] && ! command -v aws >/dev/null; then
  die "the AWS CLI (aws) is not installed"
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
    "LambdaCodeS3Key=$LAMBDA_KEY" \
    "GlueScriptS3Key=$SCRIPT_KEY" \
    "GluePackageS3Key=$PACKAGE_KEY" \
    ${EXTRA_OVERRIDES[@]+"${EXTRA_OVERRIDES[@]}"}

run "${AWS[@]}" cloudformation describe-stacks --stack-name "$STACK_NAME" \
  --query "Stacks[0].Outputs" --output table
