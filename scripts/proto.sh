#!/usr/bin/env bash
# proto.sh - lint the .proto sources and generate the committed Go code.
#
#   scripts/proto.sh generate   install the pinned tools if missing, lint, generate
#   scripts/proto.sh check      the same, then fail if proto/gen differs from git
#
# The tools are installed with `go install` at pinned versions into a
# repo-local bin dir ($CHRONIK_TOOLS_BIN, default <repo>/bin), so a fresh
# machine needs nothing but Go. Building buf takes a few minutes; to keep
# `make test` fast, `check` skips (exit 0) when the tools are not installed
# yet, unless CHRONIK_PROTO_CHECK=1 asks for them to be installed.
set -euo pipefail

BUF_VERSION=v1.75.0
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_CONNECT_GO_VERSION=v1.21.1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_BIN=${CHRONIK_TOOLS_BIN:-$ROOT/bin}
export PATH="$TOOLS_BIN:$PATH"

usage() {
	echo "usage: $0 generate|check" >&2
	exit 2
}

# tool_ok NAME VERSION: the binary is in TOOLS_BIN and reports VERSION.
tool_ok() {
	local name=$1 want=$2 got
	[ -x "$TOOLS_BIN/$name" ] || return 1
	# buf and protoc-gen-connect-go print "1.2.3", protoc-gen-go "protoc-gen-go v1.2.3".
	got=$("$TOOLS_BIN/$name" --version 2>/dev/null | awk '{print $NF}') || return 1
	[ "${got#v}" = "${want#v}" ]
}

tools_ok() {
	tool_ok buf "$BUF_VERSION" &&
		tool_ok protoc-gen-go "$PROTOC_GEN_GO_VERSION" &&
		tool_ok protoc-gen-connect-go "$PROTOC_GEN_CONNECT_GO_VERSION"
}

# install_tool NAME PACKAGE VERSION: go install PACKAGE@VERSION unless present.
install_tool() {
	local name=$1 pkg=$2 version=$3
	if tool_ok "$name" "$version"; then
		return
	fi
	echo "proto.sh: installing $pkg@$version into $TOOLS_BIN" >&2
	mkdir -p "$TOOLS_BIN"
	# Outside the workspace so the tools' own go.mod decides their deps.
	(cd "$TOOLS_BIN" && GOWORK=off GOBIN="$TOOLS_BIN" \
		go install "$pkg@$version")
}

install_tools() {
	install_tool protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
	install_tool protoc-gen-connect-go connectrpc.com/connect/cmd/protoc-gen-connect-go "$PROTOC_GEN_CONNECT_GO_VERSION"
	install_tool buf github.com/bufbuild/buf/cmd/buf "$BUF_VERSION"
}

generate() {
	cd "$ROOT"
	buf lint
	buf generate
	gofmt -l proto/gen | { ! grep . ; } || {
		echo "proto.sh: generated code is not gofmt-clean" >&2
		return 1
	}
}

check() {
	cd "$ROOT"
	generate
	# Untracked generated files (a new .proto not yet committed) count too.
	local untracked
	untracked=$(git ls-files --others --exclude-standard -- proto/gen)
	if ! git diff --exit-code -- proto/gen || [ -n "$untracked" ]; then
		if [ -n "$untracked" ]; then
			while read -r f; do echo "untracked: $f" >&2; done <<<"$untracked"
		fi
		echo "proto.sh: proto/gen is out of date; run 'make proto' and commit the result" >&2
		return 1
	fi
	echo "proto.sh: proto/gen is up to date"
}

[ $# -eq 1 ] || usage
case $1 in
generate)
	install_tools
	generate
	;;
check)
	if [ "${CHRONIK_PROTO_CHECK:-}" != 1 ] && ! tools_ok; then
		echo "proto.sh: check skipped: buf $BUF_VERSION, protoc-gen-go $PROTOC_GEN_GO_VERSION and" \
			"protoc-gen-connect-go $PROTOC_GEN_CONNECT_GO_VERSION are not all in $TOOLS_BIN" \
			"(run 'make proto' once, or set CHRONIK_PROTO_CHECK=1 to install them now)"
		exit 0
	fi
	install_tools
	check
	;;
*) usage ;;
esac
