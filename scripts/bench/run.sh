#!/usr/bin/env bash
# Builds chronik-server and runs the benchmark driver from the repository
# root; every argument goes to the driver (--quick for the CI smoke run,
# --help for the rest). Results land in bench-results/ (git-ignored).
#
# A server that does not build is not the benchmark's failure: the driver
# then runs kfake alone and reports standalone and cluster as not
# available, with the build's last error line as the reason.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
go="${GO:-go}"
mkdir -p bin bench-results

build_log="bench-results/build.log"
server_args=(--server-bin bin/chronik-server)
# Build beside the old binary and move it into place only on success, so a
# stale build is never measured.
if "$go" build -o bin/chronik-server.bench-tmp ./dataplane/cmd/chronik-server >"$build_log" 2>&1; then
	mv bin/chronik-server.bench-tmp bin/chronik-server
else
	rm -f bin/chronik-server.bench-tmp
	reason="chronik-server does not build: $(grep -v '^#' "$build_log" | head -n 1)"
	echo "run.sh: $reason (full log: $build_log)" >&2
	server_args=(--no-server "$reason")
fi

exec "$go" run ./tests/bench/cmd/chronik-bench "${server_args[@]}" "$@"
