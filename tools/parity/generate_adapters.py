"""Builds PEFT adapters (LoRA, DoRA, LoHa, X-LoRA) with fixed seeds on the tiny parity models, saves them with
PEFT's save_pretrained, and records reference outputs for the TypeScript parity tests.

    tools/parity/.venv/bin/python tools/parity/generate_adapters.py              # everything
    tools/parity/.venv/bin/python tools/parity/generate_adapters.py lora-gpt2    # only these fixtures

Needs the base models of test/fixtures/parity/models (generate_models.py); writes test/fixtures/parity/models/
tiny-convnet (the custom conv base of the LoHa conv fixtures), test/fixtures/parity/adapters/<name>/ and the
"adapters" part of test/fixtures/parity/manifest.json. See tools/parity/README.md for the layout and key names.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import re
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    FIXTURES,
    max_abs_diff,
    rel_path,
    save_tensors,
    versions,
    write_json,
)

import transformers  # noqa: E402
from peft import (  # noqa: E402
    LoHaConfig,
    LoraConfig,
    PeftModel,
    TaskType,
    XLoraConfig,
    get_peft_model,
)
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification  # noqa: E402

transformers.logging.set_verbosity_error()

MODELS = FIXTURES / "models"
ADAPTERS = FIXTURES / "adapters"
ATTN = "eager"
MAX_NEW = 8
XLORA_CLASSIFIER_STD = 0.2


# --------------------------------------------------------------------------------------------------------------
# the custom conv base model (mirror this exactly in TS: see README "tiny-convnet")
# --------------------------------------------------------------------------------------------------------------

class TinyConvNet(nn.Module):
    """x [B, 4, 16] -> conv1d (Conv1d 4->8, k 3, pad 1) -> relu -> reshape [B, 8, 4, 4]
    -> conv2d (Conv2d 8->8, k 3x3, pad 1) -> relu -> conv2d_1x1 (Conv2d 8->6, k 1x1) -> flatten (C, H, W order) [B, 96]
    -> linear (Linear 96->5) -> logits [B, 5]. All layers have biases; relu is F.relu (no module)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1d = nn.Conv1d(4, 8, kernel_size=3, padding=1)
        self.conv2d = nn.Conv2d(8, 8, kernel_size=3, padding=1)
        self.conv2d_1x1 = nn.Conv2d(8, 6, kernel_size=1)
        self.linear = nn.Linear(96, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv1d(x))
        h = h.reshape(x.shape[0], 8, 4, 4)
        h = F.relu(self.conv2d(h))
        h = self.conv2d_1x1(h)
        return self.linear(h.flatten(1))


TINY_CONVNET_CONFIG = {
    "architecture": "TinyConvNet",
    "description": TinyConvNet.__doc__.replace("\n    ", " "),
    "input_shape": [2, 4, 16],
    "layers": {
        "conv1d": {"type": "Conv1d", "in_channels": 4, "out_channels": 8, "kernel_size": 3, "stride": 1, "padding": 1,
                   "bias": True},
        "conv2d": {"type": "Conv2d", "in_channels": 8, "out_channels": 8, "kernel_size": [3, 3], "stride": 1,
                   "padding": 1, "bias": True},
        "conv2d_1x1": {"type": "Conv2d", "in_channels": 8, "out_channels": 6, "kernel_size": [1, 1], "stride": 1,
                       "padding": 0, "bias": True},
        "linear": {"type": "Linear", "in_features": 96, "out_features": 5, "bias": True},
    },
}


def build_tiny_convnet() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    out_dir = MODELS / "tiny-convnet"
    torch.manual_seed(3000)
    model = TinyConvNet()
    gen = torch.Generator().manual_seed(3000)
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    model.eval()
    x = torch.randn(2, 4, 16, generator=torch.Generator().manual_seed(3001))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out_dir / "model.safetensors"),
              metadata={"format": "pt"})
    write_json(out_dir / "config.json", TINY_CONVNET_CONFIG)
    with torch.no_grad():
        y = model(x)
    save_tensors(out_dir / "reference.safetensors", {"x": x, "logits": y})
    write_json(out_dir / "modules.json", tree(model))
    return model, {"x": x}


def load_tiny_convnet() -> nn.Module:
    model = TinyConvNet()
    model.load_state_dict(load_file(str(MODELS / "tiny-convnet" / "model.safetensors")))
    model.name_or_path = rel_path(MODELS / "tiny-convnet")  # read by PEFT for base_model_name_or_path
    return model.eval()


# --------------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------------

def tree(model: nn.Module) -> dict[str, Any]:
    return {
        "modules": [{"name": n, "class": type(m).__name__} for n, m in model.named_modules()],
        "parameters": [{"name": n, "shape": list(p.shape)} for n, p in model.named_parameters()],
    }


def load_base(name: str) -> nn.Module:
    if name == "tiny-convnet":
        return load_tiny_convnet()
    path = str(MODELS / name)
    cfg = json.loads((MODELS / name / "config.json").read_text())
    arch = cfg["architectures"][0]
    if arch.endswith("ForCausalLM") or arch.endswith("LMHeadModel"):
        cls = AutoModelForCausalLM
    elif arch.endswith("ForSequenceClassification"):
        cls = AutoModelForSequenceClassification
    else:
        cls = AutoModel
    m = cls.from_pretrained(path, attn_implementation=ATTN, dtype=torch.float32)
    # repo-relative, so adapter_config.json's base_model_name_or_path carries no machine path
    m.name_or_path = rel_path(MODELS / name)
    return m.eval()


def base_inputs(name: str) -> dict[str, torch.Tensor]:
    if name == "tiny-convnet":
        return {"x": load_file(str(MODELS / name / "reference.safetensors"))["x"]}
    ref = load_file(str(MODELS / name / "reference.safetensors"))
    return {k: ref[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in ref}


def forward(model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        if "x" in inputs:
            return model(inputs["x"])
        out = model(**inputs)
    return out.logits if hasattr(out, "logits") and out.logits is not None else out.last_hidden_state


@torch.no_grad()
def reinit_adapter_(model: nn.Module, seed: int, std: float, dora_jitter: float = 0.2,
                    mts_std: float | None = None) -> list[str]:
    """Overwrites the adapter-owned parameters with seeded noise: LoRA/LoHa factors N(0, std^2); DoRA magnitudes
    m * (1 + N(0, dora_jitter^2)) (at creation m = ||W + s BA|| exactly, which would hide the DoRA normalisation);
    modules_to_save copies get N(0, mts_std^2) added. Returns the names touched (in order)."""
    gen = torch.Generator().manual_seed(seed)
    touched = []
    for name, p in model.named_parameters():
        if "lora_magnitude_vector" in name:
            p.mul_(1.0 + torch.randn(p.shape, generator=gen) * dora_jitter)
        elif any(s in name for s in (".lora_A.", ".lora_B.", "lora_embedding_A", "lora_embedding_B", ".hada_")):
            p.copy_(torch.randn(p.shape, generator=gen) * std)
        elif ".modules_to_save." in name and mts_std is not None:
            p.add_(torch.randn(p.shape, generator=gen) * mts_std)
        else:
            continue
        touched.append(name)
    return touched


def file_keys(path: Path) -> list[dict[str, Any]]:
    with safe_open(str(path), "pt") as f:
        return [{"name": k, "shape": list(f.get_slice(k).get_shape()), "dtype": f.get_slice(k).get_dtype()}
                for k in f.keys()]


def target_weights(model: nn.Module, names: list[str], prefix: str) -> dict[str, torch.Tensor]:
    mods = dict(model.named_modules())
    out = {}
    for n in names:
        w = mods[n].weight
        out[f"{prefix}{n}.weight"] = w.detach().clone()
    return out


def adapted_module_names(peft_model: nn.Module) -> list[str]:
    """Names (relative to the base model, i.e. without base_model.model.) of the modules an adapter wraps."""
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils.other import ModulesToSaveWrapper

    base = peft_model.get_base_model()
    out = []
    for n, m in base.named_modules():
        if isinstance(m, BaseTunerLayer) or isinstance(m, ModulesToSaveWrapper):
            out.append(n)
    return out


GREEDY_MARGINS: list[float] = []


def greedy(model, inputs, eos, pad) -> list[list[int]]:
    """Greedy continuation; appends the smallest top-1 minus top-2 score over unfinished rows to GREEDY_MARGINS."""
    with torch.no_grad():
        out = model.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], do_sample=False,
                             num_beams=1, max_new_tokens=MAX_NEW, eos_token_id=eos, pad_token_id=pad,
                             return_dict_in_generate=True, output_scores=True)
    seqs = out.sequences.tolist()
    plen = inputs["input_ids"].shape[1]
    best = float("inf")
    for step, sc in enumerate(out.scores):
        for row in range(len(seqs)):
            if eos in seqs[row][plen:plen + step]:
                continue
            top = torch.topk(sc[row].double(), 2).values
            best = min(best, float(top[0] - top[1]))
    GREEDY_MARGINS.append(best)
    return seqs


def double(model: nn.Module) -> nn.Module:
    """float64 copy with SDPA attention (eager in float64 turns fully masked pad-query rows into NaN, which leak)."""
    m = copy.deepcopy(model).double()
    for sub in m.modules():
        if isinstance(sub, transformers.PreTrainedModel):
            sub.set_attn_implementation("sdpa")
            break
    return m.eval()


def drop_model_cards(d: Path) -> None:
    """PEFT's save_pretrained also writes a README.md model card (boilerplate, machine paths): not a fixture."""
    for p in d.rglob("README.md"):
        p.unlink()


def fresh_dir(d: Path) -> Path:
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


@contextmanager
def chdir(p: Path):
    old = os.getcwd()
    os.chdir(p)
    try:
        yield
    finally:
        os.chdir(old)


# --------------------------------------------------------------------------------------------------------------
# LoRA / DoRA / LoHa: one adapter (or two named ones) on a base model
# --------------------------------------------------------------------------------------------------------------

def record_standard(name: str, base_name: str, configs: dict[str, Any], seed: int, std: float, description: str,
                    mts_std: float | None = None, active_sets: list[list[str]] | None = None) -> dict[str, Any]:
    """configs: adapter name -> PeftConfig (first one is created with get_peft_model, the rest with add_adapter)."""
    out_dir = fresh_dir(ADAPTERS / name)
    inputs = base_inputs(base_name)
    base = load_base(base_name)
    base_out = forward(base, inputs)
    names = list(configs)
    for c in configs.values():
        pass
    torch.manual_seed(seed)
    model = get_peft_model(base, configs[names[0]], adapter_name=names[0])
    for i, an in enumerate(names[1:]):
        model.add_adapter(an, configs[an])
    touched = reinit_adapter_(model, seed, std, mts_std=mts_std)
    model.eval()
    model.save_pretrained(str(out_dir))
    drop_model_cards(out_dir)

    tensors: dict[str, torch.Tensor] = dict(inputs)
    info: dict[str, Any] = {"fp64_max_abs_diff": {}}
    adapted = adapted_module_names(model)
    cfg = json.loads((MODELS / base_name / "config.json").read_text()) if base_name != "tiny-convnet" else {}
    is_causal = cfg.get("architectures", [""])[0].endswith(("ForCausalLM", "LMHeadModel"))
    gen: dict[str, Any] = {}
    eos, pad = cfg.get("eos_token_id"), cfg.get("pad_token_id")

    # outputs per active adapter set
    if active_sets is None:
        active_sets = [[names[0]]]
    for act in active_sets:
        key = "" if act == [names[0]] and len(active_sets) == 1 else "active." + "+".join(act) + "."
        model.base_model.set_adapter(act if len(act) > 1 else act[0])
        tensors[key + "logits"] = forward(model, inputs)
        m64 = double(model)
        in64 = {k: (v.double() if v.is_floating_point() else v) for k, v in inputs.items()}
        info["fp64_max_abs_diff"][key + "logits"] = max_abs_diff(tensors[key + "logits"], forward(m64, in64),
                                                                 _valid(inputs, tensors[key + "logits"]))
        if is_causal:
            seqs = greedy(model, inputs, eos, pad)
            gen[key + "greedy_padded"] = {"kwargs": {"do_sample": False, "num_beams": 1, "max_new_tokens": MAX_NEW,
                                                     "eos_token_id": eos, "pad_token_id": pad},
                                          "sequences": seqs, "min_top2_margin": GREEDY_MARGINS[-1]}
    model.base_model.set_adapter(names[0])
    with model.disable_adapter():
        tensors["disabled.logits"] = forward(model, inputs)
    assert max_abs_diff(tensors["disabled.logits"], base_out) == 0.0, "disable_adapter() differs from the base model"

    # merged (first adapter only; or each set's merge for multi-adapter fixtures)
    for act in active_sets:
        key = "merged." if len(active_sets) == 1 else "merged." + "+".join(act) + "."
        mm = copy.deepcopy(model)
        mm.base_model.set_adapter(act if len(act) > 1 else act[0])
        merged = mm.merge_and_unload(adapter_names=act)
        tensors[key + "logits"] = forward(merged, inputs)
        # merged weights of the adapted modules outside the decoder stack and in its first block only (size)
        tensors.update(target_weights(merged, [n for n in adapted if _owned(model, n, act) and _first_block(n)], key))
        unmerged = tensors[("" if len(active_sets) == 1 else "active." + "+".join(act) + ".") + "logits"]
        info.setdefault("merged_vs_unmerged_max_abs_diff", {})[key + "logits"] = max_abs_diff(
            tensors[key + "logits"], unmerged, _valid(inputs, unmerged))

    # PEFT's own round trip: fresh base + PeftModel.from_pretrained (+ load_adapter for the others)
    fresh = load_base(base_name)
    loaded = PeftModel.from_pretrained(fresh, str(out_dir), adapter_name=names[0])
    for an in names[1:]:
        loaded.load_adapter(str(out_dir / an), adapter_name=an)
    loaded.eval()
    rt = {}
    for act in active_sets:
        key = "" if len(active_sets) == 1 else "active." + "+".join(act) + "."
        loaded.base_model.set_adapter(act if len(act) > 1 else act[0])
        rt[key + "logits"] = max_abs_diff(forward(loaded, inputs), tensors[key + "logits"])

    save_tensors(out_dir / "reference.safetensors", tensors)
    files = {str(p.relative_to(out_dir)): file_keys(p) for p in sorted(out_dir.rglob("adapter_model.safetensors"))}
    ref = {
        "name": name,
        "description": description,
        "base_model": rel_path(MODELS / base_name),
        "adapter_names": names,
        "adapter_dirs": {an: ("." if an == "default" else an) for an in names},
        "active_sets": active_sets,
        "adapted_modules": adapted,
        "reinitialised_parameters": touched,
        "seed": seed,
        "inputs": {k: v.tolist() for k, v in inputs.items()},
        **({"generation": gen} if gen else {}),
        "adapter_files": files,
        "checks": {"roundtrip_max_abs_diff": rt, "fp64_max_abs_diff": info["fp64_max_abs_diff"],
                   "merged_vs_unmerged_max_abs_diff": info["merged_vs_unmerged_max_abs_diff"],
                   "disabled_equals_base": True},
    }
    write_json(out_dir / "reference.json", ref)
    write_json(out_dir / "modules.json", tree(model))
    problems = [f"round trip differs for {k}: {v}" for k, v in rt.items() if v > 0]
    problems += [f"{k}: greedy top-2 margin {g['min_top2_margin']:.2e} < 1e-3" for k, g in gen.items()
                 if g["min_top2_margin"] < 1e-3]
    return {"path": rel_path(out_dir), "kind": "adapter", "description": description, "problems": problems,
            "tolerance": {"float32_max_abs": 1e-4, "per_key": _tol(info["fp64_max_abs_diff"]), "tokens": "exact"}}


def _owned(model, module_name: str, adapters: list[str]) -> bool:
    base = model.get_base_model()
    m = dict(base.named_modules())[module_name]
    for attr in ("lora_A", "lora_embedding_A", "hada_w1_a", "modules_to_save"):
        d = getattr(m, attr, None)
        if d is not None and any(a in d for a in adapters):
            return True
    return False


def _first_block(module_name: str) -> bool:
    m = re.search(r"\.(\d+)(\.|$)", module_name)
    return m is None or m.group(1) == "0"


def _valid(inputs, out):
    if "attention_mask" in inputs and out.dim() == 3:
        return inputs["attention_mask"].unsqueeze(-1)
    return None


def _tol(fp64: dict[str, float]) -> dict[str, float]:
    import math

    tol = {}
    for k, d in fp64.items():
        need = d * 10
        if need > 1e-4:
            e = math.floor(math.log10(need))
            for m in (1, 2, 5, 10):
                if m * 10 ** e >= need:
                    tol[k] = float(f"{m * 10 ** e:.0e}")
                    break
    return tol


# --------------------------------------------------------------------------------------------------------------
# X-LoRA
# --------------------------------------------------------------------------------------------------------------

def record_xlora(name: str, base_name: str, seed: int, description: str, xcfg: dict[str, Any]) -> dict[str, Any]:
    out_dir = fresh_dir(ADAPTERS / name)
    inputs = base_inputs(base_name)
    problems: list[str] = []
    # 1. three LoRA experts "0", "1", "2" saved as subfolders of the X-LoRA folder
    expert_targets = [["q_proj", "v_proj"], ["q_proj", "v_proj"], ["q_proj", "v_proj"]]
    for i, tm in enumerate(expert_targets):
        base = load_base(base_name)
        torch.manual_seed(seed + i)
        lm = get_peft_model(base, LoraConfig(task_type=TaskType.CAUSAL_LM, r=4, lora_alpha=8, target_modules=tm,
                                             lora_dropout=0.0, init_lora_weights=False))
        reinit_adapter_(lm, seed + 10 + i, 0.2)
        lm.save_pretrained(str(out_dir / str(i)))
    # 2. X-LoRA on a fresh base; expert paths relative to the X-LoRA folder
    base = load_base(base_name)
    base.config.use_cache = False
    config = XLoraConfig(task_type=TaskType.CAUSAL_LM, hidden_size=base.config.hidden_size,
                         adapters={str(i): f"./{i}" for i in range(3)}, **xcfg)
    torch.manual_seed(seed + 100)
    with chdir(out_dir):
        model = get_peft_model(base, config)
    gen = torch.Generator().manual_seed(seed + 200)
    with torch.no_grad():
        cls_params = []
        for n, p in model.named_parameters():
            if "internal_xlora_classifier" in n:
                p.copy_(torch.randn(p.shape, generator=gen) * XLORA_CLASSIFIER_STD)
                cls_params.append(n)
    model.eval()
    # PEFT 0.20+ (pinned 0.21.2 included) X-LoRA save_pretrained is broken, see README: it drops every classifier
    # key containing ".0." / ".1." / ".2." (the internal expert names), i.e. layers.0, and writes junk subfolders
    # 0/ 1/ 2/ (which would overwrite the experts). Record what it writes, then write the classifier file ourselves
    # with the keys PEFT <= 0.19 writes (and 0.21.2 loads, checked by the round trip below).
    tmp = fresh_dir(Path("/tmp") / f"peft-xlora-save-{name}")
    model.save_pretrained(str(tmp))
    peft_saved = {str(p.relative_to(tmp)): [k["name"] for k in file_keys(p)]
                  for p in sorted(tmp.rglob("adapter_model.safetensors"))}
    shutil.rmtree(tmp)
    classifier_sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
                     if "internal_xlora_classifier" in k}
    save_file(classifier_sd, str(out_dir / "adapter_model.safetensors"), metadata={"format": "pt"})
    pcfg = copy.deepcopy(model.peft_config["default"])
    pcfg.inference_mode = True
    pcfg.save_pretrained(str(out_dir))
    missing = sorted(set(classifier_sd) - set(peft_saved.get("adapter_model.safetensors", [])))
    notes = []
    if missing:
        notes.append(f"peft {versions()['peft']} X-LoRA save_pretrained omits {missing}: adapter_model.safetensors "
                     "written by tools/parity/generate_adapters.py with PEFT's key names (see README)")

    tensors: dict[str, torch.Tensor] = dict(inputs)
    with torch.no_grad():
        out = model(**inputs)
    tensors["logits"] = out.logits
    tensors["scalings"] = model.get_latest_scalings()
    xm = model.base_model
    # the scalings each X-LoRA layer applies (after top-k masking / top-k softmax), per layer
    layers = []
    from peft.tuners import lora as lora_mod

    for n, m in xm.lora_model.model.named_modules():
        if isinstance(m, lora_mod.Linear):
            layers.append(n)
    eff = []
    for li, _ in enumerate(layers):
        s = tensors["scalings"][:, :, li, :]
        if config.top_k_lora is not None:
            idx = torch.topk(s, k=config.top_k_lora, dim=-1).indices
            mask = torch.zeros_like(s, dtype=torch.bool).scatter_(-1, idx, True)
            s = s * mask.to(s.dtype)
        if config.enable_softmax_topk:
            nz = s != 0
            s = torch.softmax(s.masked_fill(~nz, float("-inf")), dim=-1).masked_fill(~nz, 0.0)
        eff.append(s)
    tensors["effective_scalings"] = torch.stack(eff, dim=2)
    # top-k robustness: gap between the k-th and (k+1)-th scaling at real tokens
    topk_gap = None
    if config.top_k_lora is not None and config.top_k_lora < 3:
        srt = torch.sort(tensors["scalings"], dim=-1, descending=True).values
        # a near tie between the k-th and (k+1)-th expert only matters when they are not both negligible
        kth = srt[..., config.top_k_lora - 1]
        gap = kth - srt[..., config.top_k_lora]
        sel = inputs["attention_mask"].bool().unsqueeze(-1) & (kth > 1e-3)
        topk_gap = float(gap[sel].min()) if sel.any() else None
        if topk_gap is not None and topk_gap < 1e-4:
            problems.append(f"top-k gap {topk_gap:.2e} < 1e-4")
    with model.disable_adapter():
        with torch.no_grad():
            tensors["disabled.logits"] = model(**inputs).logits
    base_only = load_base(base_name)
    base_only.config.use_cache = False  # use_cache changes float32 rounding (~5e-6): compare like with like
    d = max_abs_diff(tensors["disabled.logits"], forward(base_only, inputs))
    if d != 0.0:
        problems.append(f"disable_adapter() output differs from the base model by {d}")
    cfg = json.loads((MODELS / base_name / "config.json").read_text())
    eos, pad = cfg["eos_token_id"], cfg["pad_token_id"]
    greedy_seqs = greedy(model, inputs, eos, pad)
    if GREEDY_MARGINS[-1] < 1e-3:
        problems.append(f"greedy top-2 margin {GREEDY_MARGINS[-1]:.2e} < 1e-3")

    # 3. PEFT's own round trip
    fresh = load_base(base_name)
    fresh.config.use_cache = False
    with chdir(out_dir):
        loaded = PeftModel.from_pretrained(fresh, ".", adapters={str(i): f"./{i}" for i in range(3)})
    loaded.eval()
    with torch.no_grad():
        lo = loaded(**inputs)
    rt = {"logits": max_abs_diff(lo.logits, tensors["logits"]),
          "scalings": max_abs_diff(loaded.get_latest_scalings(), tensors["scalings"])}
    for k, v in rt.items():
        if v > 0:
            problems.append(f"round trip differs for {k}: {v}")

    save_tensors(out_dir / "reference.safetensors", tensors)
    saved_cfg = json.loads((out_dir / "adapter_config.json").read_text())
    ref = {
        "name": name,
        "description": description,
        "base_model": rel_path(MODELS / base_name),
        "experts": {str(i): str(i) for i in range(3)},
        "xlora_config": {k: saved_cfg.get(k) for k in ("adapters", "hidden_size", "xlora_depth", "xlora_size",
                                                       "xlora_dropout_p", "layerwise_scalings", "top_k_lora",
                                                       "enable_softmax", "enable_softmax_topk", "softmax_temperature",
                                                       "scaling_pass_value", "global_scaling_weight")},
        "lora_layers_in_order": layers,
        "classifier_parameters": cls_params,
        "seed": seed,
        "inputs": {k: v.tolist() for k, v in inputs.items()},
        "generation": {"greedy_padded": {"kwargs": {"do_sample": False, "num_beams": 1, "max_new_tokens": MAX_NEW,
                                                    "eos_token_id": eos, "pad_token_id": pad, "use_cache": False},
                                         "sequences": greedy_seqs, "min_top2_margin": GREEDY_MARGINS[-1]}},
        "adapter_files": {str(p.relative_to(out_dir)): file_keys(p)
                          for p in sorted(out_dir.rglob("adapter_model.safetensors"))},
        "peft_save_pretrained_wrote": peft_saved,
        "checks": {"roundtrip_max_abs_diff": rt, "topk_min_gap": topk_gap, "problems": problems, "notes": notes},
    }
    write_json(out_dir / "reference.json", ref)
    write_json(out_dir / "modules.json", tree(model))
    return {"path": rel_path(out_dir), "kind": "xlora", "description": description, "problems": problems,
            "notes": notes,
            "tolerance": {"float32_max_abs": 1e-4, "per_key": {}, "tokens": "exact"}}


# --------------------------------------------------------------------------------------------------------------
# the fixture list
# --------------------------------------------------------------------------------------------------------------

LLAMA_ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def lcfg(**kw):
    base = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "init_lora_weights": False}
    base.update(kw)
    return LoraConfig(**base)


def hcfg(**kw):
    base = {"r": 4, "alpha": 8, "rank_dropout": 0.0, "module_dropout": 0.0, "init_weights": False}
    base.update(kw)
    return LoHaConfig(**base)


FIXTURE_FNS: dict[str, Callable[[], dict[str, Any]]] = {
    "lora-llama-qv": lambda: record_standard(
        "lora-llama-qv", "llama", {"default": lcfg(task_type=TaskType.CAUSAL_LM, target_modules=["q_proj", "v_proj"])},
        4001, 0.2, "LoRA r 4, alpha 8 on llama q_proj/v_proj (nn.Linear)"),
    "lora-llama-embedding": lambda: record_standard(
        "lora-llama-embedding", "llama",
        {"default": lcfg(task_type=TaskType.CAUSAL_LM, target_modules=["embed_tokens", "q_proj"])},
        4002, 0.2, "LoRA r 4, alpha 8 on llama embed_tokens (nn.Embedding: lora_embedding_A/B) and q_proj; "
                   "save_embedding_layers='auto' also stores the base embedding weight in the adapter file"),
    "lora-gpt2-conv1d": lambda: record_standard(
        "lora-gpt2-conv1d", "gpt2",
        {"default": lcfg(task_type=TaskType.CAUSAL_LM, target_modules=["c_attn", "c_proj", "c_fc"],
                         fan_in_fan_out=True)},
        4003, 0.2, "LoRA r 4, alpha 8 on GPT-2 Conv1D c_attn/c_proj/c_fc, fan_in_fan_out true"),
    "lora-llama-rslora": lambda: record_standard(
        "lora-llama-rslora", "llama-gqa-llama3rope",
        {"default": lcfg(task_type=TaskType.CAUSAL_LM, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                         use_rslora=True)},
        4004, 0.2, "rsLoRA (scaling alpha/sqrt(r) = 4) r 4, alpha 8 on q/k/v/o of llama-gqa-llama3rope"),
    "lora-llama-patterns": lambda: record_standard(
        "lora-llama-patterns", "llama",
        {"default": lcfg(task_type=TaskType.CAUSAL_LM, target_modules=LLAMA_ALL,
                         rank_pattern={"q_proj": 2, "model.layers.1.mlp.down_proj": 6},
                         alpha_pattern={"v_proj": 3.0, "model.layers.0.mlp.gate_proj": 16.0})},
        4005, 0.2, "LoRA r 4, alpha 8 on all llama linears with rank_pattern {q_proj: 2, "
                   "model.layers.1.mlp.down_proj: 6} and alpha_pattern {v_proj: 3, model.layers.0.mlp.gate_proj: 16}"),
    "lora-bert-seqcls-mts": lambda: record_standard(
        "lora-bert-seqcls-mts", "bert-seqcls",
        {"default": lcfg(task_type=TaskType.SEQ_CLS, target_modules=["query", "value"], modules_to_save=["classifier"])},
        4006, 0.2, "LoRA r 4, alpha 8 on bert-seqcls query/value, modules_to_save [classifier] (the saved copy is "
                   "perturbed by N(0, 0.2^2) so it differs from the base head)", mts_std=0.2),
    "lora-llama-two-adapters": lambda: record_standard(
        "lora-llama-two-adapters", "llama",
        {"default": lcfg(task_type=TaskType.CAUSAL_LM, target_modules=["q_proj", "v_proj"]),
         "other": lcfg(task_type=TaskType.CAUSAL_LM, r=2, lora_alpha=3, target_modules=["k_proj", "o_proj", "v_proj",
                                                                                          "up_proj"])},
        4007, 0.2, "two named LoRA adapters on llama: 'default' (r 4, alpha 8, q/v; saved in the folder itself) and "
                   "'other' (r 2, alpha 3, k/o/v/up_proj; saved in the subfolder other/)",
        active_sets=[["default"], ["other"], ["default", "other"]]),
    "dora-llama": lambda: record_standard(
        "dora-llama", "llama",
        {"default": lcfg(task_type=TaskType.CAUSAL_LM, target_modules=["q_proj", "v_proj", "down_proj"], use_dora=True)},
        4008, 0.2, "DoRA r 4, alpha 8 on llama q/v/down_proj; magnitudes jittered by (1 + N(0, 0.2^2))"),
    "dora-gpt2-conv1d": lambda: record_standard(
        "dora-gpt2-conv1d", "gpt2",
        {"default": lcfg(task_type=TaskType.CAUSAL_LM, target_modules=["c_attn", "c_fc"], fan_in_fan_out=True,
                         use_dora=True)},
        4009, 0.2, "DoRA r 4, alpha 8 on GPT-2 Conv1D c_attn/c_fc (fan_in_fan_out); magnitudes jittered"),
    "loha-llama": lambda: record_standard(
        "loha-llama", "llama",
        {"default": hcfg(task_type=TaskType.CAUSAL_LM, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                         rank_pattern={"k_proj": 2}, alpha_pattern={"o_proj": 4.0})},
        4010, 0.35, "LoHa r 4, alpha 8 on llama q/k/v/o (nn.Linear), rank_pattern {k_proj: 2}, alpha_pattern "
                    "{o_proj: 4}; hada_* factors N(0, 0.35^2)"),
    "loha-convnet-flat": lambda: record_standard(
        "loha-convnet-flat", "tiny-convnet",
        {"default": hcfg(target_modules=["conv1d", "conv2d", "conv2d_1x1", "linear"], use_effective_conv2d=False,
                         rank_pattern={"conv2d": 2}, alpha_pattern={"linear": 3.0})},
        4011, 0.35, "LoHa r 4, alpha 8 on tiny-convnet Conv1d/Conv2d 3x3/Conv2d 1x1/Linear, flat form "
                    "(use_effective_conv2d false), rank_pattern {conv2d: 2}, alpha_pattern {linear: 3}"),
    "loha-convnet-effective": lambda: record_standard(
        "loha-convnet-effective", "tiny-convnet",
        {"default": hcfg(target_modules=["conv1d", "conv2d", "conv2d_1x1", "linear"], use_effective_conv2d=True)},
        4012, 0.35, "LoHa r 4, alpha 8 on tiny-convnet, use_effective_conv2d true: Tucker form (hada_t1/hada_t2) "
                    "for the k>1 convs (conv1d, conv2d), flat for conv2d_1x1 and linear"),
    "xlora-llama": lambda: record_xlora(
        "xlora-llama", "llama", 4100,
        "X-LoRA on llama: experts '0','1','2' (LoRA r 4, alpha 8, q_proj/v_proj), classifier depth 2 (xlora_size 16, "
        "ReLU, dropout 0.2 inactive in eval), layerwise_scalings, top_k_lora 2, enable_softmax with "
        "softmax_temperature 0.7",
        {"xlora_depth": 2, "xlora_size": 16, "layerwise_scalings": True, "top_k_lora": 2, "softmax_temperature": 0.7}),
    "xlora-llama-softmax-topk": lambda: record_xlora(
        "xlora-llama-softmax-topk", "llama", 4200,
        "X-LoRA as xlora-llama but enable_softmax false (raw classifier logits), enable_softmax_topk true (softmax "
        "over the top-2 only, others 0), global_scaling_weight 1.5",
        {"xlora_depth": 2, "xlora_size": 16, "layerwise_scalings": True, "top_k_lora": 2, "enable_softmax": False,
         "enable_softmax_topk": True, "global_scaling_weight": 1.5}),
}


def main(argv: list[str]) -> int:
    only = set(argv)
    manifest_path = FIXTURES / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    fixtures = manifest.get("fixtures", {})
    if not only or "tiny-convnet" in only or any("convnet" in o for o in only) or not (MODELS / "tiny-convnet").exists():
        print("== tiny-convnet", flush=True)
        build_tiny_convnet()
        fixtures["models/tiny-convnet"] = {
            "path": rel_path(MODELS / "tiny-convnet"), "kind": "custom", "architecture": "TinyConvNet",
            "description": TINY_CONVNET_CONFIG["description"], "problems": [],
            "tolerance": {"float32_max_abs": 1e-4, "per_key": {}, "tokens": "exact"}}
    problems = []
    for name, fn in FIXTURE_FNS.items():
        if only and name not in only:
            continue
        print(f"== {name}", flush=True)
        r = fn()
        fixtures[f"adapters/{name}"] = r
        problems += [f"{name}: {p}" for p in r["problems"]]
    manifest.update({
        "versions": versions(),
        "commands": {**manifest.get("commands", {}),
                     "adapters": "tools/parity/.venv/bin/python tools/parity/generate_adapters.py"},
        "generated_at": {**manifest.get("generated_at", {}),
                         "adapters": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "fixtures": dict(sorted(fixtures.items())),
    })
    write_json(manifest_path, manifest)
    for p in problems:
        print("PROBLEM:", p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
