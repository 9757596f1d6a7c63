#!/usr/bin/env bash
# A real Ray cluster on this machine's loopback, for tests, benchmarks and trying `finepose
# prelabel --ray` without a cluster: a head on 127.0.0.2 and further nodes on 127.0.0.3, ...
# (Ray takes "127.0.0.1" to mean "this machine, reachable from other machines" and swaps in
# the host's network address, by design; any other 127.x address it uses as given), each node
# with CPUS_PER_NODE logical CPUs. Token authentication is on, with a token of this cluster's
# own (Ray 2.60 turns it on by default; its nodes and drivers must share the token).
#
#   scripts/ray_local_cluster.sh start    # prints the environment a driver needs: eval "$(...)"
#   scripts/ray_local_cluster.sh stop     # stops this cluster's nodes (not other Ray processes)
#
# Settings (environment): NODES (2), CPUS_PER_NODE (1), RAY_PORT (6390), RAY_CLUSTER_DIR
# (.ray-cluster: token, logs, pids), RAY (the ray command, a path; default .venv/bin/ray, whose
# folder's python also runs the readiness check).
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${NODES:-2}
CPUS_PER_NODE=${CPUS_PER_NODE:-1}
RAY_PORT=${RAY_PORT:-6390}
DIR=$(mkdir -p "${RAY_CLUSTER_DIR:-.ray-cluster}" && cd "${RAY_CLUSTER_DIR:-.ray-cluster}" && pwd)
RAY=${RAY:-.venv/bin/ray}
RAY=$(command -v "$RAY")  # a path, also when given as a name on PATH
HEAD=127.0.0.2

stop() {
  [ -f "$DIR/pids" ] || return 0
  while read -r pid; do kill -TERM -- "-$pid" 2>/dev/null || true; done < "$DIR/pids"
  for _ in $(seq 1 50); do
    alive=0
    while read -r pid; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done < "$DIR/pids"
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  while read -r pid; do kill -KILL -- "-$pid" 2>/dev/null || true; done < "$DIR/pids"
  rm -f "$DIR/pids"
  # `ray start --head` names its cluster the machine's current one; `ray stop` would forget it
  current=/tmp/ray/ray_current_cluster
  if [ -f "$DIR/address" ] && [ "$(cat "$current" 2>/dev/null)" = "$(cat "$DIR/address")" ]; then rm -f "$current"; fi
}

wait_for_nodes() {  # until the cluster counts $1 live nodes (60 checks; at once if a node's command ended)
  for _ in $(seq 1 60); do
    while read -r pid; do
      kill -0 "$pid" 2>/dev/null || { echo "a Ray node did not start; see $DIR/node-*.log" >&2; return 1; }
    done < "$DIR/pids"
    if RAY_ADDRESS="$HEAD:$RAY_PORT" timeout 20 "$(dirname "$RAY")/python" - "$1" <<'PY' 2>/dev/null; then return 0; fi
import sys, ray
ray.init(address="auto", log_to_driver=False, logging_level="ERROR")
alive = sum(1 for node in ray.nodes() if node["Alive"])
sys.exit(0 if alive >= int(sys.argv[1]) else 1)
PY
    sleep 0.2
  done
  echo "the Ray cluster did not reach $1 nodes; see $DIR/*.log" >&2
  return 1
}

case "${1:-}" in
  start)
    stop
    [ -s "$DIR/token" ] || (umask 077; "$(dirname "$RAY")/python" -c "import secrets; print(secrets.token_hex(32), end='')" > "$DIR/token")
    export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="$DIR/token"
    common=(--num-cpus "$CPUS_PER_NODE" --num-gpus 0 --disable-usage-stats --block)
    setsid "$RAY" start --head --node-ip-address "$HEAD" --port "$RAY_PORT" --include-dashboard false \
      "${common[@]}" > "$DIR/node-1.log" 2>&1 < /dev/null &
    echo $! > "$DIR/pids"
    echo "$HEAD:$RAY_PORT" > "$DIR/address"
    wait_for_nodes 1
    for n in $(seq 2 "$NODES"); do
      setsid "$RAY" start --address "$HEAD:$RAY_PORT" --node-ip-address "127.0.0.$((n + 1))" \
        "${common[@]}" > "$DIR/node-$n.log" 2>&1 < /dev/null &
      echo $! >> "$DIR/pids"
    done
    wait_for_nodes "$NODES"
    echo "export RAY_ADDRESS=$HEAD:$RAY_PORT RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=$DIR/token"
    ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
