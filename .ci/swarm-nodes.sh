#!/usr/bin/env bash
# The stack on a swarm of three nodes on this one machine (run by .ci/swarm.sh, as root,
# after its one-node test, while its engine still holds the built images):
#   - a bridge made here (10.231.77.0/24) and three network namespaces on it, each with
#     its own address, its own mount and UTS namespace (hostname) and its own dockerd:
#     a manager (tlsnode0) and two workers (tlsnode1, tlsnode2) that `docker swarm join`;
#   - a registry (Debian's docker-registry) on the bridge: the images are pushed once and
#     every node pulls them, as on real machines; the stack deployed with the users'
#     docker-stack.yml (+ the mirror and CI overrides) with --resolve-image always;
#   - run 1: the stack's analysis, its tasks counted per node (at least two), the document
#     bit-identical to the host's own single-node run of the same files;
#   - run 2: a worker node lost mid-run (its engine, containerd, shims and containers
#     killed, as a machine that dies): swarm marks it Down and reschedules its worker,
#     Dask reruns the lost work, the document is identical again, and the dashboard
#     lists only the workers of the nodes left;
#   - a client in a container on a worker node, attached to the overlay network: refused
#     without the cluster's certificate (none, plain TCP, or its own CA), served with it;
#   - everything torn down and proven gone (engines, containers, registry, namespaces,
#     links, cgroups, mounts, files), also on failure.
# Writes $LOGS/summary.json: nodes, task_nodes, node_lost, documents_identical,
# refused_without_certificate, phase_seconds (and the engine and service logs beside it).
# Inputs from swarm.sh: DOCKER_HOST (the engine with the images), WORK, LOGS, MIRROR,
# REFERENCE (the host's document), HZZ_CI_SECRETS, PYTHON, STEP.
# How this works on this kernel: ../shared/docs/swarm.md ("Several nodes on one machine").
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
: "${DOCKER_HOST:?}" "${WORK:?}" "${LOGS:?}" "${MIRROR:?}" "${REFERENCE:?}"
: "${HZZ_CI_SECRETS:?}" "${PYTHON:?}" "${STEP:?}"
START=$SECONDS
BUILD_ENGINE=$DOCKER_HOST

log() { printf '[nodes %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
fail() { log "FAILED: $*" >&2; exit 1; }
PHASES=()
phase_start=$SECONDS
phase() {  # phase NAME: seconds since the previous phase ended, kept for the summary
  PHASES+=("$1=$((SECONDS - phase_start))")
  log "phase done: $1 in $((SECONDS - phase_start)) s"
  phase_start=$SECONDS
}

NET=10.231.77
BRIDGE=tlsbr0
REGISTRY=$NET.1:5000
NODES=(tlsnode0 tlsnode1 tlsnode2)  # netns, hostname and cgroup parent of each engine
ND=$WORK/n                          # short: engine sockets live under it
mkdir -p "$ND"
declare -A ENGINE_PIDS=()
REGISTRY_PID=""
LOST=""
SUMMARY_TASKS="{}"
IDENTICAL=false
REFUSED=false

node_socket() { echo "unix://$ND/$1/docker.sock"; }
on() {  # on N docker ARGS...: the docker client of node N
  local n=$1
  shift
  DOCKER_HOST=$(node_socket "$n") "$@"
}
manager() { on 0 docker "$@"; }

# Paths dockerd 20.10 uses whatever its config says: each engine gets its own copy,
# bind-mounted in its own mount namespace. Mount points missing here are made, and removed.
FIXED_PATHS=(/etc/docker /run/docker /var/lib/docker /run/containerd)
made_paths=()
for path in "${FIXED_PATHS[@]}"; do
  [ -e "$path" ] || { mkdir -p "$path"; made_paths+=("$path"); }
done

write_summary() {
  local phases
  phases=$(printf '%s\n' "${PHASES[@]}")
  NODES_N=${#NODES[@]} TASKS=$SUMMARY_TASKS LOST=$LOST IDENTICAL=$IDENTICAL \
    REFUSED=$REFUSED PHASES_TEXT=$phases PASSED=$1 "$PYTHON" - "$LOGS/summary.json" <<'PY'
import json, os, re, sys
phases = {}
for line in os.environ["PHASES_TEXT"].splitlines():
    if "=" in line:
        name, seconds = line.rsplit("=", 1)
        phases[name] = int(seconds)
one_node = {}  # swarm.sh's phases: "NAME N s"
for line in os.environ.get("ONE_NODE_PHASES", "").splitlines():
    found = re.fullmatch(r"(.+) (\d+) s", line.strip())
    if found:
        one_node[found.group(1)] = int(found.group(2))
summary = {
    "nodes": int(os.environ["NODES_N"]),
    "task_nodes": json.loads(os.environ["TASKS"]),
    "node_lost": os.environ["LOST"] or None,
    "documents_identical": os.environ["IDENTICAL"] == "true",
    "refused_without_certificate": os.environ["REFUSED"] == "true",
    "phase_seconds": phases,
    "one_node_phase_seconds": one_node,
    "passed": os.environ["PASSED"] == "true",
}
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump(summary, out, indent=2)
    out.write("\n")
PY
}

alive() {  # alive PID: a process that runs (a zombie runs nothing)
  [ -n "$1" ] && [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

group_pids() {  # group_pids N: every live process of node N (its engine's tree, its containers)
  local node=${NODES[$1]} pid
  { ip netns pids "$node" 2>/dev/null
    cat /sys/fs/cgroup/pids/"$node"/cgroup.procs /sys/fs/cgroup/pids/"$node"/*/cgroup.procs 2>/dev/null
  } | sort -u | while read -r pid; do alive "$pid" && echo "$pid"; done
}

kill_node() {  # kill_node N: the machine dies: every process of it, at once
  local pids
  for _ in 1 2 3 4 5; do
    pids=$(group_pids "$1")
    [ -z "$pids" ] && return 0
    kill -9 $pids 2>/dev/null || true
    sleep 0.3
  done
  pids=$(group_pids "$1")
  [ -z "$pids" ]
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  log "removing the three engines, the registry and everything they made"
  if alive "${ENGINE_PIDS[0]:-}"; then
    manager node ls >"$LOGS/nodes.txt" 2>&1
    manager service ps hzz_dask-worker hzz_analysis hzz_dask-scheduler \
      --format '{{.Name}} {{.Node}} {{.CurrentState}} {{.Error}}' >"$LOGS/nodes-tasks.txt" 2>&1
    for service in dask-scheduler dask-worker analysis plotter; do  # a lost node's: none
      timeout 10 docker --host "$(node_socket 0)" service logs --raw "hzz_$service" \
        >"$LOGS/nodes-service-$service.log" 2>&1
    done
  fi
  # Nothing of these machines is kept: every process of each goes at once, as at power-off
  # (stopping containers one by one would only take longer); what they made goes below.
  local i
  for i in "${!NODES[@]}"; do kill_node "$i" || log "node $i: processes survive SIGKILL"; done
  [ -n "$REGISTRY_PID" ] && { kill "$REGISTRY_PID" 2>/dev/null; wait "$REGISTRY_PID" 2>/dev/null; }
  for i in "${!NODES[@]}"; do
    ip netns del "${NODES[$i]}" 2>/dev/null
    # The engine's cgroups (cgroup-parent), deepest first, once their processes are gone.
    find /sys/fs/cgroup/*/"${NODES[$i]}" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  ip link del "$BRIDGE" 2>/dev/null
  for path in "${made_paths[@]}"; do rm -rf "$path"; done
  rm -rf "$ND"
  # Proof that nothing is left.
  local left=()
  for i in "${!NODES[@]}"; do
    local node=${NODES[$i]}
    ip netns list | grep -qw "$node" && left+=("netns $node")
    compgen -G "/sys/fs/cgroup/*/$node" >/dev/null && left+=("cgroups $node")
    alive "${ENGINE_PIDS[$i]:-}" && left+=("dockerd $node")
  done
  alive "$REGISTRY_PID" && left+=("registry")
  pgrep -f "$ND" >/dev/null && left+=("processes of $ND")
  grep -qF "$ND" /proc/mounts && left+=("mounts")
  ip link show "$BRIDGE" >/dev/null 2>&1 && left+=("$BRIDGE")
  ip -o link show | grep -q ' tlsv' && left+=("veth links")
  ls /run/containerd/s 2>/dev/null | grep -q . && left+=("shim sockets")
  [ -e "$ND" ] && left+=("$ND")
  if [ ${#left[@]} -gt 0 ]; then
    log "FAILED: left behind: ${left[*]}" >&2
    [ $rc -eq 0 ] && rc=1
  else
    log "nothing of the three nodes left: no engine, container, shim or registry process," \
      "no namespace, link, cgroup, mount or file of theirs"
  fi
  phase "teardown"
  write_summary "$([ $rc -eq 0 ] && echo true || echo false)"
  for line in "${PHASES[@]}"; do log "  timing: ${line%=*} ${line##*=} s"; done
  log "three-node swarm test $([ $rc -eq 0 ] && echo passed || echo FAILED) in $((SECONDS - START)) s" \
    "(summary: $LOGS/summary.json)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. The network: a bridge, one namespace per node with a veth onto it.
ip link add "$BRIDGE" type bridge
ip addr add "$NET.1/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
for i in "${!NODES[@]}"; do
  node=${NODES[$i]}
  ip netns add "$node"
  ip link add "tlsv$i" type veth peer name eth0 netns "$node"
  ip link set "tlsv$i" master "$BRIDGE" up
  ip -n "$node" addr add "$NET.1$i/24" dev eth0
  ip -n "$node" link set eth0 up
  ip -n "$node" link set lo up
done

# 2. The registry, on the bridge only; the images pushed to it once.
mkdir -p "$ND/registry"
cat >"$ND/registry.yml" <<EOF
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $ND/registry}, delete: {enabled: true}}
http: {addr: $REGISTRY}
EOF
docker-registry serve "$ND/registry.yml" >"$LOGS/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 1 40); do curl -fs "http://$REGISTRY/v2/" >/dev/null && break; sleep 0.25; done
curl -fs "http://$REGISTRY/v2/" >/dev/null || fail "the registry did not start"
doc() { "$PYTHON" .ci/doc_blocks.py "$@"; }  # a titled block of the docs, run as written
REGISTRY=$REGISTRY bash -euc "$(doc docs/deployment.md 'build machine: push the images')" \
  >>"$LOGS/push.log" 2>&1 || { tail "$LOGS/push.log"; fail "pushing the images"; }
docker tag hzz-ci-rabbitmq:latest "$REGISTRY/hzz-ci-rabbitmq:1"  # CI's own broker image
docker push "$REGISTRY/hzz-ci-rabbitmq:1" >>"$LOGS/push.log" 2>&1 || fail "push hzz-ci-rabbitmq"
log "registry at $REGISTRY: hzz-scheduler, hzz-worker, hzz-ci-rabbitmq pushed"
phase "network and registry"

# 3. Three engines, each in its namespaces, then the swarm.
start_engine() {  # start_engine N
  local i=$1 node=${NODES[$1]} d=$ND/$1
  mkdir -p "$d"/{data,exec,etc,run,lib,containerd}
  grep ' /sys/fs/cgroup/' /proc/self/mounts >"$d/cgroups"  # one list per node: shared, it raced
  cat >"$d/daemon.json" <<EOF
{
  "data-root": "$d/data",
  "exec-root": "$d/exec",
  "pidfile": "$d/docker.pid",
  "hosts": ["unix://$d/docker.sock"],
  "iptables": false,
  "ip-forward": false,
  "ip-masq": false,
  "bridge": "none",
  "exec-opts": ["native.cgroupdriver=cgroupfs"],
  "cgroup-parent": "/$node",
  "storage-driver": "overlay2",
  "insecure-registries": ["$REGISTRY"]
}
EOF
  # `ip netns exec` mounts a fresh /sys: the host's cgroup hierarchies are mounted again.
  ip netns exec "$node" unshare --mount --propagation slave --uts sh -c '
    set -e
    hostname "$1"
    mount -t tmpfs -o mode=755 cgroup_root /sys/fs/cgroup
    while read -r source target type options _; do
      mkdir -p "$target"
      mount -t "$type" -o "$options" "$source" "$target"
    done <"$2/cgroups"
    mount --bind "$2/etc" /etc/docker
    mount --bind "$2/run" /run/docker
    mount --bind "$2/lib" /var/lib/docker
    mount --bind "$2/containerd" /run/containerd
    exec dockerd --config-file "$2/daemon.json"' engine "$node" "$d" \
    >"$LOGS/dockerd-$node.log" 2>&1 &
  ENGINE_PIDS[$i]=$!
  disown "$!"  # killed on purpose later: no job notice
}
for i in "${!NODES[@]}"; do start_engine "$i"; done
for i in "${!NODES[@]}"; do
  for _ in $(seq 1 60); do on "$i" docker version >/dev/null 2>&1 && break; sleep 0.25; done
  on "$i" docker version >/dev/null 2>&1 \
    || { tail -20 "$LOGS/dockerd-${NODES[$i]}.log"; fail "the engine of ${NODES[$i]} did not start"; }
done
# The steps of docs/deployment.md ("Several machines"), each on its node, as written.
TOKEN=$(on 0 env MANAGER_IP="$NET.10" bash -euc "$(doc docs/deployment.md 'manager: start the swarm')" | tail -1)
for i in 1 2; do
  on "$i" env TOKEN="$TOKEN" NODE_IP="$NET.1$i" MANAGER_IP="$NET.10" \
    bash -euc "$(doc docs/deployment.md 'each worker node: join')" >/dev/null
done
manager swarm update --dispatcher-heartbeat 2s >/dev/null  # CI: a lost node noticed sooner
ready=0
for _ in $(seq 1 60); do
  ready=$(manager node ls --format '{{.Status}}' | grep -c '^Ready$' || true)
  [ "$ready" = 3 ] && break
  sleep 0.25
done
[ "$ready" = 3 ] || { manager node ls; fail "$ready of 3 nodes Ready"; }
ids=$(for i in "${!NODES[@]}"; do on "$i" docker info --format '{{.ID}}'; done | sort -u | wc -l)
[ "$ids" = 3 ] || fail "the engines share an engine ID: their state is not their own"
log "swarm: $(manager node ls --format '{{.Hostname}} {{.ManagerStatus}} {{.Status}}' | tr '\n' ';')"
phase "three engines and the swarm"

# 4. The stack, as users deploy it on several machines: images from the registry.
export HZZ_SCHEDULER_IMAGE=$REGISTRY/hzz-scheduler:1 HZZ_WORKER_IMAGE=$REGISTRY/hzz-worker:1
export HZZ_RABBITMQ_IMAGE=$REGISTRY/hzz-ci-rabbitmq:1 HZZ_DASHBOARD_PORT=8787
export HZZ_MIRROR=$MIRROR HZZ_ANALYSIS_STEP_SIZE=$STEP
DASHBOARD="http://$NET.10:8787"
manager stack deploy --resolve-image always -c docker-stack.yml -c docker-stack.mirror.yml \
  -c docker-stack.ci.yml hzz >"$LOGS/nodes-deploy.log" 2>&1 || { cat "$LOGS/nodes-deploy.log"; fail "deploy"; }
manager service scale --detach hzz_dask-worker=3 >/dev/null
counts() { curl -fsS --max-time 3 "$DASHBOARD/json/counts.json" 2>/dev/null || echo '{}'; }
count() { counts | "$PYTHON" -c "import json,sys; print(json.load(sys.stdin).get('$1', 0))"; }
deployed_at=$SECONDS
for _ in $(seq 1 360); do
  [ "$(count workers)" -ge 3 ] && break
  sleep 0.5
done
[ "$(count workers)" -ge 3 ] || { manager service ps hzz_dask-worker hzz_dask-scheduler --no-trunc; fail "not 3 workers"; }
on 0 bash -euc "$(doc docs/deployment.md 'manager: the nodes and the tasks on them')" \
  >"$LOGS/nodes-placement.txt" 2>&1 || fail "the docs' look at the nodes"
where=$(manager service ps hzz_dask-worker -f desired-state=running --format '{{.Node}}' | sort | tr '\n' ' ')
log "deployed; 3 workers connected $((SECONDS - deployed_at)) s after deploy, on: $where"
phase "deploy until 3 workers"

# The workers, asked from the scheduler's container over TLS with its own certificate:
# JSON {worker address: [container hostname (NODE-dask-worker-SLOT), tasks executed, results held]}.
ask_workers() {
  manager exec "$(manager ps -qf name=hzz_dask-scheduler)" python3 -c "
import json, socket
from distributed import Client
from distributed.security import Security
certs = '/run/secrets/dask/'
security = Security(tls_ca_file=certs + 'ca.pem', tls_client_cert=certs + 'scheduler.pem',
                    tls_client_key=certs + 'scheduler-key.pem', require_encryption=True)
with Client('tls://127.0.0.1:8786', timeout='20s', security=security) as client:
    print(json.dumps(client.run(lambda dask_worker: [socket.gethostname(),
        dask_worker.state.executed_count, len(dask_worker.data)])))"
}
per_node() {  # per_node JSON: {node: tasks executed} from ask_workers' answer
  "$PYTHON" -c "
import json, sys
nodes = {}
for host, executed, _ in json.loads(sys.argv[1]).values():
    node = host.split('-dask-worker-')[0]
    nodes[node] = nodes.get(node, 0) + executed
print(json.dumps(nodes, sort_keys=True))" "$1"
}
wait_analysis() {  # wait_analysis N: until N runs of the analysis service have completed
  local states=""
  for _ in $(seq 1 900); do
    states=$(manager service ps hzz_analysis --format '{{.CurrentState}}' 2>/dev/null)
    if grep -qE '^(Failed|Rejected)' <<<"$states"; then break; fi
    [ "$(grep -c '^Complete' <<<"$states")" -ge "$1" ] && return 0
    sleep 1
  done
  manager service logs --raw hzz_analysis 2>&1 | tail -20
  fail "run $1 of the analysis did not complete: $(head -1 <<<"$states")"
}
RESULTS="$ND/0/data/volumes/hzz_results/_data"

# 5. Run 1: tasks on several nodes; the document as the host's own run.
wait_analysis 1
run1=$(ls "$RESULTS"/plot_*.json)
SUMMARY_TASKS=$(per_node "$(ask_workers)")
log "run 1: tasks executed per node: $SUMMARY_TASKS"
busy=$("$PYTHON" -c "import json,sys; print(sum(1 for n in json.loads(sys.argv[1]).values() if n > 0))" "$SUMMARY_TASKS")
[ "$busy" -ge 2 ] || fail "the tasks of run 1 ran on $busy node(s), not several"
"$PYTHON" .ci/check_document.py "$run1" --same-as "$REFERENCE" \
  || fail "run 1 on three nodes differs from the host's run"
phase "run 1 (3 nodes)"

# 6. Run 2: a worker node dies while it holds results of the run.
LOST=${NODES[2]}
manager service update --force --detach hzz_analysis >/dev/null
held=0
for _ in $(seq 1 600); do
  held=$("$PYTHON" -c "
import json, sys
print(sum(held for host, _, held in json.loads(sys.argv[1]).values() if host.startswith('$LOST-')))" \
    "$(ask_workers 2>/dev/null || echo '{}')")
  [ "$held" -ge 1 ] && break
  sleep 0.5
done
[ "$held" -ge 1 ] || fail "the worker on $LOST never held results of run 2"
kill_node 2 || fail "processes of $LOST survived"
lost_at=$SECONDS
log "run 2: $LOST killed (engine, containerd, shims, containers) holding $held results"
for _ in $(seq 1 120); do
  [ "$(manager node ls --filter "name=$LOST" --format '{{.Status}}')" = Down ] && break
  sleep 0.5
done
[ "$(manager node ls --filter "name=$LOST" --format '{{.Status}}')" = Down ] \
  || fail "swarm did not mark $LOST Down"
log "swarm marked $LOST Down after $((SECONDS - lost_at)) s"
wait_analysis 2
run2=$(ls -t "$RESULTS"/plot_*.json | head -1)
[ "$run2" != "$run1" ] || fail "run 2 wrote no document"
"$PYTHON" .ci/check_document.py "$run2" --same-as "$REFERENCE" \
  || fail "run 2 (a node lost) differs from the host's run"
IDENTICAL=true
# Swarm puts the lost node's worker on a node left; the dashboard lists only those.
for _ in $(seq 1 120); do
  [ "$(count workers)" -ge 3 ] && break
  sleep 0.5
done
answer=$(ask_workers)
hosts=$("$PYTHON" -c "import json,sys; print(' '.join(sorted(h for h, _, _ in json.loads(sys.argv[1]).values())))" "$answer")
case " $hosts" in *" $LOST-"*) fail "a worker of the lost node is still listed: $hosts" ;; esac
shown=$(curl -fsS "$DASHBOARD/json/identity.json" | "$PYTHON" -c "import json,sys; print(' '.join(sorted(json.load(sys.stdin)['workers'])))")
asked=$("$PYTHON" -c "import json,sys; print(' '.join(sorted(json.loads(sys.argv[1]))))" "$answer")
[ "$shown" = "$asked" ] || fail "the dashboard lists $shown, the workers are $asked"
log "run 2 identical; the dashboard lists $(wc -w <<<"$shown") workers, all on nodes left: $hosts"
phase "run 2 (a node lost)"

# 7. A client that is not a stack service, in a container on a worker node attached to
# the overlay: refused without the cluster's certificate, served with it.
CLIENT_CERTS="$ND/client-certs"
mkdir -p "$CLIENT_CERTS"
cp "$HZZ_CI_SECRETS"/dask/{ca.pem,client.pem,client-key.pem} "$CLIENT_CERTS/"
chown -R 10001:10001 "$CLIENT_CERTS"
# The client itself would refuse plain TCP (the image requires encryption): allowed here,
# so that the scheduler is what refuses it.
verdicts=$(on 1 docker run --rm --network hzz_hzz -v "$CLIENT_CERTS:/certs:ro" \
  -e DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION=False "$HZZ_WORKER_IMAGE" python3 -c "
import json, socket
from distributed import Client
from distributed.security import Security
def attempt(address, security):
    try:
        with Client(address, timeout='10s', security=security) as client:
            return 'ran on ' + ','.join(sorted(client.run(socket.gethostname).values()))
    except Exception as err:
        return f'refused: {type(err).__name__}: {str(err)[:120]}'
certs = Security(tls_ca_file='/certs/ca.pem', tls_client_cert='/certs/client.pem',
                 tls_client_key='/certs/client-key.pem', require_encryption=True)
print(json.dumps({
    'plain tcp': attempt('tcp://dask-scheduler:8786', None),
    'own certificates': attempt('tls://dask-scheduler:8786', Security.temporary()),
    'the client certificate': attempt('tls://dask-scheduler:8786', certs),
}))" 2>"$LOGS/nodes-client.log" | tail -1)
log "a client in a container on ${NODES[1]}: $verdicts"
"$PYTHON" -c "
import json, sys
v = json.loads(sys.argv[1])
ok = v['plain tcp'].startswith('refused') and v['own certificates'].startswith('refused')
sys.exit(0 if ok and v['the client certificate'].startswith('ran on') else 1)" "$verdicts" \
  || fail "the scheduler did not refuse a client without the certificate, or refused it with"
REFUSED=true
phase "clients with and without the certificate"
