#!/usr/bin/env bash
# Start a local Chronik cluster the way the deployment guide starts one:
# node N listens and advertises on 127.0.0.N:9092 with its Raft port on
# 127.0.0.N:9093, reads ./<dir>/nodeN-cluster.toml and keeps its data in
# ./<dir>/nodeN. Logs go to <dir>/nodeN.log, pids to <dir>/nodeN.pid.
#
#   scripts/cluster-up.sh [-n NODES] [-d DIR] [-p KAFKA_PORT] [-r RAFT_PORT]
#   scripts/cluster-up.sh -s N     # (re)start only node N of an existing cluster
#
# Stop it with scripts/cluster-down.sh (same -d).
set -euo pipefail

nodes=3 dir=./cluster kafka_port=9092 raft_port=9093 only=""
while getopts "n:d:p:r:s:h" opt; do
	case $opt in
	n) nodes=$OPTARG ;;
	d) dir=$OPTARG ;;
	p) kafka_port=$OPTARG ;;
	r) raft_port=$OPTARG ;;
	s) only=$OPTARG ;;
	*) sed -n '2,12p' "$0"; exit 2 ;;
	esac
done
bin=${CHRONIK_SERVER_BIN:-$(dirname "$0")/../bin/chronik-server}
if [[ ! -x $bin ]]; then
	echo "cluster-up: $bin not found; run 'make build' first" >&2
	exit 1
fi
mkdir -p "$dir"

write_config() { # node id
	local f="$dir/node$1-cluster.toml"
	[[ -f $f ]] && return
	{
		echo "enabled = true"
		echo "node_id = $1"
		echo "replication_factor = 3"
		echo "min_insync_replicas = 2"
		for i in $(seq 1 "$nodes"); do
			printf '\n[[peers]]\nid = %d\naddr = "127.0.0.%d:%d"\nraft_port = %d\n' "$i" "$i" "$kafka_port" "$raft_port"
		done
	} >"$f"
}

start() { # node id
	local n=$1
	if [[ -f $dir/node$n.pid ]] && kill -0 "$(cat "$dir/node$n.pid")" 2>/dev/null; then
		echo "node $n already running (pid $(cat "$dir/node$n.pid"))"
		return
	fi
	write_config "$n"
	CHRONIK_CLUSTER_CONFIG="$dir/node$n-cluster.toml" \
	CHRONIK_BIND_ADDR="127.0.0.$n" \
	CHRONIK_ADVERTISED_ADDR="127.0.0.$n" \
	CHRONIK_KAFKA_PORT="$kafka_port" \
	CHRONIK_DATA_DIR="$dir/node$n" \
		nohup "$bin" standalone >>"$dir/node$n.log" 2>&1 &
	echo $! >"$dir/node$n.pid"
	echo "node $n started (pid $!), log $dir/node$n.log"
}

wait_ready() { # node id
	local deadline=$((SECONDS + 60))
	until curl -sf "http://127.0.0.$1:$kafka_port/health/ready" >/dev/null; do
		if ! kill -0 "$(cat "$dir/node$1.pid")" 2>/dev/null; then
			echo "node $1 exited; last log lines:" >&2
			tail -n 20 "$dir/node$1.log" >&2
			exit 1
		fi
		if ((SECONDS > deadline)); then
			echo "node $1 not ready after 60 s; see $dir/node$1.log" >&2
			exit 1
		fi
		sleep 0.2
	done
	echo "node $1 ready on 127.0.0.$1:$kafka_port"
}

if [[ -n $only ]]; then
	start "$only"
	wait_ready "$only"
	exit 0
fi
for i in $(seq 1 "$nodes"); do start "$i"; done
for i in $(seq 1 "$nodes"); do wait_ready "$i"; done
