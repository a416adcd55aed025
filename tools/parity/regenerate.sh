#!/usr/bin/env bash
# Regenerates every parity fixture under test/fixtures/parity (models, tiny-random-gpt2 references, adapters,
# manifest.json), and the ONNX encoder references under test/fixtures/onnx. Creates tools/parity/.venv first if it is
# missing, and tools/parity/.venv-onnx (onnx + onnxruntime only). Deterministic: a second run rewrites the same
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
if [ ! -x "$HERE/.venv-onnx/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$HERE/.venv-onnx"
  "$HERE/.venv-onnx/bin/python" -m pip install onnx==1.23.1 onnxruntime==1.30.0
fi
"$HERE/.venv-onnx/bin/python" "$HERE/generate_onnx_fixtures.py"
du -sh "$HERE/../../test/fixtures/parity" "$HERE/../../test/fixtures/onnx"
