"""PyTorch side of `npm run bench` (bench/run.ts): one configuration per process, printed as one JSON line.

Usage: tools/parity/.venv/bin/python tools/parity/bench_torch.py <section> '<json args>'

Sections mirror bench/llama-cases.ts and bench/gpt2.ts with the same shapes, token ids and repetition counts:
  gpt2            GPT-2-small-shaped random model: forward tokens/s (batch 1) and greedy generate tokens/s (KV cache)
  llama           Llama-shaped random model, eval forward under torch.no_grad() or one AdamW training step, with no
                  adapter (all weights train), LoRA or LoHa (PEFT get_peft_model)
  adapters        PeftModel.from_pretrained + load_adapter of a folder of LoRA adapters, then set_adapter switching
  xlora-generate  X-LoRA (get_peft_model with XLoraConfig, experts loaded from PEFT folders) greedy generation; PEFT
                  forces use_cache=False
Every section reports peakRssMb (resource.getrusage ru_maxrss) of this process. CPU only, float32, default
attention implementation (sdpa), torch.set_num_threads(args["threads"]) (2 by default).
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
import warnings
from typing import Any, Callable

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import transformers  # noqa: E402
import peft  # noqa: E402

transformers.logging.set_verbosity_error()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def repeat(fn: Callable[[], Any], reps: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def bench_ids(batch: int, seq: int, vocab: int) -> torch.Tensor:
    """The same ids as bench/llama-cases.ts benchIds."""
    return torch.tensor([[(b * 131 + i * 7919 + 17) % vocab for i in range(seq)] for b in range(batch)], dtype=torch.long)


def llama_model(shape: dict[str, int], max_positions: int = 1024) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=shape["vocab"], hidden_size=shape["hidden"], intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"], num_key_value_heads=shape["heads"],
        max_position_embeddings=max(max_positions, shape["seq"]), tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


def peft_config(adapter: dict[str, Any]):
    from peft import LoHaConfig, LoraConfig, TaskType

    if adapter["type"] == "lora":
        return LoraConfig(task_type=TaskType.CAUSAL_LM, r=adapter["r"], lora_alpha=adapter["alpha"],
                          target_modules=adapter["targets"], lora_dropout=0.0)
    return LoHaConfig(task_type=TaskType.CAUSAL_LM, r=adapter["r"], alpha=adapter["alpha"],
                      target_modules=adapter["targets"])


def section_gpt2(args: dict[str, Any]) -> dict[str, Any]:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=args["layers"], n_embd=768, n_head=12, vocab_size=50257)).eval()
    ids = torch.tensor([[(i * 7919) % 50257 for i in range(args["seq"])]], dtype=torch.long)

    def forward() -> None:
        with torch.no_grad():
            model(input_ids=ids).logits.sum().item()

    forward_ms = statistics.median(repeat(forward, args["reps"]))
    prompt = ids[:, : args["prompt"]]
    n = args["newTokens"]

    def gen(k: int) -> None:
        with torch.no_grad():
            out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=k, min_new_tokens=k,
                                 do_sample=False, use_cache=True, pad_token_id=0)
        assert out.shape[1] == prompt.shape[1] + k, out.shape

    gen(2)
    gen_ms = statistics.median(repeat(lambda: gen(n), args["reps"], warmup=0))
    return {"forwardMs": forward_ms, "forwardTokensPerSecond": args["seq"] / (forward_ms / 1000),
            "generateTokensPerSecond": n / (gen_ms / 1000), "peakRssMb": peak_rss_mb()}


def section_llama(args: dict[str, Any]) -> dict[str, Any]:
    shape = args["shape"]
    model = llama_model(shape)
    trainable_model: torch.nn.Module = model
    if args.get("adapter"):
        from peft import get_peft_model

        trainable_model = get_peft_model(model, peft_config(args["adapter"]))
    params = [p for p in trainable_model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    total = sum(p.numel() for p in trainable_model.parameters())
    ids = bench_ids(shape["batch"], shape["seq"], shape["vocab"])
    tokens = shape["batch"] * shape["seq"]
    loss_value = float("nan")
    if args["mode"] == "forward":
        trainable_model.eval()

        def step() -> None:
            with torch.no_grad():
                trainable_model(input_ids=ids).logits.sum().item()
    else:
        trainable_model.train()
        optimizer = torch.optim.AdamW(params, lr=1e-4)

        def step() -> None:
            nonlocal loss_value
            optimizer.zero_grad(set_to_none=True)
            loss = trainable_model(input_ids=ids, labels=ids).loss
            loss.backward()
            optimizer.step()
            loss_value = loss.item()

    times = repeat(step, args["reps"], args.get("warmup", 1))
    ms = statistics.median(times)
    return {"ms": ms, "times": times, "tokensPerSecond": tokens / (ms / 1000), "trainable": trainable, "total": total,
            "loss": loss_value, "peakRssMb": peak_rss_mb()}


def section_adapters(args: dict[str, Any]) -> dict[str, Any]:
    from peft import PeftModel

    model = llama_model(args["shape"])
    names = args["names"]
    d = args["dir"]
    t0 = time.perf_counter()
    pm = PeftModel.from_pretrained(model, os.path.join(d, names[0]), adapter_name=names[0])
    from_pretrained_ms = (time.perf_counter() - t0) * 1000
    loads = []
    for name in names[1:]:
        t = time.perf_counter()
        pm.load_adapter(os.path.join(d, name), adapter_name=name)
        loads.append((time.perf_counter() - t) * 1000)
    total = from_pretrained_ms + sum(loads)
    switches = []
    for i in range(args["switches"]):
        name = names[(i * 37 + 11) % len(names)]
        t = time.perf_counter()
        pm.set_adapter(name)
        switches.append((time.perf_counter() - t) * 1000)
    ids = bench_ids(1, 16, args["shape"]["vocab"])
    pm.set_adapter(names[-1])
    t = time.perf_counter()
    with torch.no_grad():
        pm(input_ids=ids).logits.sum().item()
    forward_ms = (time.perf_counter() - t) * 1000
    return {"adapters": len(names), "fromPretrainedMs": from_pretrained_ms,
            "loadAdapterMedianMs": statistics.median(loads) if loads else float("nan"),
            "loadAdapterFirstMs": loads[0] if loads else float("nan"),
            "loadAdapterLastMs": loads[-1] if loads else float("nan"),
            "msPerAdapter": total / len(names), "totalLoadMs": total,
            "switchMedianMs": statistics.median(switches) if switches else float("nan"),
            "switchMeanMs": sum(switches) / max(1, len(switches)), "forward16Ms": forward_ms,
            "peakRssMb": peak_rss_mb()}


def section_xlora_generate(args: dict[str, Any]) -> dict[str, Any]:
    from peft import TaskType, XLoraConfig, get_peft_model

    shape = args["shape"]
    model = llama_model(shape, args["prompt"] + args["newTokens"] + 8)
    model.config.use_cache = False  # PEFT's X-LoRA refuses a model with use_cache=True
    experts = {e: os.path.join(args["dir"], e) for e in args["experts"]}
    config = XLoraConfig(task_type=TaskType.CAUSAL_LM, hidden_size=shape["hidden"], adapters=experts,
                         xlora_depth=args["depth"], layerwise_scalings=args["layerwise"])
    torch.manual_seed(1)
    xm = get_peft_model(model, config).eval()
    prompt = bench_ids(1, args["prompt"], shape["vocab"])

    def gen(k: int) -> None:
        with torch.no_grad():
            out = xm.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=k,
                              min_new_tokens=k, do_sample=False, pad_token_id=0)
        assert out.shape[1] == prompt.shape[1] + k, out.shape

    gen(4)
    times = repeat(lambda: gen(args["newTokens"]), args["reps"], warmup=0)
    ms = statistics.median(times)
    return {"ms": ms, "times": times, "tokensPerSecond": args["newTokens"] / (ms / 1000),
            "newTokens": args["newTokens"], "peakRssMb": peak_rss_mb()}


SECTIONS = {
    "gpt2": section_gpt2,
    "llama": section_llama,
    "adapters": section_adapters,
    "xlora-generate": section_xlora_generate,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in SECTIONS:
        sys.exit(f"usage: bench_torch.py <{'|'.join(SECTIONS)}> '<json args>'")
    args = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    threads = int(args.get("threads", 2))
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    result = SECTIONS[sys.argv[1]](args)
    result.update({"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                   "threads": torch.get_num_threads()})
    # JSON has no NaN: a missing number is null, as JSON.stringify writes it on the TypeScript side.
    clean = {k: (None if isinstance(v, float) and v != v else v) for k, v in result.items()}
    print(json.dumps(clean))


if __name__ == "__main__":
    main()
