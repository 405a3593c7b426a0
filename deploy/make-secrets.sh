#!/bin/sh
# Write the stack's two secret files with one fresh random RabbitMQ password:
#   secrets/rabbitmq-credentials.conf  (rabbitmq.conf fragment: user hzz, the password)
#   secrets/broker-url                 (amqp://hzz:PASSWORD@rabbitmq:5672/%2F for hzz)
# Usage: sh deploy/make-secrets.sh [DIR]   (default: ./secrets; existing files are kept)
set -eu
dir=${1:-secrets}
umask 077
mkdir -p "$dir"
if [ -e "$dir/rabbitmq-credentials.conf" ] || [ -e "$dir/broker-url" ]; then
  echo "make-secrets: $dir already holds secrets; remove them first to make new ones" >&2
  exit 1
fi
password=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
printf 'default_user = hzz\ndefault_pass = %s\n' "$password" > "$dir/rabbitmq-credentials.conf"
printf 'amqp://hzz:%s@rabbitmq:5672/%%2F\n' "$password" > "$dir/broker-url"
echo "make-secrets: wrote $dir/rabbitmq-credentials.conf and $dir/broker-url"
