#!/usr/bin/env bash
# Reverse-direction parity: adapters created and saved by peft-ts load in Python PEFT and give the same outputs.
#
#   bash tools/parity/reverse/check.sh                 # every case
#   bash tools/parity/reverse/check.sh lora-linear ... # only these cases
#
# 1. npx tsx tools/parity/reverse/export.ts <out>: peft-ts builds each adapter on a fixture base model, saves it, and
#    records its outputs (<out>/<case>/ts_outputs.safetensors, case.json).
# 2. tools/parity/.venv/bin/python tools/parity/reverse/check.py <out>: PEFT loads each folder and compares; prints
#    a table; exits 1 on any failure.
#
# <out> is a fresh temporary folder (kept, its path is printed), or $PEFT_TS_REVERSE_OUT if set. The Python venv is
# tools/parity/.venv (git-ignored): created here with tools/parity/setup.sh when missing (about 5.6 GB, a few
# minutes; see tools/parity/README.md). Needs `npm install` done (tsx). Never touches the repository's files.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
PY="$REPO/tools/parity/.venv/bin/python"
if [ ! -x "$PY" ]; then
  echo "tools/parity/.venv is missing: creating it with tools/parity/setup.sh" >&2
  bash "$REPO/tools/parity/setup.sh"
fi
OUT="${PEFT_TS_REVERSE_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/peft-ts-reverse.XXXXXX")}"
mkdir -p "$OUT"
cd "$REPO"
echo "== export (peft-ts) -> $OUT"
npx --no-install tsx "$HERE/export.ts" "$OUT" "$@"
echo "== check (Python PEFT)"
status=0
"$PY" "$HERE/check.py" "$OUT" "$@" --json "$OUT/results.json" || status=$?
echo "exported adapters, outputs and results.json kept in $OUT"
exit "$status"
