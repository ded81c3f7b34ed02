#!/usr/bin/env bash
# Java 17 for the local PySpark parity test (Glue 5.0 runs Spark 3.5.4).
set -euo pipefail
if command -v java >/dev/null 2>&1; then exit 0; fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    openjdk-17-jre-headless >/dev/null
else
  echo "java.sh: install a Java 17 runtime for the Spark parity test" >&2
fi
