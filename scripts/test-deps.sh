#!/usr/bin/env bash
# Installs what the end-to-end tests drive: kcat, Debian's
# python3-confluent-kafka (imported by /usr/bin/python3), and kafkajs
# (with Node.js and npm from Debian where the machine has none), at the
# version tests/e2e/testdata/kafkajs/package-lock.json pins. Skips what
# is there.
set -euo pipefail
need=()
command -v kcat >/dev/null 2>&1 || need+=(kcat)
/usr/bin/python3 -c 'import confluent_kafka' >/dev/null 2>&1 || need+=(python3-confluent-kafka)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	echo "installing test dependencies: ${need[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
kjs="$(dirname "$0")/../tests/e2e/testdata/kafkajs"
if [ ! -f "$kjs/node_modules/kafkajs/package.json" ]; then
	echo "installing kafkajs"
	npm ci --prefix "$kjs" --no-audit --no-fund --loglevel=error
fi
