#!/usr/bin/env bash
# health_check.sh - verify Chronik cluster health from each node's /metrics.
#
#   scripts/health_check.sh [host[:port] ...]
#
# Nodes come from the arguments, else from CHRONIK_NODES (space or comma
# separated), else the local three-node cluster: 127.0.0.1, 127.0.0.2 and
# 127.0.0.3. A node without a port uses $PORT (default 9092), the Kafka port
# that also serves /metrics and the admin API.
#
# For each node it prints whether it is reachable, whether it leads __meta
# (LEADER or FOLLOWER) and its __meta commit index; then whether enough
# nodes answer for a __meta quorum. When chronikctl is on PATH (or built
# into the repo's bin/, or named by $CHRONIKCTL), it also prints
# `chronikctl cluster status`.
#
# Exit status: 0 healthy, 1 degraded (a node unreachable, no leader, no
# quorum, or chronikctl reports a problem).
set -uo pipefail

PORT=${PORT:-9092}
TIMEOUT=${CHRONIK_HEALTH_TIMEOUT:-2}

if [ $# -gt 0 ]; then
	NODES=("$@")
elif [ -n "${CHRONIK_NODES:-}" ]; then
	read -r -a NODES <<<"${CHRONIK_NODES//,/ }"
else
	NODES=(127.0.0.1 127.0.0.2 127.0.0.3)
fi

# addr NODE: host:port for NODE, adding $PORT when it has none.
addr() {
	case $1 in
	\[*\]:*) echo "$1" ;;
	*:*:*) echo "[$1]:$PORT" ;; # bare IPv6
	*:*) echo "$1" ;;
	*) echo "$1:$PORT" ;;
	esac
}

# metric TEXT NAME [meta]: the value of the first sample of NAME in the
# Prometheus text TEXT; with "meta", the sample labelled topic="__meta",
# partition="0" in either label order.
metric() {
	awk -v name="$2" -v meta="${3:-}" '
		/^#/ { next }
		{
			split($1, parts, "{")
			if (parts[1] != name) next
			if (meta != "" && !($1 ~ /topic="__meta"/ && $1 ~ /partition="0"/)) next
			print $NF
			exit
		}' <<<"$1"
}

echo "Checking Chronik cluster health..."
echo ""

reachable=0
leaders=0
quorum=""
size=""
first=""
status=0
for node in "${NODES[@]}"; do
	a=$(addr "$node")
	echo "Node: $a"
	if ! body=$(curl -sf --connect-timeout "$TIMEOUT" --max-time "$((TIMEOUT * 2))" "http://$a/metrics"); then
		echo "  ❌ NOT REACHABLE"
		echo ""
		status=1
		continue
	fi
	reachable=$((reachable + 1))
	[ -n "$first" ] || first=$a

	is_leader=$(metric "$body" raft_is_leader meta)
	if [ "$is_leader" = "1" ]; then
		echo "  ✅ LEADER"
		leaders=$((leaders + 1))
	else
		echo "  ✅ FOLLOWER"
	fi
	echo "  Commit Index: $(metric "$body" raft_commit_index meta)"
	echo "  Applied Index: $(metric "$body" raft_applied_index meta)"

	# Take the quorum and cluster size from the first node that has them.
	[ -n "$quorum" ] || quorum=$(metric "$body" cluster_quorum_size)
	[ -n "$size" ] || size=$(metric "$body" cluster_size)
	echo ""
done

total=${size:-${#NODES[@]}}
needed=${quorum:-$((total / 2 + 1))}
echo "Cluster Quorum: $reachable/$total nodes reachable ($needed needed)"
if [ "$reachable" -ge "$needed" ] && [ "$leaders" -ge 1 ]; then
	echo "✅ QUORUM HEALTHY"
elif [ "$reachable" -ge "$needed" ]; then
	echo "❌ NO __meta LEADER"
	status=1
else
	echo "❌ QUORUM LOST"
	status=1
fi

# CHRONIKCTL names the binary; "none" skips it.
ctl=${CHRONIKCTL:-$(command -v chronikctl || true)}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ -n "$ctl" ] || { [ -x "$root/bin/chronikctl" ] && ctl=$root/bin/chronikctl; }
[ "$ctl" != none ] || ctl=""
if [ -n "$ctl" ] && [ -n "$first" ]; then
	echo ""
	echo "chronikctl cluster status (via $first):"
	"$ctl" --server "$first" --timeout "${TIMEOUT}s" cluster status || status=1
fi
exit "$status"
