#!/usr/bin/env bash
# Container test (run by .ci/run, as root): build the scheduler and worker images with
# podman from the project's Dockerfiles, bring docker-stack.yml up with podman-compose
# (plus docker-stack.mirror.yml and the CI override docker-stack.ci.yml) with 2 worker
# containers, run the analysis on the real files of ../shared/data, check the PNG the
# containerised plotter wrote and the published numbers, then remove everything it made.
# How podman works on the CI machine: ../shared/docs/containers.md.
# Skips (exit 0) only when podman cannot be installed at all; any other failure fails.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
START=$SECONDS

log() { printf '[containers %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
fail() { log "FAILED: $*" >&2; exit 1; }

# 0. Tools. Root is needed for debootstrap and rootful podman.
TOOLS=(podman buildah runc debootstrap podman-compose)
missing=()
for tool in "${TOOLS[@]}"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ "$(id -u)" != 0 ]; then
  if [ "${CI:-}" = true ]; then fail "must run as root in CI (uid $(id -u))"; fi
  log "SKIPPED: the container test needs root (debootstrap, rootful podman); CI runs it as root"
  exit 0
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        podman buildah runc debootstrap podman-compose >/dev/null; }; then
    log "SKIPPED: podman cannot be installed here (apt-get failed); container test not run"
    exit 0
  fi
fi

CACHE=${HZZ_CI_CACHE:-/var/cache/hzz-ci}
MIRROR=$(cd "$REPO/.." && pwd)/shared/data/atlas-opendata-2020/4lep
[ -d "$MIRROR/Data" ] || fail "real data files expected at $MIRROR"
RUN_ID="hzzci$$$(date +%s)"
WORK=$(mktemp -d "/tmp/$RUN_ID.XXXX")
PREFIX="localhost/$RUN_ID"
LOGS=${HZZ_CI_LOGS:-$WORK/logs}   # build and compose logs (set to keep them)
mkdir -p "$CACHE/apt" "$LOGS"

# podman settings for this machine (containers.md), for this script only.
export CONTAINERS_CONF="$WORK/containers.conf"
nofile=$(ulimit -Hn)
cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32767:32767"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF

# Everything made here is removed on exit, by id or by this run's label/name.
podman images -aq --no-trunc | sort -u >"$WORK/images.before"
cleanup() {
  local rc=$?
  set +e
  log "removing the containers, networks, volumes and images of $RUN_ID"
  local ids left
  # podman prints systemd health-check timer errors here (no systemd in CI): harmless.
  ids=$(podman ps -aq --filter "label=io.podman.compose.project=$RUN_ID")
  [ -n "$ids" ] && podman rm -f -t 2 $ids >/dev/null 2>"$WORK/rm.log"
  ids=$(podman volume ls -q --filter "label=io.podman.compose.project=$RUN_ID")
  [ -n "$ids" ] && podman volume rm -f $ids >/dev/null
  ids=$(podman network ls -q --filter "label=io.podman.compose.project=$RUN_ID")
  [ -n "$ids" ] && podman network rm -f $ids >/dev/null
  podman images -aq --no-trunc | sort -u >"$WORK/images.after"
  # New since the start, and ours: tagged under $PREFIX or untagged build layers.
  ids=$(comm -13 "$WORK/images.before" "$WORK/images.after" | while read -r id; do
    podman image inspect --format '{{.Id}} {{join .RepoTags ","}}' "$id" 2>/dev/null
  done | awk -v prefix="$PREFIX/" '$2 == "" || index($2, prefix) == 1 {print $1}')
  [ -n "$ids" ] && podman rmi -f $ids >/dev/null 2>&1
  left=$(
    podman ps -aq --filter "label=io.podman.compose.project=$RUN_ID"
    podman volume ls -q --filter "label=io.podman.compose.project=$RUN_ID"
    podman network ls -q --filter "label=io.podman.compose.project=$RUN_ID"
    podman images -q --filter "reference=$PREFIX/*"
  )
  rm -rf "$WORK"
  if [ -n "$left" ]; then
    log "FAILED: left behind: $left" >&2
    [ $rc -eq 0 ] && rc=1
  else
    log "everything removed: $(echo $ids | wc -w) images, containers, network, volumes, $WORK"
  fi
  log "container test $([ $rc -eq 0 ] && echo passed || echo FAILED) in $((SECONDS - START)) s"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. Base image without a registry: Debian bookworm + Python 3.11, cached as a tarball.
BASE_TAR="$CACHE/python-base-3.11-bookworm.tar"
if [ ! -s "$BASE_TAR" ]; then
  log "building the base rootfs with debootstrap (cached at $BASE_TAR)"
  apt_mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
  rootfs="$WORK/rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "${apt_mirror:-http://deb.debian.org/debian}" \
    >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap"; }
  chroot "$rootfs" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install \
      -y -qq --no-install-recommends python3 python3-venv python3-pip ca-certificates \
      && apt-get clean && rm -rf /var/lib/apt/lists/*' >"$WORK/chroot.log" 2>&1 \
    || { tail -20 "$WORK/chroot.log"; fail "installing Python into the base rootfs"; }
  tar -C "$rootfs" -cf "$BASE_TAR.$RUN_ID" . && mv "$BASE_TAR.$RUN_ID" "$BASE_TAR"
  rm -rf "$rootfs"
fi
BASE="$PREFIX/python-base:3.11"
podman import --quiet --change 'CMD ["python3"]' "$BASE_TAR" "$BASE" >/dev/null
log "base image $BASE imported from $BASE_TAR"

# 2. The images. pip inside the build must trust the host's TLS-intercepting proxy CA:
# the host bundle is mounted for the build only, never copied into an image.
build() {
  local name=$1 file=$2 context=$3
  shift 3
  local t0=$SECONDS
  podman build --format docker --build-arg "BASE_IMAGE=$BASE" \
    -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro "$@" \
    -f "$file" -t "$PREFIX/$name:ci" "$context" >"$LOGS/build-$name.log" 2>&1 \
    || { tail -30 "$LOGS/build-$name.log"; fail "building $name from $file"; }
  log "image built: $PREFIX/$name:ci from $file in $((SECONDS - t0)) s" \
    "($(podman image inspect --format '{{.Size}}' "$PREFIX/$name:ci" | awk '{printf "%.0f MB", $1/1e6}'))"
}
# Both build stages are the same: the worker build reuses the scheduler's layers.
build scheduler Dockerfile.scheduler "$REPO"
build worker Dockerfile.worker "$REPO"
build rabbitmq .ci/Dockerfile.rabbitmq "$REPO/.ci" -v "$CACHE/apt:/var/cache/apt/archives"
[ "$(podman run --rm --no-healthcheck "$PREFIX/worker:ci" id -u)" = 10001 ] \
  || fail "the worker image does not run as the non-root user hzz (uid 10001)"

# 3. The stack, with fresh secrets (not guest/guest) and a free dashboard port.
export HZZ_SCHEDULER_IMAGE="$PREFIX/scheduler:ci" HZZ_WORKER_IMAGE="$PREFIX/worker:ci"
export HZZ_RABBITMQ_IMAGE="$PREFIX/rabbitmq:ci" HZZ_MIRROR="$MIRROR"
export HZZ_CI_SECRETS="$WORK/secrets"
HZZ_DASHBOARD_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export HZZ_DASHBOARD_PORT
sh deploy/make-secrets.sh "$HZZ_CI_SECRETS" >/dev/null
chmod 0444 "$HZZ_CI_SECRETS"/*   # as swarm mounts secrets: readable by the service's user
compose() {
  podman-compose -p "$RUN_ID" -f docker-stack.yml -f docker-stack.mirror.yml \
    -f docker-stack.ci.yml "$@"
}
compose up -d rabbitmq dask-scheduler dask-worker plotter >"$LOGS/compose-up.log" 2>&1 \
  || { tail -30 "$LOGS/compose-up.log"; fail "podman-compose up"; }

dashboard="http://127.0.0.1:$HZZ_DASHBOARD_PORT"
workers=0
for _ in $(seq 1 120); do
  workers=$(python3 -c "import json, urllib.request as u; print(json.load(u.urlopen('$dashboard/json/counts.json', timeout=2))['workers'])" 2>/dev/null || echo 0)
  [ "$workers" -ge 2 ] && break
  sleep 1
done
if [ "$workers" -lt 2 ]; then
  podman ps -a --filter "label=io.podman.compose.project=$RUN_ID"
  podman logs "${RUN_ID}_dask-scheduler_1" 2>&1 | tail -20
  fail "the scheduler has $workers workers, expected 2"
fi
log "stack up: rabbitmq, dask-scheduler, $workers dask-worker containers, plotter (project $RUN_ID)"
for service in dask-scheduler dask-worker; do
  podman healthcheck run "${RUN_ID}_${service}_1" >/dev/null 2>&1 \
    || fail "health check of $service failed"
done
log "health checks pass: dask-scheduler, dask-worker"

# `docker service scale hzz_dask-worker=3` has no podman equivalent: one more container
# of the same service definition does the same.
compose run -T --no-deps --name "${RUN_ID}_dask-worker_3" -d dask-worker \
  >>"$LOGS/compose-up.log" 2>&1 || fail "starting a third dask-worker container"
for _ in $(seq 1 120); do
  workers=$(python3 -c "import json, urllib.request as u; print(json.load(u.urlopen('$dashboard/json/counts.json', timeout=2))['workers'])" 2>/dev/null || echo 0)
  [ "$workers" -ge 3 ] && break
  sleep 1
done
[ "$workers" -ge 3 ] || fail "the added worker container did not join ($workers workers)"
log "scaled: $workers dask-worker containers connected"

# 4. The analysis: the stack's one-shot service, on the mirror mounted in the containers.
t0=$SECONDS
compose run -T --no-deps --name "${RUN_ID}_analysis" -d analysis \
  hzz run --allow-missing --no-progress --out /results --broker-timeout 120 --step-size 100 \
  >"$LOGS/compose-run.log" 2>&1 \
  || { tail -30 "$LOGS/compose-run.log"; fail "podman-compose run analysis"; }
status=$(python3 -c "import urllib.request as u; print(u.urlopen('$dashboard/status', timeout=10).status)")
[ "$status" = 200 ] || fail "dashboard $dashboard/status answered $status"
log "dashboard $dashboard/status answers 200 during the run"
rc=$(podman wait "${RUN_ID}_analysis")
podman logs "${RUN_ID}_analysis" >"$LOGS/analysis.log" 2>&1
sed 's/^/    /' "$LOGS/analysis.log"
[ "$rc" = 0 ] || fail "the analysis container exited with $rc"
log "analysis done in $((SECONDS - t0)) s on $workers worker containers"
executed=$(podman exec "${RUN_ID}_dask-scheduler_1" python3 -c "
from distributed import Client
with Client('tcp://127.0.0.1:8786', timeout='20s') as client:
    counts = client.run(lambda dask_worker: dask_worker.state.executed_count)
print(', '.join(f'{address}: {n}' for address, n in sorted(counts.items())))" 2>/dev/null) \
  || fail "could not ask the scheduler what each worker executed"
log "tasks executed per worker container: $executed"

# 5. The plotter's PNG and the published numbers.
volume_dir() { podman volume inspect --format '{{.Mountpoint}}' "${RUN_ID}_$1"; }
plots=$(volume_dir plots)
results=$(volume_dir results)
png=""
for _ in $(seq 1 90); do
  png=$(find "$plots" -name 'plot_*.png' | head -1)
  [ -n "$png" ] && break
  sleep 1
done
[ -n "$png" ] || { podman logs "${RUN_ID}_plotter_1" 2>&1 | tail -20; fail "no PNG in the plots volume"; }
document=$(find "$results" -name 'plot_*.json' | head -1)
[ -n "$document" ] || fail "no histogram document in the results volume"
podman run --rm --no-healthcheck -v "$REPO/.ci/check_document.py:/check_document.py:ro" \
  -v "$results:/results:ro" -v "$plots:/plots:ro" "$PREFIX/worker:ci" \
  python3 /check_document.py "/results/$(basename "$document")" "/plots/$(basename "$png")" \
  || fail "the stack's numbers differ from the spec"
log "PNG written by the containerised plotter: $(basename "$png") ($(stat -c %s "$png") bytes)"
podman logs "${RUN_ID}_plotter_1" 2>&1 | grep -i "png" | tail -1 | sed 's/^/    /'
