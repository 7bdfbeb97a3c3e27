#!/usr/bin/env python3
"""Side-by-side step+render throughput: the Python peer (miniworld 2.1.0, headless EGL + llvmpipe)
against vldac-miniworld, one thread each, same envs, sizes and action pattern.

Usage (from the repo root, after `cargo build --release -p vldac-miniworld --example speed`):
    target/venvs/mw/bin/python crates/miniworld/bench/peer_speed.py [--steps 2000]
Prints, per env and size, CPU time per step of both over the timed loop only (the peer: the whole
process, so llvmpipe's rasterizer threads count; ours: its one thread) and the ratio Python / Rust,
the fastest of --repeat runs each. CPU time rather than wall time, so a busy shared machine does
not decide the ratio; wall-clock steps/s are printed too.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time

import pyglet

pyglet.options["headless"] = True

import gymnasium as gym  # noqa: E402

import miniworld  # noqa: E402,F401

ENVS = ["OneRoom", "Hallway", "FourRooms", "WallGap"]
SIZES = [(80, 60), (224, 224)]
PATTERN = [2, 2, 0, 2, 2, 1, 2, 3, 2, 1]


def peer_speed(env_id, size, steps):
    with contextlib.redirect_stdout(sys.stderr):
        env = gym.make(env_id, obs_width=size[0], obs_height=size[1])
    u = env.unwrapped
    env.reset(seed=0)
    for k in range(50):  # warm-up
        u.step(PATTERN[k % len(PATTERN)])
    env.reset(seed=0)
    t0, c0 = time.perf_counter(), time.process_time()
    for k in range(steps):
        _, _, term, trunc, _ = u.step(PATTERN[k % len(PATTERN)])
        if term or trunc:
            env.reset()
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    env.close()
    return steps / dt, dc / steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per side; the fastest counts")
    ap.add_argument("--rust-bin", default="target/release/examples/speed")
    args = ap.parse_args()
    if not os.path.exists(args.rust_bin):
        sys.exit(f"{args.rust_bin} not found: run `cargo build --release -p vldac-miniworld --example speed` first")
    rows = []
    for name in ENVS:
        env_id = f"MiniWorld-{name}-v0"
        for size in SIZES:
            py_runs = [peer_speed(env_id, size, args.steps) for _ in range(args.repeat)]
            py, py_cpu = max(r[0] for r in py_runs), min(r[1] for r in py_runs)
            rs_runs = []
            for _ in range(args.repeat):
                out = subprocess.run([args.rust_bin, env_id, f"{size[0]}x{size[1]}", str(args.steps * 10)],
                                     check=True, capture_output=True, text=True).stdout
                r = json.loads(out)
                rs_runs.append((r["steps_per_s"], r["cpu_us_per_step"] * 1e-6))
            rs, rs_cpu = max(r[0] for r in rs_runs), min(r[1] for r in rs_runs)
            rows.append((env_id, size, py_cpu, rs_cpu))
            print(f"{env_id:26s} {size[0]}x{size[1]:<4d} CPU per step: python {py_cpu * 1e6:8.1f} us  "
                  f"rust {rs_cpu * 1e6:7.1f} us  ratio {py_cpu / rs_cpu:5.1f}x   "
                  f"(wall: python {py:6.0f} steps/s, rust {rs:6.0f} steps/s)", flush=True)
    for size in SIZES:
        r = [py / rs for (_, s, py, rs) in rows if s == size]
        print(f"mean CPU-time ratio at {size[0]}x{size[1]}: {sum(r) / len(r):.1f}x")


if __name__ == "__main__":
    main()
