#!/usr/bin/env bash
# Creates tools/parity/.venv (git-ignored) and installs tools/parity/requirements.txt into it.
#
#   bash tools/parity/setup.sh            # from the repository root (or anywhere)
#
# Only needed to regenerate the parity fixtures; CI and the TypeScript tests never run Python.
#
# About torch: the Linux x86_64 wheel on PyPI is a CUDA build. Installed with --no-deps (only its pure-Python
# deps), `import torch` fails (libtorch_global_deps.so needs libcudart.so.13, libcublasLt, ...), so torch is
# installed WITH its dependencies: the nvidia-* / cuda-toolkit wheels and triton come along (about 4-5 GB in the
# venv, a few minutes to download and unpack). The fixtures are computed on the CPU only; CUDA is never used.
# download.pytorch.org (the CPU-only wheels) is not reachable from this project's machines, so PyPI it is.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; assert sys.version_info[:2] >= (3, 11), "Python >= 3.11 needed (transformers 5.x)"'
if [ ! -x "$HERE/.venv/bin/python" ]; then
  "$PY" -m venv "$HERE/.venv"
fi
"$HERE/.venv/bin/python" -m pip install --upgrade "pip>=24" >/dev/null
"$HERE/.venv/bin/python" -m pip install -r "$HERE/requirements.txt"
"$HERE/.venv/bin/python" - <<'PY'
import torch, transformers, peft, safetensors, numpy, sys
print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__,
      "peft", peft.__version__, "safetensors", safetensors.__version__, "numpy", numpy.__version__)
PY
