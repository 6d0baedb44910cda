#!/usr/bin/env bash
# The contract check CI runs (`make contract`): `buf lint` on proto/, and `buf breaking` against the contract
# of a base commit (default: cd23260, the last commit before the structured-output/cascade round).
# Usage: scripts/check_contract.sh BUF [BASE]. BASE must be in this clone's history: a shallow clone lacks it,
# and the check then fails, saying so, rather than passing without comparing anything.
set -euo pipefail
cd "$(dirname "$0")/.."
buf=${1:?usage: scripts/check_contract.sh BUF [BASE]}
base=${2:-cd23260}

if ! git rev-parse --verify --quiet "${base}^{commit}" >/dev/null; then
  echo "contract: base commit ${base} is not in this clone; buf breaking needs it." >&2
  if [ "$(git rev-parse --is-shallow-repository)" = "true" ]; then
    echo "contract: this is a shallow clone: run 'git fetch --unshallow' first." >&2
  fi
  exit 1
fi

"$buf" lint proto
echo "contract: buf lint passed"

against=$(mktemp -d)
trap 'rm -rf "$against"' EXIT
git archive "$base" proto | tar -x -C "$against"
# The base's buf.yaml (absent before cd23260's successor) does not matter: breaking uses proto/buf.yaml's rules.
"$buf" breaking proto --against "$against/proto"
echo "contract: buf breaking passed against ${base}"
