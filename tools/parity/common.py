"""Shared helpers of the parity fixture generators (generate_models.py, generate_adapters.py).

Everything here runs on the CPU in float32 (float64 only for the stability checks), deterministically.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

# PEFT stores target_modules as a set: with Python's per-process string hash randomisation its order in
# adapter_config.json would change on every run. Re-exec once with a fixed hash seed so fixtures are byte-stable.
if os.environ.get("PYTHONHASHSEED") != "0" and __name__ != "__main__":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "test" / "fixtures" / "parity"

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)  # single-threaded CPU kernels: identical bits on every run/machine shape


def versions() -> dict[str, str]:
    import peft
    import safetensors
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
    }


def is_norm(module: torch.nn.Module) -> bool:
    name = type(module).__name__
    return isinstance(module, (torch.nn.LayerNorm, torch.nn.GroupNorm)) or name.endswith("RMSNorm") or name.endswith("LayerNorm")


@torch.no_grad()
def reinit_(model: torch.nn.Module, seed: int, std: float = 0.2) -> None:
    """Overwrites every parameter (in named_parameters() order) with N(0, std^2) noise from a seeded generator;
    the weight of a norm layer (LayerNorm / RMSNorm) gets 1 + N(0, std^2) instead so activations keep a sane
    scale. Biases, norm biases, embeddings (padding rows included) are all non-trivial."""
    gen = torch.Generator().manual_seed(seed)
    norm_weights = set()
    for _, m in model.named_modules():
        if is_norm(m) and getattr(m, "weight", None) is not None:
            norm_weights.add(id(m.weight))
    for _, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=gen, dtype=torch.float32) * std
        p.copy_((1.0 + noise) if id(p) in norm_weights else noise)


def module_tree(model: torch.nn.Module, checkpoint_file: Path | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "modules": [{"name": n, "class": type(m).__name__} for n, m in model.named_modules()],
        "parameters": [{"name": n, "shape": list(p.shape)} for n, p in model.named_parameters()],
        "buffers": [{"name": n, "shape": list(b.shape)} for n, b in model.named_buffers()],
    }
    if checkpoint_file is not None and checkpoint_file.exists():
        from safetensors import safe_open

        with safe_open(str(checkpoint_file), "pt") as f:
            keys = list(f.keys())
            out["checkpoint_keys"] = [
                {"name": k, "shape": list(f.get_slice(k).get_shape()), "dtype": f.get_slice(k).get_dtype()}
                for k in keys
            ]
    return out


def _dump(obj: Any, indent: int) -> str:
    """JSON with dicts and lists of containers indented, lists of scalars (token rows, shapes) on one line."""
    pad = " " * indent
    if isinstance(obj, (dict, list, tuple)):
        flat = json.dumps(obj)
        if len(flat) + indent <= 118:
            return flat
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f'{pad} {json.dumps(str(k))}: {_dump(v, indent + 1)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)):
        if all(not isinstance(x, (dict, list, tuple)) for x in obj):
            return "[" + ", ".join(json.dumps(x) for x in obj) + "]"
        items = [pad + " " + _dump(x, indent + 1) for x in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj)


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = _dump(obj, 0)
    assert json.loads(text) == json.loads(json.dumps(obj))
    with open(path, "w") as f:
        f.write(text + "\n")


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str] | None = None) -> None:
    clean = {}
    for k, v in tensors.items():
        v = v.detach().cpu().contiguous()
        if v.is_floating_point():
            assert torch.isfinite(v).all(), f"non-finite values in {k}"
            v = v.to(torch.float32)
        elif v.dtype == torch.bool:
            v = v.to(torch.int64)
        else:
            v = v.to(torch.int64)
        clean[k] = v.clone()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(clean, str(path), metadata=meta or {"format": "pt"})


def max_abs_diff(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    d = (a.double() - b.double()).abs()
    if mask is not None:
        d = d * mask.double()
    return float(d.max()) if d.numel() else 0.0


def rel_path(p: Path) -> str:
    return os.path.relpath(p, REPO)


def double_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A float64 copy for stability checks. It runs SDPA attention: eager attention in float64 turns the rows of
    fully masked (pad) queries into NaN (finfo.min + finfo.min = -inf), and 0 * NaN then leaks into real tokens
    through the values of the next layer; in float32 eager gives finite (uniform) rows, as recorded."""
    m = copy.deepcopy(model).to(torch.float64)
    if hasattr(m, "set_attn_implementation"):
        m.set_attn_implementation("sdpa")
    m.eval()
    return m
