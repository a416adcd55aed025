"""Expected results for test/tuners/matching.test.ts, computed by the pinned PEFT.

Runs PEFT's own `check_target_module_exists`, `get_pattern_key`, `_find_minimal_target_modules` over a table of
cases, and `get_peft_model` on tiny randomly initialised transformers models (all-linear, defaults, SEQ_CLS head,
condensation), and writes test/tuners/matching-cases.json. Usage:

    tools/parity/.venv/bin/python tools/parity/matching_cases.py
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import peft
import torch
import transformers
from peft import LoHaConfig, LoraConfig, get_peft_model
from peft.tuners.tuners_utils import (
    _ExcludedModule,
    _find_minimal_target_modules,
    _maybe_include_all_linear_layers,
    check_target_module_exists,
)
from peft.utils.other import get_pattern_key
from transformers.pytorch_utils import Conv1D

OUT = Path(__file__).resolve().parents[2] / "test" / "tuners" / "matching-cases.json"

LLAMA = [
    "model.embed_tokens",
    "model.layers.0.self_attn.q_proj",
    "model.layers.0.self_attn.k_proj",
    "model.layers.0.self_attn.v_proj",
    "model.layers.0.self_attn.xq_proj",
    "model.layers.0.mlp.up_proj",
    "model.layers.1.self_attn.q_proj",
    "model.layers.1.self_attn.v_proj",
    "model.layers.1.mlp.up_proj",
    "model.layers.1.mlp.experts.0.down_proj",
    "model.layers.12.self_attn.q_proj",
    "model.layers.012.self_attn.q_proj",
    "layers.1.self_attn.q_proj",
    "q_proj",
    "v_proj",
    "lm_head",
]
GPT2 = ["transformer.h.0.attn.c_attn", "transformer.h.3.attn.c_attn", "transformer.h.3.mlp.c_proj", "transformer.wte", "lm_head"]
BERT = [
    "bert.encoder.layer.0.attention.self.query",
    "bert.encoder.layer.0.attention.self.value",
    "bert.encoder.layer.0.attention.output.dense",
    "bert.pooler.dense",
    "pre_classifier",
    "classifier",
    "classifier.dense",
    "classifier.out_proj",
    "model.score",
    "modelXscore",
]

# (name, config class, config kwargs, keys)
CHECK_CASES = [
    ("regex string, full match", LoraConfig, {"target_modules": r".*\.(q_proj|v_proj)"}, LLAMA),
    ("regex string must match the whole name", LoraConfig, {"target_modules": "q_proj"}, LLAMA),
    ("regex string with layer index class", LoraConfig, {"target_modules": r"model\.layers\.[01]\.self_attn\.(q|v)_proj"}, LLAMA),
    ("regex with (?P<name>) group", LoraConfig, {"target_modules": r".*\.(?P<which>q|v)_proj"}, LLAMA),
    ("regex with leading (?i) flag", LoraConfig, {"target_modules": r"(?i).*\.Q_PROJ"}, LLAMA),
    (
        "list: exact names, dot suffixes, multi-segment suffix",
        LoraConfig,
        {"target_modules": ["q_proj", "self_attn.v_proj", "model.layers.1.mlp.up_proj"]},
        LLAMA,
    ),
    ("list: suffix not at a dot boundary never matches", LoraConfig, {"target_modules": ["proj", "_proj", "attn.q_proj"]}, LLAMA),
    ("layers_to_transform int, no pattern", LoraConfig, {"target_modules": ["q_proj"], "layers_to_transform": 1}, LLAMA),
    ("layers_to_transform 0 (falsy int still filters)", LoraConfig, {"target_modules": ["q_proj", "v_proj"], "layers_to_transform": 0}, LLAMA),
    ("layers_to_transform list, no pattern", LoraConfig, {"target_modules": ["q_proj", "up_proj"], "layers_to_transform": [0, 12]}, LLAMA),
    ("layers_to_transform [] means no filter", LoraConfig, {"target_modules": ["q_proj"], "layers_to_transform": []}, LLAMA),
    ("lazy layer regex: first index wins (MoE expert index ignored)", LoraConfig, {"target_modules": ["down_proj"], "layers_to_transform": [0]}, LLAMA),
    ("lazy layer regex: layer index of an expert", LoraConfig, {"target_modules": ["down_proj"], "layers_to_transform": [1]}, LLAMA),
    (
        "layers_pattern string",
        LoraConfig,
        {"target_modules": ["q_proj", "v_proj"], "layers_to_transform": [1], "layers_pattern": "layers"},
        LLAMA,
    ),
    (
        "layers_pattern list, gpt2 h",
        LoraConfig,
        {"target_modules": ["c_attn", "c_proj"], "layers_to_transform": [3], "layers_pattern": ["blocks", "h"]},
        GPT2,
    ),
    ("layers_pattern that names no list", LoraConfig, {"target_modules": ["c_attn"], "layers_to_transform": [3], "layers_pattern": "blocks"}, GPT2),
    ("layers_pattern empty string = default regex", LoraConfig, {"target_modules": ["c_attn"], "layers_to_transform": 3, "layers_pattern": ""}, GPT2),
    ("exclude_modules regex string", LoraConfig, {"target_modules": ["q_proj", "v_proj"], "exclude_modules": r".*layers\.0\..*"}, LLAMA),
    (
        "exclude_modules list: exact and suffix",
        LoraConfig,
        {"target_modules": ["q_proj", "v_proj"], "exclude_modules": ["model.layers.0.self_attn.q_proj", "v_proj"]},
        LLAMA,
    ),
    (
        "modules_to_save guard: the module and its children",
        LoraConfig,
        {"target_modules": ["classifier", "query", "dense", "out_proj", "pre_classifier"], "modules_to_save": ["classifier"]},
        BERT,
    ),
    ("modules_to_save guard: entry is a regex", LoraConfig, {"target_modules": ["score", "modelXscore"], "modules_to_save": ["model.score"]}, BERT),
    ("regex target with layers (LoHa ignores layers)", LoHaConfig, {"target_modules": r".*q_proj", "layers_to_transform": [1]}, LLAMA),
]

# (name, pattern keys in insertion order, keys)
PATTERN_CASES = [
    ("short key first wins", ["q_proj", "model.layers.0.self_attn.q_proj"], LLAMA),
    ("full name first wins", ["model.layers.0.self_attn.q_proj", "q_proj"], LLAMA),
    ("anchored ^ only matches the whole name", ["^self_attn.q_proj", "^model.layers.1.self_attn.q_proj"], LLAMA),
    ("multi-segment suffix and regex", [r"layers\.1\.self_attn\.(q|v)_proj", "mlp.up_proj"], LLAMA),
    ("suffix not at a dot boundary", ["proj", "_proj"], LLAMA),
    ("spec example keys", ["embed", "conv2d", "linear"], ["embed", "conv2d", "linear", "model.linear", "model.conv2d.0"]),
]


def layer_names(n_layers: int) -> tuple[list[str], list[str]]:
    targets, others = [], ["model", "model.embed_tokens", "model.layers", "model.norm", "model.rotary_emb", "lm_head"]
    for i in range(n_layers):
        others += [f"model.layers.{i}", f"model.layers.{i}.self_attn", f"model.layers.{i}.mlp"]
        targets += [f"model.layers.{i}.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj", "o_proj")]
        targets += [f"model.layers.{i}.mlp.{p}" for p in ("gate_proj", "up_proj", "down_proj")]
    return targets, others


def minimal_cases() -> list[dict]:
    cases = []
    t = [f"model.decoder.layers.{i}.self_attn.q_proj" for i in range(100)]
    t += [f"model.decoder.layers.{i}.self_attn.v_proj" for i in range(100)]
    o = [f"model.encoder.layers.{i}.self_attn.k_proj" for i in range(100)]
    cases.append(("PEFT docstring example", t, o))
    t, o = layer_names(32)
    cases.append(("all-linear on a 32-layer Llama", t, o))
    t, o = layer_names(12)
    keep = [x for x in t if x.endswith("q_proj") and int(x.split(".")[2]) < 9]
    cases.append(("q_proj of layers 0-8 of 12", keep, o + [x for x in t if x not in keep]))
    cases.append(("decoder only, encoder shares names", [f"decoder.{i}.fc" for i in range(20)], [f"encoder.{i}.fc" for i in range(20)]))
    cases.append(("no separating suffix: targets returned as given", ["a.b"], ["x.a.b"]))
    return [{"name": n, "targets": sorted(t), "others": sorted(o), "expected": sorted(_find_minimal_target_modules(t, o))} for n, t, o in cases]


def kind_of(module: torch.nn.Module) -> str | None:
    if isinstance(module, Conv1D):
        return "gpt2_conv1d"
    if isinstance(module, torch.nn.Linear):
        return "linear"
    if isinstance(module, torch.nn.Embedding):
        return "embedding"
    if isinstance(module, torch.nn.Conv1d):
        return "conv1d"
    if isinstance(module, torch.nn.Conv2d):
        return "conv2d"
    return None


def tiny(kind: str) -> tuple[torch.nn.Module, str]:
    torch.manual_seed(0)
    if kind == "llama":
        cfg = transformers.LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=1)
        return transformers.LlamaForCausalLM(cfg), "llama"
    if kind == "llama1":
        cfg = transformers.LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
        return transformers.LlamaForCausalLM(cfg), "llama"
    if kind == "gpt2":
        cfg = transformers.GPT2Config(vocab_size=32, n_embd=16, n_layer=2, n_head=2, n_positions=16)
        return transformers.GPT2LMHeadModel(cfg), "gpt2"
    if kind == "bert-seqcls":
        cfg = transformers.BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, num_labels=3)
        return transformers.BertForSequenceClassification(cfg), "bert"
    if kind == "distilbert-seqcls":
        cfg = transformers.DistilBertConfig(vocab_size=32, dim=16, n_layers=1, n_heads=2, hidden_dim=32, num_labels=3)
        return transformers.DistilBertForSequenceClassification(cfg), "distilbert"
    raise ValueError(kind)


# (name, model, config kwargs, task)
MODEL_CASES = [
    ("all-linear, Llama 3 layers (21 linears -> condensed)", "llama", {"target_modules": "all-linear"}, "CAUSAL_LM"),
    ("ALL-LINEAR upper case, Llama 1 layer (kept as full names)", "llama1", {"target_modules": "ALL-LINEAR"}, "CAUSAL_LM"),
    ("all-linear, GPT-2 (Conv1D counts, lm_head excluded)", "gpt2", {"target_modules": "all-linear"}, "CAUSAL_LM"),
    ("all-linear, BERT SEQ_CLS (classifier excluded)", "bert-seqcls", {"target_modules": "all-linear"}, "SEQ_CLS"),
    ("all-linear, DistilBERT SEQ_CLS (classifier excluded, pre_classifier kept)", "distilbert-seqcls", {"target_modules": "all-linear"}, "SEQ_CLS"),
    ("defaults for llama", "llama1", {}, "CAUSAL_LM"),
    ("defaults for gpt2", "gpt2", {}, "CAUSAL_LM"),
    ("defaults for bert", "bert-seqcls", {}, "SEQ_CLS"),
    ("exclude_modules with all-linear", "llama1", {"target_modules": "all-linear", "exclude_modules": ["down_proj"]}, "CAUSAL_LM"),
    ("rank_pattern / alpha_pattern per module", "llama1", {"target_modules": ["q_proj", "v_proj", "down_proj"], "rank_pattern": {"v_proj": 2, "model.layers.0.mlp.down_proj": 6}, "alpha_pattern": {"proj": 3, "q_proj": 5, "layers.0.self_attn.v_proj": 7}}, "CAUSAL_LM"),
]


def model_cases() -> list[dict]:
    out = []
    for name, kind, kwargs, task in MODEL_CASES:
        model, model_type = tiny(kind)
        modules = [{"name": n, "kind": kind_of(m)} for n, m in model.named_modules()]
        entry = {
            "name": name,
            "modelType": model_type,
            "taskType": task,
            "outputEmbedding": "lm_head" if model.get_output_embeddings() is not None else None,
            "config": kwargs,
            "modules": modules,
        }
        if isinstance(kwargs.get("target_modules"), str):
            # the all-linear expansion on its own (before condensation), for expandAllLinear
            expanded = _maybe_include_all_linear_layers(LoraConfig(task_type=task, **kwargs), model)
            entry["expectedAllLinear"] = sorted(expanded.target_modules)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pm = get_peft_model(model, LoraConfig(r=4, task_type=task, **kwargs))
        except Exception as e:  # noqa: BLE001 - recorded as the expected outcome
            entry["expectedError"] = f"{type(e).__name__}: {e}"
            out.append(entry)
            continue
        cfg = pm.peft_config["default"]
        tm = cfg.target_modules
        layers = {}
        for key in pm.base_model.targeted_module_names:
            layer = pm.base_model.model.get_submodule(key)
            layers[key] = {"r": layer.r["default"], "alpha": layer.lora_alpha["default"]}
        entry.update(
            {
                "expectedTargets": sorted(pm.base_model.targeted_module_names),
                "expectedTargetModules": tm if isinstance(tm, str) else sorted(tm),
                "expectedModulesToSave": cfg.modules_to_save,
                "expectedLayers": layers,
            }
        )
        out.append(entry)
    return out


def main() -> None:
    check = []
    for name, cls, kwargs, keys in CHECK_CASES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = cls(**kwargs)
        results = {}
        for key in keys:
            r = check_target_module_exists(config, key)
            results[key] = "excluded" if isinstance(r, _ExcludedModule) else bool(r)
        check.append({"name": name, "method": config.peft_type.value, "config": kwargs, "expected": results})
    patterns = [
        {"name": name, "patternKeys": pk, "expected": {key: get_pattern_key(pk, key) for key in keys}} for name, pk, keys in PATTERN_CASES
    ]
    doc = {
        "_generated_by": "tools/parity/matching_cases.py",
        "versions": {"peft": peft.__version__, "transformers": transformers.__version__, "torch": torch.__version__},
        "checkTargetModuleExists": check,
        "getPatternKey": patterns,
        "findMinimalTargetModules": minimal_cases(),
        "models": model_cases(),
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
