#!/usr/bin/env python3
"""vldac text-environment bridge: serves ALFWorld or WebShop over JSON lines on stdin/stdout.

    textenv_bridge.py alfworld --games DIR [--max-steps 50] [--no-expert]
    textenv_bridge.py webshop --webshop-src DIR [--products F --attributes F --human F] [--offline-stubs]
    textenv_bridge.py generate --src DIR --out DIR      (ALFWorld games from PDDL problems)

Protocol (one JSON object per line; replies carry the request's "id"):
    -> {"id":1,"op":"hello"}
    <- {"id":1,"ok":true,"protocol":1,"backend":"alfworld","n_games":6,"max_steps":50,"versions":{...}}
    -> {"id":2,"op":"reset","game":0}            (or "gamefile": relative path; neither: next game)
    <- {"id":2,"ok":true,"obs":...,"task":...,"admissible":[...],"expert":[...],...}
    -> {"id":3,"op":"step","action":"go to fridge 1"}
    <- {"id":3,"ok":true,"obs":...,"reward":0.0,"done":false,"won":false,"truncated":false,"step":1,...}
    -> {"id":4,"op":"close"}                     <- {"id":4,"ok":true}
    errors: {"id":n,"ok":false,"error":"<kind>","message":"..."}   kinds: bad_json, bad_request,
            unknown_op, needs_reset, env_error
The real stdout is kept for the protocol only: file descriptor 1 is pointed at stderr at start, so
everything the environments print (tqdm, warnings, C libraries) goes to stderr.
"""
import argparse
import collections
import glob
import json
import os
import sys
import traceback

PROTOCOL = 1
MAX_CACHED_GAMES = 8


def protocol_channel():
    """Returns a line-buffered writer on the real stdout, and sends fd 1 to stderr."""
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


class BridgeError(Exception):
    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


# --------------------------------------------------------------------------------------- ALFWorld
class AlfworldBackend:
    name = "alfworld"

    def __init__(self, games_dir, max_steps, expert):
        import textworld  # noqa: F401  (fail early with a clear import error)
        self.root = os.path.abspath(games_dir)
        self.max_steps = max_steps
        self.expert = expert
        self.games = []
        for path in sorted(glob.glob(os.path.join(self.root, "**", "game.tw-pddl"), recursive=True)):
            traj = os.path.join(os.path.dirname(path), "traj_data.json")
            if "movable" in path or "Sliced" in path or not os.path.exists(traj):
                continue
            with open(path) as f:
                if not json.load(f).get("solvable"):
                    continue
            self.games.append(path)
        self.envs = collections.OrderedDict()  # gamefile -> env, least recently used first
        self.env = None
        self.next_game = 0
        self.steps = 0
        self.score = 0.0
        self.done = True

    def versions(self):
        import textworld
        try:
            from importlib.metadata import version
            alf = version("alfworld")
        except Exception:
            alf = "unknown"
        return {"alfworld": alf, "textworld": textworld.__version__, "python": sys.version.split()[0]}

    def hello(self):
        return {"n_games": len(self.games), "max_steps": self.max_steps,
                "games": [os.path.relpath(g, self.root) for g in self.games]}

    def _make(self, gamefile):
        if gamefile in self.envs:
            self.envs.move_to_end(gamefile)
            return self.envs[gamefile]
        # Grounding a game costs ~1 s, so envs are reused; keep a few (a train split has 3553).
        while len(self.envs) >= MAX_CACHED_GAMES:
            _, old = self.envs.popitem(last=False)
            try:
                old.close()
            except Exception:
                pass
        import textworld
        import textworld.gym
        from alfworld.agents.environment.alfred_tw_env import (AlfredDemangler, AlfredExpert,
                                                               AlfredExpertType, AlfredInfos)
        extras = ["gamefile"] + (["expert_plan"] if self.expert else [])
        infos = textworld.EnvInfos(won=True, admissible_commands=True, score=True, extras=extras)
        wrappers = [AlfredDemangler(shuffle=False), AlfredInfos]
        if self.expert:
            wrappers.append(AlfredExpert(expert_type=AlfredExpertType.HANDCODED))
        # The step cap is ours (Rust side and here); TextWorld's own limit is set past it.
        env_id = textworld.gym.register_game(gamefile, infos, max_episode_steps=self.max_steps + 1,
                                             asynchronous=False, wrappers=wrappers)
        env = textworld.gym.make(env_id)
        self.envs[gamefile] = env
        return env

    def reset(self, req):
        if not self.games:
            raise BridgeError("env_error", f"no solvable games under {self.root}")
        if "gamefile" in req:
            path = os.path.join(self.root, str(req["gamefile"]))
            if path not in self.games:
                raise BridgeError("bad_request", f"unknown gamefile {req['gamefile']!r}")
            idx = self.games.index(path)
        elif "game" in req:
            idx = req["game"]
            if not isinstance(idx, int) or not 0 <= idx < len(self.games):
                raise BridgeError("bad_request", f"game must be an index in 0..{len(self.games)}, got {idx!r}")
        else:
            idx = self.next_game % len(self.games)
        self.next_game = idx + 1
        gamefile = self.games[idx]
        self.env = self._make(gamefile)
        obs, infos = self.env.reset()
        self.steps, self.score, self.done = 0, 0.0, False
        task = ""
        marker = "Your task is to: "
        if marker in obs:
            task = obs.split(marker, 1)[1].strip().rstrip(".")
        with open(os.path.join(os.path.dirname(gamefile), "traj_data.json")) as f:
            task_type = json.load(f).get("task_type", "")
        return {"obs": obs, "task": task, "task_type": task_type, "game": idx,
                "gamefile": os.path.relpath(gamefile, self.root),
                "admissible": sorted(infos.get("admissible_commands") or []),
                "expert": list(infos.get("extra.expert_plan") or [])}

    def step(self, req):
        if self.env is None or self.done:
            raise BridgeError("needs_reset", "step before reset or after the episode ended")
        action = req.get("action")
        if not isinstance(action, str):
            raise BridgeError("bad_request", "step needs a string 'action'")
        obs, score, done, infos = self.env.step(action)
        self.steps += 1
        won = bool(infos.get("won"))
        reward = float(score) - self.score
        self.score = float(score)
        truncated = (not won) and self.steps >= self.max_steps
        self.done = bool(done) or won or truncated
        return {"obs": obs, "reward": reward, "score": float(score), "done": self.done and not truncated,
                "won": won, "truncated": truncated, "step": self.steps,
                "admissible": sorted(infos.get("admissible_commands") or []),
                "expert": list(infos.get("extra.expert_plan") or [])}


# ---------------------------------------------------------------------------------------- WebShop
class WebshopBackend:
    name = "webshop"

    def __init__(self, args):
        src = os.path.abspath(args.webshop_src)
        sys.path.insert(0, src)
        if args.offline_stubs:
            # spaCy model / pyserini (Java) are not installable offline: use the same stand-ins as
            # the fixture generator (precomputed nouns, our BM25).
            here = os.path.dirname(os.path.abspath(__file__))
            sys.path.insert(0, os.path.join(here, "..", "fixtures", "webshop"))
            import gen_fixtures as gf
            gf.install_stubs()
            with open(args.products) as f:
                for p in json.load(f):
                    gf.NOUNS[p["name"]] = p.get("name_nouns", [])
        import types
        envs_pkg = types.ModuleType("web_agent_site.envs")  # skip envs/__init__ (selenium)
        envs_pkg.__path__ = [os.path.join(src, "web_agent_site", "envs")]
        sys.modules["web_agent_site.envs"] = envs_pkg
        import importlib
        engine = importlib.import_module("web_agent_site.engine.engine")
        if args.attributes:
            engine.DEFAULT_ATTR_PATH = os.path.abspath(args.attributes)
        if args.human:
            engine.HUMAN_ATTR_PATH = os.path.abspath(args.human)
        env_mod = importlib.import_module("web_agent_site.envs.web_agent_text_env")
        if args.offline_stubs:
            holder = {}
            orig = env_mod.load_products

            def load_and_keep(*a, **kw):
                res = orig(*a, **kw)
                holder["products"] = res[0]
                return res
            env_mod.load_products = load_and_keep
            env_mod.init_search_engine = lambda num_products=None: gf.OurBM25(holder["products"])
        import random
        random.seed(args.seed)
        kwargs = dict(observation_mode="text", human_goals=True, num_products=args.num_products)
        if args.products:
            kwargs["file_path"] = os.path.abspath(args.products)
        self.env = env_mod.WebAgentTextEnv(**kwargs)
        self.max_steps = args.max_steps
        self.steps = 0
        self.done = True
        self.next_goal = 0

    def versions(self):
        return {"webshop": "princeton-nlp/WebShop (source checkout)", "python": sys.version.split()[0]}

    def hello(self):
        reply = {"n_games": len(self.env.server.goals), "max_steps": self.max_steps}
        prices = self.env.server.product_prices
        if len(prices) <= 10000:  # small catalogues: the sampled prices, for reproducing rewards
            reply["product_prices"] = prices
        return reply

    def _admissible(self):
        avail = self.env.get_available_actions()
        acts = ["search[<query>]"] if avail["has_search_bar"] else []
        return acts + [f"click[{c}]" for c in avail["clickables"] if c != "search"]

    def reset(self, req):
        n = len(self.env.server.goals)
        idx = req.get("game", self.next_goal % max(n, 1))
        if not isinstance(idx, int) or not 0 <= idx < n:
            raise BridgeError("bad_request", f"game must be a goal index in 0..{n}, got {idx!r}")
        self.next_goal = idx + 1
        obs, _ = self.env.reset(session=idx)
        self.steps, self.done = 0, False
        goal = {k: v for k, v in self.env.server.user_sessions[self.env.session]["goal"].items() if k != "weight"}
        task = self.env.instruction_text.strip()
        if task.startswith("Instruction:"):
            task = task[len("Instruction:"):].strip()
        return {"obs": obs, "task": task, "game": idx, "goal_asin": goal["asin"], "goal": goal,
                "admissible": self._admissible(), "expert": []}

    def step(self, req):
        if self.done:
            raise BridgeError("needs_reset", "step before reset or after the episode ended")
        action = req.get("action")
        if not isinstance(action, str):
            raise BridgeError("bad_request", "step needs a string 'action'")
        obs, reward, done, _ = self.env.step(action)
        self.steps += 1
        truncated = (not done) and self.steps >= self.max_steps
        self.done = bool(done) or truncated
        return {"obs": obs, "reward": float(reward), "done": bool(done), "won": float(reward) >= 1.0,
                "truncated": truncated, "step": self.steps, "admissible": self._admissible(), "expert": []}


# ------------------------------------------------------------------------------------------ serve
def start(make_backend):
    """Builds the backend and serves it; a failed start is one "startup" error line, exit 3."""
    out = protocol_channel()
    try:
        backend = make_backend()
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        out.write(json.dumps({"id": None, "ok": False, "error": "startup",
                              "message": f"{type(e).__name__}: {e}"}) + "\n")
        sys.exit(3)
    serve(backend, out)


def serve(backend, out):
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        rid = None
        try:
            try:
                req = json.loads(line)
            except ValueError as e:
                raise BridgeError("bad_json", f"request is not JSON: {e}")
            if not isinstance(req, dict):
                raise BridgeError("bad_request", "request must be a JSON object")
            rid = req.get("id")
            op = req.get("op")
            if op == "hello":
                reply = {"protocol": PROTOCOL, "backend": backend.name, "versions": backend.versions(),
                         **backend.hello()}
            elif op == "reset":
                reply = backend.reset(req)
            elif op == "step":
                reply = backend.step(req)
            elif op == "close":
                out.write(json.dumps({"id": rid, "ok": True}) + "\n")
                return
            else:
                raise BridgeError("unknown_op", f"unknown op {op!r}: expected hello, reset, step or close")
            out.write(json.dumps({"id": rid, "ok": True, **reply}) + "\n")
        except BridgeError as e:
            out.write(json.dumps({"id": rid, "ok": False, "error": e.kind, "message": str(e)}) + "\n")
        except Exception as e:  # environment failure: report, keep serving
            traceback.print_exc(file=sys.stderr)
            out.write(json.dumps({"id": rid, "ok": False, "error": "env_error",
                                  "message": f"{type(e).__name__}: {e}"}) + "\n")


def generate(src, out):
    """ALFWorld's own generator (alfworld-generate) on our PDDL problems, written to `out`."""
    import shutil
    import subprocess
    import alfworld
    data = os.path.join(os.path.dirname(alfworld.__file__), "data")
    src, out = os.path.abspath(src), os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    exe = shutil.which("alfworld-generate") or os.path.join(os.path.dirname(sys.executable), "alfworld-generate")
    cmd = [sys.executable, exe, "--data_path", src, "--save_path", out,
           "--domain", os.path.join(data, "alfred.pddl"), "--grammar", os.path.join(data, "alfred.twl2"),
           "--end", "1000000000", "--verbose"]  # the default end (-1) would skip the last problem
    subprocess.run(cmd, check=True, stdout=sys.stderr, stdin=subprocess.DEVNULL,
                   env={**os.environ, "ALFWORLD_DATA": out})
    games = sorted(glob.glob(os.path.join(out, "**", "game.tw-pddl"), recursive=True))
    solvable = [g for g in games if json.load(open(g)).get("solvable")]
    print(json.dumps({"games": len(games), "solvable": len(solvable)}), file=sys.stderr)
    if len(solvable) != len(games) or not games:
        sys.exit(f"only {len(solvable)} of {len(games)} generated games are solvable")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("alfworld")
    a.add_argument("--games", required=True)
    a.add_argument("--max-steps", type=int, default=50)
    a.add_argument("--no-expert", action="store_true")
    w = sub.add_parser("webshop")
    w.add_argument("--webshop-src", required=True, help="WebShop checkout (contains web_agent_site/)")
    w.add_argument("--products")
    w.add_argument("--attributes")
    w.add_argument("--human")
    w.add_argument("--num-products", type=int)
    w.add_argument("--max-steps", type=int, default=50)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--offline-stubs", action="store_true",
                   help="stub spaCy and pyserini (precomputed nouns, our BM25); for offline tests")
    g = sub.add_parser("generate")
    g.add_argument("--src", required=True)
    g.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.cmd == "generate":
        generate(args.src, args.out)
        return
    start(lambda: AlfworldBackend(args.games, args.max_steps, not args.no_expert) if args.cmd == "alfworld"
          else WebshopBackend(args))


if __name__ == "__main__":
    main()
