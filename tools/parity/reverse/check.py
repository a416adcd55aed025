"""Reverse-direction parity, Python half: loads the adapters peft-ts saved (tools/parity/reverse/export.ts) with
Python PEFT and compares PEFT's outputs with the ones peft-ts recorded.

    tools/parity/.venv/bin/python tools/parity/reverse/check.py <outdir> [case ...]

(`bash tools/parity/reverse/check.sh` runs export.ts and this; the venv comes from `bash tools/parity/setup.sh`.)

For each <outdir>/<case>/case.json:
- every adapter_config.json of the case is read with `PeftConfig.from_pretrained`; warnings PEFT gives (unknown
  keys, ...) are reported;
- LoRA / DoRA / LoHa: the base model (transformers, eager, float32; the tiny convnet from generate_adapters.py) gets
  the adapter with `PeftModel.from_pretrained` (+ `load_adapter` for the others); outputs for each active set, with
  adapters disabled, and after `merge_and_unload(adapter_names=...)` on a deep copy are compared with
  ts_outputs.safetensors (max abs error, pad query positions excluded); PEFT's own state dict of the loaded adapter
  (`get_peft_model_state_dict`) is compared with the file peft-ts wrote (same keys, same values);
- X-LoRA: tries PEFT's loader on the folder as it is (see `xlora_attempts`), each try in a subprocess with a time
  limit (PEFT's expert-key loop can spin forever); then builds a PEFT X-LoRA model with `get_peft_model` from the
  same expert folders (named "0".."C-1", the only names PEFT's X-LoRA handles), loads the classifier tensors of
  adapter_model.safetensors into it, and compares logits and scalings.

Prints a table and exits 1 if any case fails (max abs error > 1e-4, or a load error). --json FILE also writes the
results as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import os
import subprocess
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

# generate_adapters imports common.py, which re-executes the interpreter once to fix PYTHONHASHSEED: do it first
os.environ.setdefault("PYTHONHASHSEED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; a bad base_model_name_or_path must not hit the network

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tools" / "parity"))

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

import generate_adapters as ga  # noqa: E402  (TinyConvNet, load_base, the fixture loaders)
import peft  # noqa: E402
import transformers  # noqa: E402
from peft import PeftConfig, PeftModel, XLoraConfig, get_peft_model  # noqa: E402
from peft.utils import get_peft_model_state_dict  # noqa: E402

transformers.logging.set_verbosity_warning()  # generate_adapters sets "error"; warnings are what we report
transformers.logging.disable_progress_bar()
# Deprecation notices of transformers/PEFT internals (e.g. `is_gradient_checkpointing`), not about the files: counted
# per case, not listed.
NOISE = (FutureWarning, DeprecationWarning, PendingDeprecationWarning)
TOL = 1e-4
XLORA_TIMEOUT_S = 180


# ------------------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------------------

class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(f"[{record.name}] {record.getMessage()}")


@contextlib.contextmanager
def capture():
    """Collects warnings.warn messages and WARNING+ log records of peft / transformers / root while active."""
    out: list[str] = []
    handler = _ListHandler(out)
    loggers = [logging.getLogger(n) for n in ("", "peft", "transformers")]
    for lg in loggers:
        lg.addHandler(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield out
        finally:
            for lg in loggers:
                lg.removeHandler(handler)
            noise = 0
            for w in caught:
                if issubclass(w.category, NOISE):
                    noise += 1
                else:
                    out.append(f"{w.category.__name__}: {w.message}")
            capture.noise += noise


capture.noise = 0  # type: ignore[attr-defined]


def where(exc: BaseException) -> str:
    """The innermost frame of the traceback inside PEFT (else the innermost one): 'peft/x.py:123 in func'."""
    frames = traceback.extract_tb(exc.__traceback__)
    inside = [f for f in frames if "/peft/" in f.filename] or frames
    f = inside[-1]
    name = f.filename[f.filename.rfind("/peft/") + 1:] if "/peft/" in f.filename else Path(f.filename).name
    return f"{name}:{f.lineno} in {f.name}"


def short(msg: str, n: int = 300) -> str:
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= n else msg[: n - 3] + "..."


def load_inputs(case: dict[str, Any]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in case["inputs"].items():
        out[k] = torch.tensor(v, dtype=torch.float32 if k == "x" else torch.int64)
    return out


def load_base(case: dict[str, Any]) -> torch.nn.Module:
    name = Path(case["base_model"]).name
    model = ga.load_base(name)  # eager attention, float32, eval; the convnet for "tiny-convnet"
    if case["kind"] == "xlora":
        model.config.use_cache = False  # PEFT's X-LoRA refuses use_cache
    return model


def forward(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        if "x" in inputs:
            return model(inputs["x"])
        out = model(**inputs)
    return out.logits


def max_abs(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None) -> float:
    if a.shape != b.shape:
        raise ValueError(f"shape {tuple(a.shape)} != peft-ts {tuple(b.shape)}")
    d = (a.double() - b.double()).abs()
    if mask is not None and d.dim() >= 3:
        m = mask.double().reshape(*mask.shape, *([1] * (d.dim() - 2)))
        d = d * m
    return float(d.max()) if d.numel() else 0.0


def config_warnings(case_dir: Path) -> dict[str, list[str]]:
    """PeftConfig.from_pretrained of every adapter_config.json of the case; the warnings PEFT gives."""
    out = {}
    for cfg in sorted(case_dir.rglob("adapter_config.json")):
        rel = str(cfg.parent.relative_to(case_dir)) or "."
        with capture() as msgs:
            try:
                PeftConfig.from_pretrained(str(cfg.parent))
            except Exception as e:  # noqa: BLE001
                msgs.append(f"ERROR {type(e).__name__}: {e}")
        out[rel] = [short(m) for m in msgs]
    return out


def state_dict_check(model: PeftModel, adapter: str, file: Path) -> tuple[bool, str]:
    """PEFT's own state dict of the loaded adapter against the file peft-ts wrote."""
    theirs = load_file(str(file))
    ours = get_peft_model_state_dict(model, adapter_name=adapter)
    missing = sorted(set(ours) - set(theirs))  # PEFT would save these; peft-ts did not
    extra = sorted(set(theirs) - set(ours))  # peft-ts saved these; PEFT would not
    worst = max((float((ours[k].float() - theirs[k].float()).abs().max()) for k in set(ours) & set(theirs)), default=0.0)
    notes = []
    if missing:
        notes.append(f"{adapter}: PEFT's save has {len(missing)} keys the file lacks, e.g. {missing[:2]}")
    if extra:
        notes.append(f"{adapter}: file has {len(extra)} keys PEFT's save lacks, e.g. {extra[:2]}")
    if worst > 0:
        notes.append(f"{adapter}: loaded tensors differ from the file by {worst:.2e}")
    return (not missing and not extra and worst == 0), "; ".join(notes)


# ------------------------------------------------------------------------------------------------------------------
# LoRA / DoRA / LoHa
# ------------------------------------------------------------------------------------------------------------------

def check_adapter(case_dir: Path, case: dict[str, Any]) -> dict[str, Any]:
    res: dict[str, Any] = {"errors": {}, "warnings": {}, "notes": []}
    inputs = load_inputs(case)
    mask = inputs.get(case["mask"]) if case.get("mask") else None
    ts = load_file(str(case_dir / "ts_outputs.safetensors"))
    names = list(case["adapters"])
    base = load_base(case)
    with capture() as msgs:
        model = PeftModel.from_pretrained(base, str(case_dir / case["adapters"][names[0]]), adapter_name=names[0])
        for n in names[1:]:
            lr = model.load_adapter(str(case_dir / case["adapters"][n]), adapter_name=n)
            if lr.unexpected_keys:
                msgs.append(f"load_adapter({n}): unexpected keys {lr.unexpected_keys[:3]}")
    res["warnings"]["load"] = [short(m) for m in msgs]
    model.eval()
    for n in names:
        with capture():  # PEFT's "Setting `save_embedding_layers` to `True`" notice
            ok, note = state_dict_check(model, n, case_dir / case["adapters"][n] / "adapter_model.safetensors")
        if note:
            res["notes"].append(note)
        res.setdefault("state_dict_same", True)
        res["state_dict_same"] &= ok
    for cmp in case["compare"]:
        key, what, act = cmp["key"], cmp["what"], cmp.get("adapters")
        try:
            if what == "active":
                model.base_model.set_adapter(act if len(act) > 1 else act[0])
                out = forward(model, inputs)
            elif what == "disabled":
                model.base_model.set_adapter(names[0])
                with model.disable_adapter():
                    out = forward(model, inputs)
            elif what == "merged":
                mm = copy.deepcopy(model)
                mm.base_model.set_adapter(act if len(act) > 1 else act[0])
                out = forward(mm.merge_and_unload(adapter_names=act), inputs)
            else:
                raise ValueError(f"unknown comparison {what}")
            res.setdefault("errs", {})[key] = max_abs(out, ts[key], mask)
        except Exception as e:  # noqa: BLE001
            res["errors"][key] = f"{type(e).__name__}: {short(e)}"
    res["auto_err"] = auto_peft_check(case_dir, case, inputs, mask, ts, res)
    errs = res.get("errs", {})
    res["active_err"] = max((v for k, v in errs.items() if not k.startswith(("merged", "disabled"))), default=None)
    res["merged_err"] = max((v for k, v in errs.items() if k.startswith("merged")), default=None)
    res["disabled_err"] = errs.get("disabled.logits")
    res["loaded_via"] = "PeftModel.from_pretrained" + (" + load_adapter" if len(names) > 1 else "")
    return res


def auto_peft_check(case_dir: Path, case: dict[str, Any], inputs, mask, ts, res: dict[str, Any]) -> float | None:
    """AutoPeftModelFor*.from_pretrained(<adapter dir>): PEFT finds the base model through the adapter's
    base_model_name_or_path (repo-relative here, so the cwd is the repository root). Compared with the first
    active set's outputs. Not for the convnet (no transformers model)."""
    from peft import AutoPeftModelForCausalLM, AutoPeftModelForSequenceClassification

    cls = {"causal_lm": AutoPeftModelForCausalLM, "seq_cls": AutoPeftModelForSequenceClassification}.get(case["base_kind"])
    if cls is None:
        return None
    first = next(c for c in case["compare"] if c["what"] == "active")
    cwd = os.getcwd()
    try:
        os.chdir(REPO)
        with capture():
            model = cls.from_pretrained(str(case_dir), attn_implementation=ga.ATTN, dtype=torch.float32).eval()
        return max_abs(forward(model, inputs), ts[first["key"]], mask)
    except Exception as e:  # noqa: BLE001
        res["errors"]["AutoPeftModel"] = f"{type(e).__name__}: {short(e)}"
        return None
    finally:
        os.chdir(cwd)


# ------------------------------------------------------------------------------------------------------------------
# X-LoRA
# ------------------------------------------------------------------------------------------------------------------

XLORA_ATTEMPTS = {
    # the folder as it is, from the repository root: PeftModel.from_pretrained(base, <abs dir>)
    "as-is": "PeftModel.from_pretrained(base, dir), cwd = repo root",
    # the same with PEFT's documented `adapters=` override, absolute expert paths
    "as-is+adapters": "PeftModel.from_pretrained(base, dir, adapters={name: abs path}), cwd = repo root",
    # the recorded expert paths ("./<name>") are relative to the folder: run from inside it
    "cwd": "os.chdir(dir); PeftModel.from_pretrained(base, '.')",
}


def xlora_outputs(model, inputs) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        logits = model(**inputs).logits
    return logits, model.get_latest_scalings()


def xlora_attempt(case_dir: Path, attempt: str) -> dict[str, Any]:
    """One PEFT loader attempt (run in a subprocess by check_xlora)."""
    case = json.loads((case_dir / "case.json").read_text())
    inputs = load_inputs(case)
    ts = load_file(str(case_dir / "ts_outputs.safetensors"))
    base = load_base(case)
    out: dict[str, Any] = {}
    with capture() as msgs:
        try:
            if attempt == "as-is":
                os.chdir(REPO)
                model = PeftModel.from_pretrained(base, str(case_dir))
            elif attempt == "as-is+adapters":
                os.chdir(REPO)
                model = PeftModel.from_pretrained(base, str(case_dir), adapters={n: str(case_dir / n) for n in case["experts"]})
            elif attempt == "cwd":
                os.chdir(case_dir)
                model = PeftModel.from_pretrained(base, ".")
            else:
                raise ValueError(attempt)
            model.eval()
            xm = model.base_model
            out["expert_adapters_loaded"] = sorted(k for k in xm.lora_model.peft_config if k != "default")
            out["active_adapters"] = list(xm.lora_model.active_adapters)
            logits, scalings = xlora_outputs(model, inputs)
            mask = inputs["attention_mask"]
            out["logits_err"] = max_abs(logits, ts["logits"], mask)
            out["scalings_err"] = max_abs(scalings, ts["scalings"], mask)
            out["ok"] = True
        except Exception as e:  # noqa: BLE001
            out["ok"] = False
            out["error"] = f"{type(e).__name__}: {short(e, 400)}"
            out["at"] = where(e)
    out["warnings"] = [short(m) for m in msgs]
    return out


def xlora_get_peft_model(case_dir: Path, case: dict[str, Any]) -> dict[str, Any]:
    """PEFT X-LoRA built with get_peft_model from the same experts (named "0".."C-1", absolute paths), with the
    classifier tensors of adapter_model.safetensors loaded into it."""
    out: dict[str, Any] = {}
    saved = json.loads((case_dir / "adapter_config.json").read_text())
    fields = {k: v for k, v in saved.items() if k in XLoraConfig.__dataclass_fields__ and k not in ("peft_type", "adapters", "peft_version")}
    fields["inference_mode"] = True
    adapters = {str(i): str(case_dir / n) for i, n in enumerate(case["experts"])}
    inputs = load_inputs(case)
    ts = load_file(str(case_dir / "ts_outputs.safetensors"))
    base = load_base(case)
    with capture() as msgs:
        model = get_peft_model(base, XLoraConfig(**{**fields, "adapters": adapters}))
        classifier = load_file(str(case_dir / "adapter_model.safetensors"))
        own = {k for k in model.state_dict() if "internal_xlora_classifier" in k}
        unexpected = sorted(set(classifier) - own)
        missing = sorted(own - set(classifier))
        if unexpected or missing:
            raise RuntimeError(f"classifier keys differ: file-only {unexpected}, model-only {missing}")
        model.load_state_dict(classifier, strict=False)
    model.eval()
    logits, scalings = xlora_outputs(model, inputs)
    mask = inputs["attention_mask"]
    out["logits_err"] = max_abs(logits, ts["logits"], mask)
    out["scalings_err"] = max_abs(scalings, ts["scalings"], mask)
    out["classifier_keys"] = sorted(classifier)
    out["warnings"] = [short(m) for m in msgs]
    return out


def check_xlora(case_dir: Path, case: dict[str, Any]) -> dict[str, Any]:
    res: dict[str, Any] = {"errors": {}, "warnings": {}, "notes": [], "attempts": {}}
    for attempt in XLORA_ATTEMPTS:
        cmd = [sys.executable, __file__, "--xlora-attempt", attempt, str(case_dir)]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=XLORA_TIMEOUT_S, cwd=REPO,
                               env={**os.environ, "PYTHONHASHSEED": "0"})
            last = [ln for ln in p.stdout.splitlines() if ln.startswith("XLORA_ATTEMPT ")]
            r = json.loads(last[-1][len("XLORA_ATTEMPT "):]) if last else {
                "ok": False, "error": f"exit {p.returncode}: {short(p.stderr[-600:], 600)}"}
        except subprocess.TimeoutExpired:
            r = {"ok": False, "error": f"timed out after {XLORA_TIMEOUT_S} s (did not return)"}
        res["attempts"][attempt] = r
    # what PEFT's own loader managed (outputs right, i.e. it found and used the experts)
    good = [a for a, r in res["attempts"].items() if r.get("ok") and r["logits_err"] <= TOL and r["scalings_err"] <= TOL]
    res["peft_loader_ok"] = good
    try:
        fb = xlora_get_peft_model(case_dir, case)
        res["attempts"]["get_peft_model"] = fb
    except Exception as e:  # noqa: BLE001
        res["errors"]["get_peft_model"] = f"{type(e).__name__}: {short(e)}"
        fb = None
    # the reported numbers: the folder as it is when PEFT's loader copes with it, else the get_peft_model rebuild
    pick = good[0] if good else ("get_peft_model" if fb else None)
    if pick:
        r = res["attempts"][pick]
        res["active_err"], res["scalings_err"] = r["logits_err"], r["scalings_err"]
    res["loaded_via"] = {"as-is": "from_pretrained as is", "as-is+adapters": "from_pretrained(adapters=)",
                         "cwd": "from_pretrained, cwd=dir", "get_peft_model": "get_peft_model + classifier"}.get(pick, "-")
    res["merged_err"] = None
    return res


# ------------------------------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------------------------------

def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2e}"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("cases", nargs="*")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--xlora-attempt", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.xlora_attempt:
        print("XLORA_ATTEMPT " + json.dumps(xlora_attempt(Path(args.outdir).resolve(), args.xlora_attempt)), flush=True)
        return 0

    out_dir = Path(args.outdir).resolve()
    case_dirs = sorted(p.parent for p in out_dir.glob("*/case.json"))
    if args.cases:
        case_dirs = [d for d in case_dirs if d.name in args.cases]
    if not case_dirs:
        print(f"no cases under {out_dir} (run export.ts first)", file=sys.stderr)
        return 2
    print(f"PEFT {peft.__version__}, transformers {transformers.__version__}, torch {torch.__version__}; "
          f"{len(case_dirs)} cases in {out_dir}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    for d in case_dirs:
        case = json.loads((d / "case.json").read_text())
        print(f"== {case['name']}", flush=True)
        try:
            r = check_xlora(d, case) if case["kind"] == "xlora" else check_adapter(d, case)
        except Exception as e:  # noqa: BLE001
            r = {"errors": {"load": f"{type(e).__name__}: {short(e, 500)} (at {where(e)})"}, "warnings": {}, "notes": []}
        r["warnings"]["config"] = config_warnings(d)
        errs = [v for v in (r.get("active_err"), r.get("merged_err"), r.get("disabled_err"), r.get("scalings_err"),
                            r.get("auto_err")) if v is not None]
        r["pass"] = bool(errs) and not r["errors"] and all(e <= TOL for e in errs) and r.get("active_err") is not None
        results[case["name"]] = r

    # ---- table
    rows = [("case", "max abs err", "merged err", "disabled err", "scalings err", "AutoPeftModel err", "loaded via",
             "result")]
    for name, r in results.items():
        auto = fmt(r.get("auto_err")) if "AutoPeftModel" not in r["errors"] else "ERROR"
        rows.append((name, fmt(r.get("active_err")), fmt(r.get("merged_err")), fmt(r.get("disabled_err")),
                     fmt(r.get("scalings_err")), auto, r.get("loaded_via", "-"), "PASS" if r["pass"] else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print()
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print(f"\ntolerance {TOL:g} (max |python - ts|; logits at pad query positions are not compared)")

    # ---- details: errors, PEFT warnings, state-dict notes, X-LoRA loader attempts
    print("\nDetails")
    for name, r in results.items():
        lines = []
        for k, v in r["errors"].items():
            lines.append(f"ERROR {k}: {v}")
        for where, msgs in r["warnings"].get("config", {}).items():
            for m in msgs:
                lines.append(f"PeftConfig.from_pretrained({where}) warns: {m}")
        for m in r["warnings"].get("load", []):
            lines.append(f"load warns: {m}")
        if "state_dict_same" in r:
            lines.append("get_peft_model_state_dict == peft-ts file" if r["state_dict_same"] else "state dict differs from the file")
        for n in r["notes"]:
            lines.append(f"note: {n}")
        for a, ar in r.get("attempts", {}).items():
            what = XLORA_ATTEMPTS.get(a, "get_peft_model(base, XLoraConfig(adapters={'0': dir/<expert 0>, ...})) + classifier state dict")
            if ar.get("ok", True) and "logits_err" in ar:
                extra = ""
                if "active_adapters" in ar:
                    extra = f"; experts loaded as {ar['expert_adapters_loaded']}, active {ar['active_adapters']}"
                lines.append(f"X-LoRA {a} [{what}]: loads; logits err {fmt(ar['logits_err'])}, scalings err {fmt(ar['scalings_err'])}{extra}")
            else:
                lines.append(f"X-LoRA {a} [{what}]: FAILS: {ar.get('error')}")
                if ar.get("at"):
                    lines.append(f"    raised at {ar['at']}")
            for m in ar.get("warnings", []):
                lines.append(f"    warns: {m}")
        if lines:
            print(f"- {name}")
            for ln in lines:
                print(f"    {ln}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str) + "\n")
    if capture.noise:
        print(f"\n({capture.noise} FutureWarning/DeprecationWarning notices of transformers/PEFT internals not listed)")
    failed = [n for n, r in results.items() if not r["pass"]]
    print(f"\n{len(results) - len(failed)}/{len(results)} cases pass" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
