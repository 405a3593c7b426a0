#!/bin/sh
# Write the stack's secret files: one fresh random RabbitMQ password, twice, and the
# cluster's own Dask CA with a certificate and key per role:
#   secrets/rabbitmq-credentials.conf  (rabbitmq.conf fragment: user hzz, the password)
#   secrets/broker-url                 (amqp://hzz:PASSWORD@rabbitmq:5672/%2F for hzz)
#   secrets/dask/                      (hzz certificates: ca.pem, ca-key.pem, and
#                                       scheduler, worker, client .pem / -key.pem)
# Usage: sh deploy/make-secrets.sh [DIR]   (default: ./secrets; existing files are kept)
# The certificates are made by `hzz certificates` (env HZZ: the command to run, default
# hzz; without one installed here, the worker image runs it: build it first).
set -eu
dir=${1:-secrets}
umask 077
mkdir -p "$dir"
if [ -e "$dir/rabbitmq-credentials.conf" ] || [ -e "$dir/broker-url" ] || [ -e "$dir/dask" ]; then
  echo "make-secrets: $dir already holds secrets; remove them first to make new ones" >&2
  exit 1
fi
hzz=${HZZ:-hzz}
if command -v "$hzz" >/dev/null 2>&1; then
  "$hzz" certificates "$dir/dask" >/dev/null
else
  abs=$(cd "$dir" && pwd)
  docker run --rm --user "$(id -u):$(id -g)" -v "$abs:/out" \
    "${HZZ_WORKER_IMAGE:-hzz-worker:latest}" hzz certificates /out/dask >/dev/null
fi
password=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
printf 'default_user = hzz\ndefault_pass = %s\n' "$password" > "$dir/rabbitmq-credentials.conf"
printf 'amqp://hzz:%s@rabbitmq:5672/%%2F\n' "$password" > "$dir/broker-url"
echo "make-secrets: wrote $dir/rabbitmq-credentials.conf, $dir/broker-url and the Dask" \
  "certificates in $dir/dask (keep $dir/dask/ca-key.pem off the cluster)"
