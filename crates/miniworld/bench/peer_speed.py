#!/usr/bin/env python3
"""Side-by-side step+render throughput: the Python peer (miniworld 2.1.0, headless EGL + llvmpipe)
against vldac-miniworld, one thread each, same envs, sizes and action pattern.

Usage (from the repo root, after `cargo xtask setup miniworld-peer` and
`cargo build --release -p vldac-miniworld --example speed`):
    target/venvs/mw/bin/python crates/miniworld/bench/peer_speed.py [--steps 2000] [--repeat 3]
        [--sizes 80x60,224x224,448x448] [--envs OneRoom,FourRooms]
Prints, per env and size, time per step of both over the timed loop only, the fastest of --repeat
runs each, and the ratios Python / Rust:
  * CPU time (the peer: its whole process, so llvmpipe's rasterizer threads count; ours: its one
    thread), which a busy machine moves less;
  * wall-clock time, what a user waits for (the peer's llvmpipe may use more than one core).
The machine's load average (1, 5, 15 min) is printed at the start and at the end: on an idle
machine the 1-minute figure stays well below the core count (the script itself keeps about one
core busy).
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
SIZES = "80x60,224x224"
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
    return dt / steps, dc / steps


def load():
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} CPUs)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000, help="peer steps per run (ours: 10x as many)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per side; the fastest counts")
    ap.add_argument("--sizes", default=SIZES, help="comma-separated WxH list")
    ap.add_argument("--envs", default=",".join(ENVS), help="comma-separated env names (without MiniWorld-/-v0)")
    ap.add_argument("--rust-bin", default="target/release/examples/speed")
    args = ap.parse_args()
    if not os.path.exists(args.rust_bin):
        sys.exit(f"{args.rust_bin} not found: run `cargo build --release -p vldac-miniworld --example speed` first")
    try:
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    except ValueError:
        sys.exit(f"--sizes: expected WxH[,WxH...], got {args.sizes!r}")
    if any(len(s) != 2 or min(s) <= 0 for s in sizes):
        sys.exit(f"--sizes: expected WxH[,WxH...] with positive sizes, got {args.sizes!r}")
    print(f"start: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {load()}", flush=True)
    rows = []
    for name in args.envs.split(","):
        env_id = f"MiniWorld-{name}-v0"
        for size in sizes:
            py_runs = [peer_speed(env_id, size, args.steps) for _ in range(args.repeat)]
            py_wall, py_cpu = min(r[0] for r in py_runs), min(r[1] for r in py_runs)
            rs_runs = []
            for _ in range(args.repeat):
                out = subprocess.run([args.rust_bin, env_id, f"{size[0]}x{size[1]}", str(args.steps * 10)],
                                     check=True, capture_output=True, text=True).stdout
                r = json.loads(out)
                rs_runs.append((1.0 / r["steps_per_s"], r["cpu_us_per_step"] * 1e-6))
            rs_wall, rs_cpu = min(r[0] for r in rs_runs), min(r[1] for r in rs_runs)
            rows.append((env_id, size, py_cpu, rs_cpu, py_wall, rs_wall))
            print(f"{env_id:26s} {size[0]}x{size[1]:<4d} CPU per step: python {py_cpu * 1e6:8.1f} us  "
                  f"rust {rs_cpu * 1e6:7.1f} us  ratio {py_cpu / rs_cpu:5.1f}x   "
                  f"wall per step: python {py_wall * 1e6:8.1f} us  rust {rs_wall * 1e6:7.1f} us  "
                  f"ratio {py_wall / rs_wall:5.1f}x", flush=True)
    for size in sizes:
        sel = [r for r in rows if r[1] == size]
        cpu = [r[2] / r[3] for r in sel]
        wall = [r[4] / r[5] for r in sel]
        print(f"{size[0]}x{size[1]}: CPU-time ratio mean {sum(cpu) / len(cpu):.1f}x (min {min(cpu):.1f}x), "
              f"wall-clock ratio mean {sum(wall) / len(wall):.1f}x (min {min(wall):.1f}x)")
    print(f"end: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {load()}", flush=True)


if __name__ == "__main__":
    main()
