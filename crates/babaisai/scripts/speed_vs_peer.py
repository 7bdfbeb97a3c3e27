#!/usr/bin/env python3
"""Side-by-side speed: the Python peer (baba-is-ai in BALROG's wrapper) vs vldac-babaisai.

Same task (two_room-break_stop-make_win), same kind of random action stream, four workloads:
  engine_step      the bare env step (no text, no frame)
  text_step        BALROG's wrapper step with its text; the peer's frame is stubbed out
  text_frame_step  BALROG's wrapper step as BALROG runs it (text + 32 px RGB frame)
  reset            seed + new level + text
Run (venv and peer copies as in fixtures/gen_fixtures.py):
  cargo build --release -p vldac-babaisai --example speed
  target/venvs/babaisai/bin/python crates/babaisai/scripts/speed_vs_peer.py \
      --peer target/peer --balrog target/balrog --rust target/release/examples/speed
"""

import argparse
import json
import random
import subprocess
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
from gen_fixtures import load  # noqa: E402

TASK = "two_room-break_stop-make_win"
LABELS = ["idle", "up", "right", "down", "left"]


def rate(n, fn):
    t = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", type=Path, required=True)
    ap.add_argument("--balrog", type=Path, required=True)
    ap.add_argument("--rust", type=Path, required=True, help="target/release/examples/speed")
    ap.add_argument("--n", type=int, default=20_000)
    args = ap.parse_args()
    import numpy as np

    baba, Wrapper, _ = load(args.peer, args.balrog)
    pick = random.Random(0)
    acts = [pick.randrange(5) for _ in range(args.n)]

    env = baba.make(f"env/{TASK}")

    def engine(n):
        np.random.seed(0)
        env.reset()
        for a in acts[:n]:
            if env.step(a)[2]:
                env.reset()

    def wrapped(render):
        w = Wrapper(baba.make(f"env/{TASK}"))
        if not render:
            w.env.render = lambda mode="rgb_array": np.zeros((1, 1, 3), np.uint8)

        def go(n):
            np.random.seed(0)
            w.reset()
            for a in acts[:n]:
                if w.step(LABELS[a])[2]:
                    w.reset()

        return go

    def resets(n):
        w = Wrapper(baba.make(f"env/{TASK}"))
        w.env.render = lambda mode="rgb_array": np.zeros((1, 1, 3), np.uint8)
        for s in range(n):
            np.random.seed(s)
            w.reset()

    wrapped(True)(50)  # warm the peer's tile cache
    py = {
        "engine_step_per_s": rate(args.n, engine),
        "text_step_per_s": rate(args.n, wrapped(False)),
        "text_frame_step_per_s": rate(max(args.n // 20, 200), wrapped(True)),
        "reset_per_s": rate(max(args.n // 10, 200), resets),
    }
    rs = json.loads(subprocess.run([str(args.rust), str(args.n * 10)], check=True, capture_output=True, text=True).stdout)
    print(f"task {TASK}; steps/s (higher is better)")
    print(f"{'workload':<22}{'python peer':>14}{'vldac':>14}{'ratio':>10}")
    for k, v in py.items():
        print(f"{k:<22}{v:>14.0f}{rs[k]:>14.0f}{rs[k] / v:>9.0f}x")


if __name__ == "__main__":
    main()
