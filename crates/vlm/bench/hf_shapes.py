#!/usr/bin/env python3
"""HF transformers at the real Qwen2-VL shapes with random weights, timed as `vldac vlm bench`.

    target/venvs/qwen2vl/bin/python crates/vlm/bench/hf_shapes.py --shape 2b:4 --device cpu --dtype f32 --threads 2

The same prompt as crates/vlm/src/bench.rs: <|vision_start|>, 256 image pads (one 448x448
image, 1,024 patches), <|vision_end|>, 76 ordinary tokens (334 tokens), pixel values
((i % 251) / 125 - 1). Rows (one JSON line each, median of --reps after a warm-up):
vision, prefill, decode_bN (greedy, (32 - 1) new tokens' time = generate(32) - generate(1)),
lora_step (peft LoRA r8 on q/k/v/o/gate/up/down: forward + backward of the last logits' mean);
then peak_rss_bytes (CPU) or peak GPU memory.

With --load DIR it only times `from_pretrained(DIR)` in --dtype onto --device (row `load`, then
`load_peak_rss_bytes`), for `vldac vlm load` on the same checkpoint.
"""
import argparse
import json
import resource
import statistics
import sys
import time

import torch
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

SHAPES = {
    "2b": dict(vocab=151936, hidden=1536, inter=8960, layers=28, heads=12, kv=2, tie=True),
    "7b": dict(vocab=152064, hidden=3584, inter=18944, layers=28, heads=28, kv=4, tie=False),
}
IMAGE_PAD, VISION_START, VISION_END = 151655, 151652, 151653


def config(name):
    base, _, layers = name.partition(":")
    s = dict(SHAPES[base])
    depth = 32
    if layers:
        s["layers"] = depth = int(layers)
    text = dict(vocab_size=s["vocab"], hidden_size=s["hidden"], intermediate_size=s["inter"],
                num_hidden_layers=s["layers"], num_attention_heads=s["heads"], num_key_value_heads=s["kv"],
                rms_norm_eps=1e-6, tie_word_embeddings=s["tie"], max_position_embeddings=32768, hidden_act="silu",
                bos_token_id=151643, eos_token_id=151645,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]})
    vision = dict(depth=depth, embed_dim=1280, num_heads=16, mlp_ratio=4, hidden_size=s["hidden"], patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
    return Qwen2VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=s["tie"],
                         image_token_id=IMAGE_PAD, video_token_id=151656, vision_start_token_id=VISION_START,
                         vision_end_token_id=VISION_END, bos_token_id=151643, eos_token_id=151645)


def prompt(image=448, text_tokens=78):
    grid = image // 14
    patches = grid * grid
    pd = 3 * 2 * 14 * 14
    ids = [VISION_START] + [IMAGE_PAD] * (patches // 4) + [VISION_END]
    ids += [1000 + (i * 7919) % 50000 for i in range(text_tokens - 2)]
    px = ((torch.arange(patches * pd) % 251).float() / 125.0 - 1.0).reshape(patches, pd)
    return torch.tensor([ids]), px, torch.tensor([[1, grid, grid]])


def sync(dev):
    if dev.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, reps, dev):
    fn()
    sync(dev)
    ts = []
    for _ in range(max(reps, 1)):
        t = time.perf_counter()
        fn()
        sync(dev)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="2b:4")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16", "f16"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", default="vision,prefill,decode,lora_step")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--attn", default="sdpa", help="attn_implementation (sdpa, eager, flash_attention_2)")
    ap.add_argument("--load", default=None, help="time loading this checkpoint directory instead")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[a.dtype]
    if a.load:
        return load(a, dtype)
    rows = a.rows.split(",")
    label = {"impl": "hf", "shape": a.shape, "device": a.device, "dtype": a.dtype,
             "torch": torch.__version__, "threads": a.threads}

    def emit(row, seconds, **extra):
        print(json.dumps({"row": row, "seconds": seconds, **extra, **label}), flush=True)

    t0 = time.perf_counter()
    cfg = config(a.shape)
    cfg._attn_implementation = a.attn
    torch.manual_seed(7)
    with torch.device(a.device):
        model = Qwen2VLForConditionalGeneration(cfg).to(dtype).eval()
    emit("build", time.perf_counter() - t0)
    ids, px, grid = prompt()
    ids, px, grid = ids.to(a.device), px.to(a.device, dtype), grid.to(a.device)
    # transformers >= 5 wants the processor's mm_token_type_ids (1 on image tokens) for M-RoPE.
    import transformers
    mm = {}
    if int(transformers.__version__.split(".")[0]) >= 5:
        mm = {"mm_token_type_ids": (ids == IMAGE_PAD).long()}
    with torch.no_grad():
        if "vision" in rows:
            emit("vision", timed(lambda: model.model.visual(px, grid_thw=grid), a.reps, a.device))
        if "prefill" in rows:
            emit("prefill", timed(lambda: model(input_ids=ids, pixel_values=px, image_grid_thw=grid, **mm), a.reps,
                                  a.device))
        if "decode" in rows:
            for b in [int(x) for x in a.batches.split(",")]:
                bi, bp, bg = ids.repeat(b, 1), px.repeat(b, 1), grid.repeat(b, 1)
                bmm = {k: v.repeat(b, 1) for k, v in mm.items()}

                def gen(n):
                    return lambda: model.generate(input_ids=bi, pixel_values=bp, image_grid_thw=bg, max_new_tokens=n,
                                                  min_new_tokens=n, do_sample=False, pad_token_id=0, **bmm)
                full = timed(gen(a.new_tokens), a.reps, a.device)
                first = timed(gen(1), a.reps, a.device)
                s = full - first
                if s <= 0:
                    # A noisy machine can make generate(1) outlast generate(32): no rate can be derived.
                    emit(f"decode_b{b}", None, invalid=f"generate(1) took {first:.3f} s, "
                                                       f"generate({a.new_tokens}) {full:.3f} s")
                else:
                    emit(f"decode_b{b}", s, tokens_per_s=b * (a.new_tokens - 1) / s)
    if "lora_step" in rows:
        from peft import LoraConfig, get_peft_model
        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        # Only the language model's projections, as ours (the vision tower's qkv/proj/fc are not named so).
        pm = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                              target_modules=r".*language_model.*\.(" + "|".join(targets) + ")"))

        def step():
            out = pm(input_ids=ids, pixel_values=px, image_grid_thw=grid, **mm)
            out.logits[:, -1].float().mean().backward()
        emit("lora_step", timed(step, a.reps, a.device))
    peak = torch.cuda.max_memory_allocated() if a.device.startswith("cuda") else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"row": "peak_rss_bytes" if not a.device.startswith("cuda") else "peak_gpu_bytes",
                      "value": peak, **label}), flush=True)


def load(a, dtype):
    label = {"impl": "hf", "device": a.device, "dtype": a.dtype, "torch": torch.__version__, "threads": a.threads}
    t = time.perf_counter()
    model = Qwen2VLForConditionalGeneration.from_pretrained(a.load, dtype=dtype, device_map=a.device).eval()
    sync(a.device)
    seconds = time.perf_counter() - t
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"row": "load", "seconds": seconds, "params": params, **label}), flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"row": "load_peak_rss_bytes", "value": peak, **label}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
