#!/usr/bin/env bash
# Regenerates every parity fixture under test/fixtures/parity (models, tiny-random-gpt2 references, adapters,
# manifest.json). Creates tools/parity/.venv first if it is missing. Deterministic: a second run rewrites the same
# bytes (only manifest.json's generated_at changes).
#
#   bash tools/parity/regenerate.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ ! -x "$HERE/.venv/bin/python" ]; then
  bash "$HERE/setup.sh"
fi
"$HERE/.venv/bin/python" "$HERE/generate_models.py"
"$HERE/.venv/bin/python" "$HERE/generate_adapters.py"
du -sh "$HERE/../../test/fixtures/parity"
