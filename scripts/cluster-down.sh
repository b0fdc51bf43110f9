#!/usr/bin/env bash
# Stop the nodes scripts/cluster-up.sh started: SIGTERM (each node hands its
# leaderships over first). A node still running after 30 s gets SIGQUIT,
# which writes every goroutine's stack to its log, then SIGKILL.
#
#   scripts/cluster-down.sh [-d DIR] [-k] [-s N]
#     -k        kill -9 at once
#     -s N      only node N
#     --purge   (as last argument) also delete DIR
set -euo pipefail

dir=./cluster sig=TERM only="" purge=""
[[ ${!#:-} == --purge ]] && { purge=1; set -- "${@:1:$#-1}"; }
while getopts "d:ks:h" opt; do
	case $opt in
	d) dir=$OPTARG ;;
	k) sig=KILL ;;
	s) only=$OPTARG ;;
	*) sed -n '2,8p' "$0"; exit 2 ;;
	esac
done

pids=()
for f in "$dir"/node*.pid; do
	[[ -f $f ]] || continue
	n=${f##*/node}; n=${n%.pid}
	[[ -n $only && $n != "$only" ]] && continue
	pid=$(cat "$f")
	if kill -0 "$pid" 2>/dev/null; then
		kill -s "$sig" "$pid"
		pids+=("$pid")
		echo "node $n: sent SIG$sig to $pid"
	fi
	rm -f "$f"
done
deadline=$((SECONDS + 30))
for pid in "${pids[@]}"; do
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS > deadline)); then
			kill -QUIT "$pid" 2>/dev/null || true
			sleep 2
			kill -KILL "$pid" 2>/dev/null || true
			echo "pid $pid did not stop in 30 s: killed; its goroutines are at the end of its log (SIGQUIT)"
		fi
		sleep 0.1
	done
done
[[ -n $purge ]] && rm -rf "$dir"
exit 0
