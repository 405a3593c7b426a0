#!/usr/bin/env bash
# Swarm test (run by .ci/run, as root): a private Docker engine (Debian's docker.io)
# started here and removed at the end with everything it made (also on failure); the
# images built with the README's commands; `docker swarm init` on loopback; the stack
# deployed with `docker stack deploy` (docker-stack.yml + docker-stack.mirror.yml + the
# CI override docker-stack.ci.yml). Then, on the real files of ../shared/data plus
# stand-ins from `hzz generate`:
#   1. the stack's analysis gives the published numbers, the plotter service writes the PNG;
#   2. `docker service scale hzz_dask-worker=3` during that run: the new worker executes
#      tasks of it (counted per worker);
#   3. the dashboard's /status page in headless Chromium during that run: screenshot, and
#      the workers and the analysis's task names read from the page;
#   4. the analysis rerun (`docker service update --force hzz_analysis`) with a worker
#      container killed mid-run gives the same document, bin for bin, as the host's own
#      undisturbed run (and as run 1);
#   5. the plotter and the scheduler had no restart after many health intervals.
#   6. the same stack on three nodes (.ci/swarm-nodes.sh): images through a registry, tasks
#      on several nodes, a node lost mid-run, clients with and without the certificate;
#      its summary in ci-logs/swarm/summary.json.
# Dask speaks mutual TLS throughout, with the certificates deploy/make-secrets.sh makes.
# How the engine and swarm behave on this machine: ../shared/docs/swarm.md.
# HZZ_CI_CACHE=DIR keeps the Debian base rootfs between runs (default: nothing is kept);
# The engine, build and service logs, the dashboard screenshot and the plotter's figure are
# kept in ci-logs/swarm/ of the checkout (HZZ_CI_LOGS=DIR to put them elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
START=$SECONDS
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
HZZ=$(dirname "$PYTHON")/hzz

log() { printf '[swarm %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
fail() { log "FAILED: $*" >&2; exit 1; }
PHASES=()
phase_start=$SECONDS
phase() {  # phase NAME: the time since the previous phase ended
  PHASES+=("$1 $((SECONDS - phase_start)) s")
  log "phase done: $1 in $((SECONDS - phase_start)) s"
  phase_start=$SECONDS
}

if [ "$(id -u)" != 0 ]; then
  [ "${CI:-}" = true ] && fail "must run as root in CI (uid $(id -u))"
  log "SKIPPED: the swarm test needs root (a Docker engine of its own); CI runs it as root"
  exit 0
fi
[ -x "$PYTHON" ] || fail "$PYTHON not found: run .ci/run (it installs .venv) first"

# 0. Tools: Debian's engine (dockerd 20.10), debootstrap for a base image without a
# registry, chromium for the dashboard. The newer docker client already here talks to it.
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if pgrep -x dockerd >/dev/null; then fail "a Docker engine already runs here: stop it first"; fi
for link in docker0 docker_gwbridge; do
  if ip link show "$link" >/dev/null 2>&1; then fail "network link $link exists: another engine's?"; fi
done
phase "tools"

WORK=$(mktemp -d /tmp/hzzsw.XXXX)  # short: the engine's unix sockets live under it
chmod 755 "$WORK"                  # the mirror is read by the containers' user hzz
LOGS=${HZZ_CI_LOGS:-$REPO/ci-logs/swarm}
rm -rf "$LOGS"
mkdir -p "$LOGS"
export DOCKER_HOST="unix://$WORK/docker.sock"
NODES_REGISTRY=10.231.77.1:5000  # the three-node test's registry (.ci/swarm-nodes.sh)
ENGINE_PID=""

# What the engine may change outside its own directories, recorded to be restored.
sysctls="net.ipv4.ip_forward net.ipv4.conf.all.forwarding net.ipv6.conf.all.forwarding"
sysctl_state() { for key in $sysctls; do echo "$key=$(sysctl -n "$key" 2>/dev/null)"; done; }
nft_tables() { nft list tables 2>/dev/null | sort; }
SYSCTL_BEFORE=$(sysctl_state)
NFT_BEFORE=$(nft_tables)
created_outside=()
for path in /var/lib/docker /run/docker /run/containerd /etc/docker/key.json; do
  [ -e "$path" ] || created_outside+=("$path")
done

LOGS_SAVED=0
save_service_logs() {
  docker service ps hzz_dask-worker hzz_plotter hzz_dask-scheduler hzz_analysis \
    --format '{{.Name}} {{.CurrentState}} {{.Error}}' >"$LOGS/tasks.txt" 2>&1
  for service in rabbitmq dask-scheduler dask-worker plotter analysis; do
    docker service logs --raw "hzz_$service" >"$LOGS/service-$service.log" 2>&1
  done
  LOGS_SAVED=1
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  log "removing the engine and everything it made"
  if [ -n "$ENGINE_PID" ] && kill -0 "$ENGINE_PID" 2>/dev/null; then
    [ "$LOGS_SAVED" = 1 ] || save_service_logs
    timeout 60 docker stack rm hzz >/dev/null 2>&1
    timeout 30 docker swarm leave --force >/dev/null 2>&1
    kill "$ENGINE_PID"
    for _ in $(seq 1 40); do kill -0 "$ENGINE_PID" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$ENGINE_PID" 2>/dev/null
  fi
  # Processes started from the engine's directories (containerd, shims, containers).
  pkill -9 -f "$WORK" 2>/dev/null
  sleep 1
  grep -F "$WORK" /proc/mounts | awk '{print $2}' | sort -r | while read -r mount; do
    umount -l "$mount" 2>/dev/null
  done
  for link in docker0 docker_gwbridge; do ip link del "$link" 2>/dev/null; done
  ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^(veth|vx-|br-)' \
    | while read -r link; do ip link del "$link" 2>/dev/null; done
  for path in "${created_outside[@]}"; do rm -rf "$path"; done
  rm -f /var/lib/docker/network/files/lb_* 2>/dev/null
  log "logs, screenshot and figure kept in $LOGS"
  rm -rf "$WORK"
  # Nothing of the engine may be left.
  local left=()
  pgrep -f "$WORK" >/dev/null && left+=("processes")
  pgrep -x dockerd >/dev/null && left+=("dockerd")
  grep -qF "$WORK" /proc/mounts && left+=("mounts")
  for link in docker0 docker_gwbridge; do ip link show "$link" >/dev/null 2>&1 && left+=("$link"); done
  [ "$(nft_tables)" = "$NFT_BEFORE" ] || left+=("nft tables")
  [ "$(sysctl_state)" = "$SYSCTL_BEFORE" ] || left+=("sysctls")
  if [ ${#left[@]} -gt 0 ]; then
    log "FAILED: left behind: ${left[*]}" >&2
    [ $rc -eq 0 ] && rc=1
  else
    log "nothing of the engine left: no dockerd or containerd, no mounts, no docker0 or" \
      "docker_gwbridge, nft tables and forwarding sysctls as before"
  fi
  for line in "${PHASES[@]}"; do log "  timing: $line"; done
  log "swarm test $([ $rc -eq 0 ] && echo passed || echo FAILED) in $((SECONDS - START)) s"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. A private engine: its own data and exec roots, socket and pid file; no firewall or
# sysctl changes (so no bridge NAT: builds use the host network); never a registry.
engine_config() {  # engine_config DEFAULT_RUNTIME
  cat >"$WORK/daemon.json" <<EOF
{
  "data-root": "$WORK/data",
  "exec-root": "$WORK/exec",
  "pidfile": "$WORK/docker.pid",
  "hosts": ["$DOCKER_HOST"],
  "iptables": false,
  "ip-forward": false,
  "bridge": "none",
  "exec-opts": ["native.cgroupdriver=cgroupfs"],
  "storage-driver": "overlay2",
  "runtimes": {"runc-with-host-ca": {"path": "$REPO/deploy/runc-with-host-ca"}},
  "insecure-registries": ["$NODES_REGISTRY"],
  "default-runtime": "$1"
}
EOF
}
engine_config runc-with-host-ca  # builds trust the host's CA (a TLS-intercepting proxy)
DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 dockerd --config-file "$WORK/daemon.json" \
  >"$LOGS/dockerd.log" 2>&1 &
ENGINE_PID=$!
for _ in $(seq 1 60); do docker version >/dev/null 2>&1 && break; sleep 0.5; done
docker version >/dev/null 2>&1 || { tail -20 "$LOGS/dockerd.log"; fail "dockerd did not start"; }
log "engine $(docker version --format '{{.Server.Version}}') up at $DOCKER_HOST (pid $ENGINE_PID)"
phase "engine start"

# 2. A base image without a registry: Debian bookworm with Python 3.11 (debootstrap).
CACHE=${HZZ_CI_CACHE:-}
BASE_TAR="${CACHE:-$WORK}/python-base-3.11-bookworm.tar"
if [ ! -s "$BASE_TAR" ]; then
  log "building the base rootfs with debootstrap"
  apt_mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
  rootfs="$WORK/rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "${apt_mirror:-http://deb.debian.org/debian}" \
    >"$LOGS/debootstrap.log" 2>&1 || { tail -20 "$LOGS/debootstrap.log"; fail "debootstrap"; }
  chroot "$rootfs" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install \
      -y -qq --no-install-recommends python3 python3-venv python3-pip ca-certificates \
      && apt-get clean && rm -rf /var/lib/apt/lists/*' >"$LOGS/chroot.log" 2>&1 \
    || { tail -20 "$LOGS/chroot.log"; fail "installing Python into the base rootfs"; }
  mkdir -p "$(dirname "$BASE_TAR")"
  tar -C "$rootfs" -cf "$BASE_TAR.part" . && mv "$BASE_TAR.part" "$BASE_TAR"
  rm -rf "$rootfs"
fi
BASE=localhost/python-base:3.11
docker import --change 'CMD ["python3"]' "$BASE_TAR" "$BASE" >/dev/null
phase "base image"

# 3. The images, with the README's commands (plus the local base and the host network).
build() {  # build TAG DOCKERFILE CONTEXT
  local t0=$SECONDS
  docker build --network host --build-arg "BASE_IMAGE=$BASE" -f "$2" -t "$1" "$3" \
    >"$LOGS/build-${1%%:*}.log" 2>&1 || { tail -30 "$LOGS/build-${1%%:*}.log"; fail "building $1"; }
  log "image $1 built from $2 in $((SECONDS - t0)) s" \
    "($(docker image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1/1e6}'))"
}
build hzz-scheduler:latest Dockerfile.scheduler .
build hzz-worker:latest Dockerfile.worker .
build hzz-ci-rabbitmq:latest .ci/Dockerfile.rabbitmq .ci
engine_config runc  # the services run with the plain runtime: no host CA inside them
kill -HUP "$ENGINE_PID"
sleep 1
[ "$(docker info --format '{{.DefaultRuntime}}')" = runc ] || fail "engine still builds with the CA"
[ "$(docker run --rm --no-healthcheck hzz-worker:latest id -u)" = 10001 ] \
  || fail "the worker image does not run as the non-root user hzz (uid 10001)"
phase "images"

# 4. The data: the real 2020 files and stand-ins for the large MC samples, in one mirror.
MIRROR="$WORK/mirror"
mkdir -p "$MIRROR"
cp -r "$REPO/../shared/data/atlas-opendata-2020/4lep/." "$MIRROR/"
"$HZZ" generate --out "$MIRROR" >"$LOGS/generate.log" 2>&1 || fail "hzz generate"
chmod -R a+rX "$MIRROR"
STEP=2000  # small partitions: a run long enough to scale and to kill a worker in
# The reference: the same analysis on the host's embedded cluster, nobody disturbing it.
"$HZZ" run --data "$MIRROR" --step-size "$STEP" --workers 2 --dashboard :0 --no-progress \
  --out "$WORK/reference" >"$LOGS/reference.log" 2>&1 \
  || { tail -20 "$LOGS/reference.log"; fail "the reference run on the host"; }
REFERENCE=$(ls "$WORK"/reference/plot_*.json)
log "mirror: real files + stand-ins ($(du -sh "$MIRROR" | cut -f1)); host reference run done"
phase "data and reference run"

# 5. The swarm and the stack, as the README deploys it.
docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 \
  --data-path-addr 127.0.0.1 >/dev/null
export HZZ_CI_SECRETS="$WORK/secrets"
HZZ="$HZZ" sh deploy/make-secrets.sh "$HZZ_CI_SECRETS" >/dev/null
PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DASHBOARD="http://127.0.0.1:$PORT"
export HZZ_MIRROR="$MIRROR" HZZ_DASHBOARD_PORT="$PORT" HZZ_RABBITMQ_IMAGE=hzz-ci-rabbitmq:latest
export HZZ_ANALYSIS_STEP_SIZE=$STEP
deployed_at=$SECONDS
docker stack deploy --resolve-image never -c docker-stack.yml -c docker-stack.mirror.yml \
  -c docker-stack.ci.yml hzz >"$LOGS/deploy.log" 2>&1 || { cat "$LOGS/deploy.log"; fail "deploy"; }
counts() { curl -fsS --max-time 3 "$DASHBOARD/json/counts.json" 2>/dev/null || echo '{}'; }
count() { counts | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin).get('$1', 0))"; }
workers=0
for _ in $(seq 1 240); do
  workers=$(count workers)
  [ "$workers" -ge 2 ] && break
  sleep 0.5
done
[ "$workers" -ge 2 ] || { docker service ps hzz_dask-scheduler hzz_dask-worker --no-trunc; fail "$workers workers after deploy"; }
log "stack deployed; 2 workers connected $((SECONDS - deployed_at)) s after docker stack deploy"
phase "deploy until 2 workers"

# 6. Run 1 (the stack's own analysis): scale to 3 workers and look at the dashboard in it.
worker_tasks() {  # address: tasks executed, per worker (asked in the scheduler container,
  # over TLS with the scheduler's own certificate: the only one mounted there)
  docker exec "$(docker ps -qf name=hzz_dask-scheduler)" python3 -c "
from distributed import Client
from distributed.security import Security
certs = '/run/secrets/dask/'
security = Security(tls_ca_file=certs + 'ca.pem', tls_client_cert=certs + 'scheduler.pem',
                    tls_client_key=certs + 'scheduler-key.pem', require_encryption=True)
with Client('tls://127.0.0.1:8786', timeout='20s', security=security) as client:
    counts = client.run(lambda dask_worker: dask_worker.state.executed_count)
print(' '.join(f'{address}={n}' for address, n in sorted(counts.items())))"
}
for _ in $(seq 1 240); do
  [ "$(count processing)" -gt 0 ] && break
  sleep 0.5
done
[ "$(count processing)" -gt 0 ] || fail "the analysis did not start computing"
before=$(worker_tasks)
docker service scale --detach hzz_dask-worker=3 >/dev/null
scaled_at=$SECONDS
for _ in $(seq 1 120); do
  [ "$(count workers)" -ge 3 ] && break
  sleep 0.5
done
[ "$(count workers)" -ge 3 ] || fail "the third worker did not join"
log "scaled: 3 workers $((SECONDS - scaled_at)) s after docker service scale; run 1 still computing" \
  "($(count processing) tasks processing)"
"$PYTHON" .ci/dashboard_check.py "$DASHBOARD" --workers 3 --screenshot "$LOGS/dashboard-status.png" \
  || fail "the dashboard check"
wait_analysis() {  # wait_analysis N: until N runs of the analysis service have completed
  local states=""
  for _ in $(seq 1 600); do
    states=$(docker service ps hzz_analysis --format '{{.CurrentState}}' 2>/dev/null)
    if grep -qE '^(Failed|Rejected)' <<<"$states"; then break; fi
    [ "$(grep -c '^Complete' <<<"$states")" -ge "$1" ] && return 0
    sleep 1
  done
  docker service logs --raw hzz_analysis 2>&1 | tail -20
  fail "run $1 of the analysis did not complete: $(head -1 <<<"$states")"
}
wait_analysis 1
after=$(worker_tasks)
new_worker=""
for entry in $after; do
  address=${entry%=*}
  case " $before " in *" $address="*) ;; *) new_worker=$entry ;; esac
done
log "run 1 done; tasks executed per worker: $after"
[ -n "$new_worker" ] && [ "${new_worker#*=}" -gt 0 ] \
  || fail "the worker added by the scale executed no task of run 1 (before: $before)"
log "the added worker ran ${new_worker#*=} tasks of run 1"
[ "$(docker service ps -q hzz_analysis | wc -l)" = 1 ] || fail "the analysis was restarted"
VOLUMES="$WORK/data/volumes"
run1=$(ls "$VOLUMES"/hzz_results/_data/plot_*.json)
png=""
for _ in $(seq 1 60); do
  png=$(find "$VOLUMES/hzz_plots/_data" -name 'plot_*.png' | head -1)
  [ -n "$png" ] && break
  sleep 1
done
[ -n "$png" ] || fail "no PNG from the plotter service in volume hzz_plots"
"$PYTHON" .ci/check_document.py "$run1" --png "$png" --same-as "$REFERENCE" \
  || fail "run 1 differs from the spec or from the host's run"
cp "$png" "$LOGS/"
phase "run 1 (scaled to 3, dashboard)"

# 7. Run 2: the README's rerun, with one worker container killed while it computes.
docker service update --force --detach hzz_analysis >/dev/null
# Kill once the workers hold results of the run: those are lost with the worker and
# must be computed again.
for _ in $(seq 1 480); do
  [ "$(count memory)" -ge 10 ] && break
  sleep 0.25
done
held=$(count memory)
[ "$held" -ge 10 ] || fail "run 2 did not start computing"
victim=$(docker ps -qf name=hzz_dask-worker | head -1)
docker kill "$victim" >/dev/null
log "run 2: killed worker container ${victim:0:12} mid-run ($held results held by the workers)"
wait_analysis 2
run2=$(ls -t "$VOLUMES"/hzz_results/_data/plot_*.json | head -1)
[ "$run2" != "$run1" ] || fail "run 2 wrote no document"
"$PYTHON" .ci/check_document.py "$run2" --same-as "$REFERENCE" \
  || fail "run 2 (a worker killed) differs from the undisturbed run"
"$PYTHON" .ci/check_document.py "$run2" --same-as "$run1" >/dev/null \
  || fail "run 2 differs from run 1"
replaced=$(docker service ps hzz_dask-worker --format '{{.CurrentState}}' | grep -c '^Failed')
[ "$replaced" -ge 1 ] || fail "swarm did not see the killed worker fail"
log "swarm replaced the killed worker ($replaced failed task); the run recomputed its tasks"
phase "run 2 (a worker killed)"

# 8. No restarts of the long-running services after many health intervals.
up=$((SECONDS - deployed_at))
for service in plotter dask-scheduler rabbitmq; do
  tasks=$(docker service ps -q "hzz_$service" | wc -l)
  health=$(docker inspect --format '{{.State.Health.Status}}' "$(docker ps -qf "name=hzz_$service")")
  [ "$tasks" = 1 ] || fail "hzz_$service was restarted: $tasks tasks in $up s"
  [ "$health" = healthy ] || fail "hzz_$service is $health"
  log "hzz_$service: 1 task, $health, no restart in $up s"
done
log "(health intervals: plotter 10 s, scheduler and workers 5 s, RabbitMQ 10 s)"
phase "health"

# 9. The same stack on three nodes (a manager and two workers, each engine in network,
# mount and UTS namespaces of its own, images through a registry), with a node lost.
save_service_logs
timeout 60 docker stack rm hzz >/dev/null
for _ in $(seq 1 120); do [ -z "$(docker ps -q)" ] && break; sleep 0.5; done
phase "one-node stack removed"
ONE_NODE_PHASES=$(printf '%s\n' "${PHASES[@]}") WORK="$WORK" LOGS="$LOGS" MIRROR="$MIRROR" \
  REFERENCE="$REFERENCE" PYTHON="$PYTHON" STEP="$STEP" bash .ci/swarm-nodes.sh \
  || fail "the three-node swarm test"
phase "three nodes"
