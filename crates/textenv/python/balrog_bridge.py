#!/usr/bin/env python3
"""vldac BALROG bridge: Crafter (PyPI `crafter`) and NetHack (PyPI `balrog-nle`, NetHackChallenge-v0)
served over the same JSON-lines protocol as textenv_bridge.py, with the observations BALROG's agents see.

    balrog_bridge.py crafter [--max-steps 2000] [--size 256] [--precise-location] [--no-unique-items]
    balrog_bridge.py nle [--obs-mode hybrid|language] [--achievements FILE] [--no-progress-timeout 150]

Protocol (one JSON object per line; replies carry the request's "id"):
    -> {"id":1,"op":"hello"}
    <- {"id":1,"ok":true,"protocol":1,"backend":"crafter","actions":[...],"default_action":"Noop",
        "instruction_prompt":"...","max_steps":2000,"progression_table":true,"versions":{...}}
    -> {"id":2,"op":"reset","seed":7}
    <- {"id":2,"ok":true,"long_term_context":...,"short_term_context":...,"frame":{"width":256,"height":256,
        "rgb_b64":...},"progression":0.0,"stats":{...}}
    -> {"id":3,"op":"step","action":"Move West"}
    <- {"id":3,"ok":true,"long_term_context":...,"reward":0.0,"terminated":false,"truncated":false,
        "progression":0.0,"stats":{...},"frame":...}
    -> {"id":4,"op":"close"}                     <- {"id":4,"ok":true}
A step with an action outside "actions" is refused ({"ok":false,"error":"bad_action"}); the evaluator
(Rust side) replaces invalid model outputs by "default_action" before stepping, as BALROG does.
"reset" may carry "frames": false to skip the RGB frame in this episode's replies (text-only agents).

Seeding (differs from BALROG on purpose): BALROG draws Crafter's world seed from the global numpy RNG
when it builds the env, before it seeds that RNG, and seeds only NetHack's core RNG; so its logged seeds
do not replay an episode. Here "seed" fixes the Crafter world (crafter.Env(seed=seed)) and both NetHack
RNGs (core = disp = seed, no reseeding), so the same seed and actions give the same episode.
"""
import argparse
import base64
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from textenv_bridge import BridgeError, start  # noqa: E402

# ------------------------------------------------------------------------------------------ prompts
# BALROG's agent-facing texts (balrog/environments/{crafter,nle}/__init__.py): the benchmark's prompt
# protocol, reproduced so that scores are comparable. The achievement names are Crafter's own.

CRAFTER_ACTIONS = [
    ("Noop", "do nothing"),
    ("Move West", "move west on flat ground"),
    ("Move East", "move east on flat ground"),
    ("Move North", "move north on flat ground"),
    ("Move South", "move south on flat ground"),
    ("Do", "Multiuse action to collect material, drink from lake and hit creature in front"),
    ("Sleep", "sleep when energy level is below maximum"),
    ("Place Stone", "place a stone in front"),
    ("Place Table", "place a table"),
    ("Place Furnace", "place a furnace"),
    ("Place Plant", "place a plant"),
    ("Make Wood Pickaxe", "craft a wood pickaxe with a nearby table and wood in inventory"),
    ("Make Stone Pickaxe", "craft a stone pickaxe with a nearby table, wood, and stone in inventory"),
    ("Make Iron Pickaxe", "craft an iron pickaxe with a nearby table and furnace, wood, coal, and iron in inventory"),
    ("Make Wood Sword", "craft a wood sword with a nearby table and wood in inventory"),
    ("Make Stone Sword", "craft a stone sword with a nearby table, wood, and stone in inventory"),
    ("Make Iron Sword", "craft an iron sword with a nearby table and furnace, wood, coal, and iron in inventory"),
]

# The order BALROG lists the 22 achievements in (Crafter's paper order, not crafter's sorted list).
CRAFTER_ACHIEVEMENT_ORDER = [
    "collect_wood", "place_table", "eat_cow", "collect_sapling", "collect_drink", "make_wood_pickaxe",
    "make_wood_sword", "place_plant", "defeat_zombie", "collect_stone", "place_stone", "eat_plant",
    "defeat_skeleton", "make_stone_pickaxe", "make_stone_sword", "wake_up", "place_furnace", "collect_coal",
    "collect_iron", "make_iron_pickaxe", "make_iron_sword", "collect_diamond",
]


def crafter_prompt():
    actions = ",\n".join(f"{name}: {desc}" for name, desc in CRAFTER_ACTIONS)
    achievements = "\n".join(f"{i}. {a.replace('_', ' ').title()}" for i, a in enumerate(CRAFTER_ACHIEVEMENT_ORDER, 1))
    return (
        "You are an agent playing Crafter. The following are the only valid actions you can take in the game, "
        "followed by a short description of each action:\n\n"
        f"{actions}.\n\n"
        "These are the game achievements you can get:\n"
        f"{achievements}\n\n"
        "In a moment I will present a history of actions and observations from the game.\n"
        "Your goal is to get as far as possible by completing all the achievements.\n\n"
        "PLAY!"
    )


NLE_ACTION_HELP = [
    ("north", "move north"), ("east", "move east"), ("south", "move south"), ("west", "move west"),
    ("northeast", "move northeast"), ("southeast", "move southeast"), ("southwest", "move southwest"),
    ("northwest", "move northwest"), ("far north", "move far north"), ("far east", "move far east"),
    ("far south", "move far south"), ("far west", "move far west"), ("far northeast", "move far northeast"),
    ("far southeast", "move far southeast"), ("far southwest", "move far southwest"),
    ("far northwest", "move far northwest"), ("up", "go up a staircase"),
    ("down", "go down a staircase (tip: you can only go down if you are standing on the stairs)"),
    ("wait", "rest one move while doing nothing"),
    ("more", "display more of the message (tip: ONLY ever use when current message ends with --More--)"),
    ("annotate", "leave a note about the level"), ("apply", "apply (use) a tool"),
    ("call", "name a monster or object, or add an annotation"), ("cast", "cast a spell"),
    ("close", "close an adjacent door"), ("open", "open an adjacent door"), ("dip", "dip an object into something"),
    ("drop", "drop an item"), ("droptype", "drop specific item types (specify in the next prompt)"),
    ("eat", "eat something (tip: replenish food when hungry)"), ("esc", "exit menu or message"),
    ("engrave", "engrave writing on the floor (tip: Elbereth)"), ("enhance", "advance or check weapons skills"),
    ("fire", "fire ammunition from quiver"), ("fight", "fight a monster (even if you only guess one is there)"),
    ("force", "force a lock"), ("inventory", "show your inventory"), ("invoke", "invoke "),
    ("jump", "jump to a location"), ("kick", "kick an enemy or a locked door or chest"),
    ("look", "look at what is under you"), ("loot", "loot a box on the floor"),
    ("monster", "use a monster's special ability (when polymorphed)"),
    ("offer", "offer a sacrifice to the gods (tip: on an aligned altar)"),
    ("overview", "display an overview of the dungeon"), ("pay", "pay your shopping bill"),
    ("pickup", "pick up things at the current location"), ("pray", "pray to the gods for help"),
    ("puton", "put on an accessory"), ("quaff", "quaff (drink) something"),
    ("quiver", "select ammunition for quiver"), ("read", "read a scroll or spellbook"),
    ("remove", "remove an accessory"), ("rub", "rub a lamp or a stone"),
    ("search", "search for hidden doors and passages"), ("swap", "swap wielded and secondary weapons"),
    ("takeoff", "take off one piece of armor"), ("takeoffall", "take off all armor"),
    ("teleport", "teleport to another level (if you have the ability)"),
    ("throw", "throw something (e.g. a dagger or dart)"),
    ("travel", "travel to a specific location on the map (tip: in the next action, specify > or < for stairs, "
               "{ for fountain, and _ for altar)"),
    ("twoweapon", "toggle two-weapon combat"), ("untrap", "untrap something"), ("wear", "wear a piece of armor"),
    ("wield", "wield a weapon"), ("wipe", "wipe off your face"), ("zap", "zap a wand"),
    ("minus", "-"), ("space", " "), ("apos", "'"),
] + [(str(d), str(d)) for d in range(10)]

NLE_TIPS = [
    'When the message asks for a completion, such as: "What do you want to eat? [d or ?*]", you should respond '
    "with a single character corresponding to the item you want to eat/use.\n"
    '    - For example, "What do you want to eat? [dgh or ?*]" -> Possible answers are "d", "g", or "h" to eat the '
    "associated food.",
    'When the message asks for a direction, such as: "In what direction?" you should respond with a direction.',
    'When the message has --More-- at the end, your next action should be "more" to see the rest of the message.',
    "Explore the environment to find the stairs down to the next level.",
    "Always carefully read the last message to understand the current state of the game and decide your next "
    "action accordingly.",
    "If you keep moving in the same direction, you will eventually hit a wall and stop moving. Your message might "
    'be: "It\'s solid stone", or "It\'s a wall". Change your action to move in another direction to continue '
    "exploring the environment.",
    "Read the language observation carefully and look at ascii map or image observation provided to decide the "
    "next action to take and where to move next.",
    "You can attack monsters by moving into them.",
]


def nle_prompt():
    actions = ",\n".join(f"{name}: {desc}" for name, desc in NLE_ACTION_HELP)
    tips = "\n".join(f"- {t}" for t in NLE_TIPS)
    return (
        "You are an agent playing NetHack. The following are the possible actions you can take in the game, "
        "followed by a short description of each action:\n\n"
        f"{actions}.\n\n"
        f"Tips:\n{tips}\n\n"
        "In a moment I will present a history of actions and observations from the game.\n"
        "Your goal is to get as far as possible in the game.\n\n"
        "PLAY!"
    )


def frame_json(rgb):
    """An HxWx3 uint8 array as {"width", "height", "rgb_b64"} (raw RGB rows, base64)."""
    import numpy as np
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    return {"width": int(w), "height": int(h), "rgb_b64": base64.b64encode(rgb.tobytes()).decode("ascii")}


def versions(*dists):
    from importlib.metadata import version
    out = {"python": sys.version.split()[0]}
    for d in dists:
        try:
            out[d] = version(d)
        except Exception:
            out[d] = "unknown"
    return out


def int_seed(req):
    seed = req.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise BridgeError("bad_request", f"seed must be a non-negative integer, got {seed!r}")
    return seed


# ------------------------------------------------------------------------------------------ Crafter
class _OrderedSet(dict):
    """A set that iterates in insertion order (a dict with None values)."""

    def add(self, item):
        self[item] = None

    def remove(self, item):
        del self[item]

    def copy(self):
        return _OrderedSet(self)


def make_crafter_deterministic(crafter):
    """crafter keeps each chunk's objects in a `set`, which iterates in memory-address order, and picks
    the creature to despawn by index into that order; so one seed can play out differently in two
    processes. Insertion-ordered chunk sets make an episode a function of (seed, actions)."""
    import collections
    world = crafter.engine.World
    if getattr(world, "_vldac_ordered", False):
        return
    reset = world.reset

    def ordered_reset(self, *args, **kwargs):
        reset(self, *args, **kwargs)
        self._chunks = collections.defaultdict(_OrderedSet)
    world.reset = ordered_reset
    world._vldac_ordered = True


class CrafterBackend:
    """Crafter with BALROG's language view: what lies in the 9x7 local view (closest of each kind, by
    Manhattan distance and compass direction), what the player faces, status and inventory."""

    name = "crafter"
    VITALS = ["health", "food", "drink", "energy"]

    def __init__(self, args):
        import crafter
        import numpy as np
        make_crafter_deterministic(crafter)
        self.crafter, self.np = crafter, np
        self.max_steps = args.max_steps
        self.size = (args.size, args.size)
        self.unique_items = not args.no_unique_items
        self.precise = args.precise_location
        self.skip_items = [s for s in args.skip_items.split(",") if s]
        self.edge_only_items = [s for s in args.edge_only_items.split(",") if s]
        self.action_index = {name: i for i, (name, _) in enumerate(CRAFTER_ACTIONS)}
        if len(crafter.constants.actions) != len(CRAFTER_ACTIONS):
            raise RuntimeError(f"crafter has {len(crafter.constants.actions)} actions, expected {len(CRAFTER_ACTIONS)}")
        probe = crafter.Env(seed=0)
        # Names of semantic ids: materials by name, objects by lower-cased class name.
        self.names = {}
        for key, idx in list(probe._world._mat_ids.items()) + list(probe._sem_view._obj_ids.items()):
            self.names[idx] = key.__name__.lower() if isinstance(key, type) else str(key)
        self.player_id = next(i for i, n in self.names.items() if n == "player")
        self.env = None
        self.done = True
        self.frames = True

    def versions(self):
        return versions("crafter", "numpy")

    def hello(self):
        return {"actions": [a for a, _ in CRAFTER_ACTIONS], "default_action": "Noop",
                "instruction_prompt": crafter_prompt(), "max_steps": self.max_steps, "progression_table": True,
                "achievements": CRAFTER_ACHIEVEMENT_ORDER}

    # -- language view
    @staticmethod
    def _offset_text(dx, dy, precise):
        """Where (dx, dy) lies from the player (x grows east, y grows south)."""
        if precise:
            parts = []
            for d, neg, pos in ((dy, "north", "south"), (dx, "west", "east")):
                if d:
                    parts.append(f"{abs(d)} step{'s' if abs(d) > 1 else ''} {neg if d < 0 else pos}")
            return " and ".join(parts) if parts else "at your location"
        dirs = []
        if dy:
            dirs.append("north" if dy < 0 else "south")
        if dx:
            dirs.append("west" if dx < 0 else "east")
        dist = abs(dx) + abs(dy)
        return f"{dist} step{'s' if dist > 1 else ''} to your {'-'.join(dirs)}"

    def _scene(self, info):
        np = self.np
        sem, (px, py), view = info["semantic"], info["player_pos"], self.env._view
        if sem[px, py] != self.player_id:
            raise ValueError("player not at its position")
        # The text view: 9 columns around the player, and the 7 rows the image shows (numpy slice
        # semantics kept, including what they do at the map border).
        local = sem[px - view[0] // 2: px + view[0] // 2 + 1, py - view[1] // 2 + 1: py + view[1] // 2]
        cx, cy = view[0] // 2, view[1] // 2 - 1
        skip = {i for i, n in self.names.items() if n in self.skip_items}
        facing_dir = self.env._player.facing
        fx, fy = cx + facing_dir[0], cy + facing_dir[1]
        if 0 <= fx < local.shape[0] and 0 <= fy < local.shape[1]:
            tid = int(local[int(fx), int(fy)])
            facing = "nothing" if tid in skip else self.names.get(tid, str(tid))
        else:
            facing = "nothing"
        edges = {}
        for name in self.edge_only_items:
            idx = next((i for i, n in self.names.items() if n == name), None)
            if idx is None:
                raise ValueError(f"unknown edge-only item {name!r}")
            mask = local == idx
            other = ~mask
            grown = other.copy()  # 3x3 cross dilation of "not item", border counts as not set
            grown[1:, :] |= other[:-1, :]
            grown[:-1, :] |= other[1:, :]
            grown[:, 1:] |= other[:, :-1]
            grown[:, :-1] |= other[:, 1:]
            edges[idx] = grown & mask
        seen = []
        for i in range(local.shape[0]):
            for j in range(local.shape[1]):
                idx = int(local[i, j])
                if idx == self.player_id or idx in skip or (idx in edges and not edges[idx][i, j]):
                    continue
                seen.append((self.names.get(idx, str(idx)), self._offset_text(i - cx, j - cy, self.precise)))
        if self.unique_items:
            best = {}
            for name, where in seen:  # closest of each kind; the first one wins ties
                d = sum(int(n) for n in re.findall(r"\d+", where))
                if name not in best or d < best[name][0]:
                    best[name] = (d, where)
            seen = [(name, where) for name, (_, where) in best.items()]
        if seen:
            lines = "You see:\n" + "\n".join(f"- {name} {where}" for name, where in seen)
        else:
            lines = "You see nothing away from you."
        return f"{lines}\n\nYou face {facing} at your front."

    def _status(self, info):
        inv = info["inventory"]
        vit = "Your status:\n" + "\n".join(f"- {v}: {inv[v]}/9" for v in self.VITALS)
        items = [f"- {k}: {n}" for k, n in inv.items() if k not in self.VITALS and n != 0]
        held = "Your inventory:\n" + "\n".join(items) if items else "You have nothing in your inventory."
        return f"{vit}\n\n{held}".strip()

    def _observe(self, info):
        player = self.env._player
        if player.sleeping:
            state = "You are sleeping, and will not be able take actions until energy is full.\n\n"
        elif player.health <= 0:
            state = "You died.\n\n"
        else:
            state = ""
        try:
            long_term = f"{state}\n\n{self._scene(info)}\n\n".strip()
        except Exception:
            long_term = "Error, you are out of the map."
        out = {"long_term_context": long_term, "short_term_context": self._status(info)}
        if self.frames:
            out["frame"] = frame_json(self.env.render())
        return out

    def _stats(self):
        ach = dict(self.env._player.achievements)
        score = sum(1 for v in ach.values() if v > 0)
        return score, {"score": score, "progression": score / 22.0, "achievements": ach}

    def reset(self, req):
        seed = int_seed(req)
        self.frames = bool(req.get("frames", True))
        self.env = self.crafter.Env(area=(64, 64), view=(9, 9), size=self.size, reward=True, seed=seed)
        self.env.reset()
        # BALROG's wrapper takes one noop after reset and describes that state; progress starts at 0.
        _, _, _, info = self.env.step(0)
        self.done = False
        self.steps = 0
        self.score = 0
        return {**self._observe(info), "progression": 0.0,
                "stats": {"score": 0, "progression": 0.0, "achievements": None}}

    def step(self, req):
        if self.env is None or self.done:
            raise BridgeError("needs_reset", "step before reset or after the episode ended")
        action = req.get("action")
        if action not in self.action_index:
            raise BridgeError("bad_action", f"{action!r} is not a Crafter action")
        _, reward, done, info = self.env.step(self.action_index[action])
        self.steps += 1
        score, stats = self._stats()
        # Crafter ends on death or after its own length (10000); BALROG's 2000-step budget is the
        # evaluator's loop bound (max_steps in hello), not a truncation.
        self.done = bool(done)
        return {**self._observe(info), "reward": float(reward), "terminated": bool(done), "truncated": False,
                "progression": stats["progression"], "stats": stats, "step": self.steps}


# ---------------------------------------------------------------------------------------------- NLE
class NleBackend:
    """NetHackChallenge-v0 through NLE's language observations, with --More-- messages read through
    automatically, BALROG's text layout ("hybrid": message, language observation, cursor, ASCII map;
    "language": message, language observation, cursor + statistics, inventory) and BALROG's
    progression (best value of the reached "Dlvl:k" / "Xp:k" in its table of human play)."""

    name = "nle"

    def __init__(self, args):
        import gym
        import nle  # noqa: F401  (registers the NetHack envs with gym)
        from nle import nle_language_obsv
        from nle.language_wrapper.wrappers.nle_language_wrapper import NLELanguageWrapper
        from nle.nethack import USEFUL_ACTIONS
        from nle.nethack import actions as A
        self.gym = gym
        self.lang = nle_language_obsv.NLELanguageObsv()
        self.obs_mode = args.obs_mode
        self.max_steps = args.max_steps
        self.env = gym.make("NetHackChallenge-v0", character="@", max_episode_steps=args.max_steps,
                             no_progress_timeout=args.no_progress_timeout, savedir=None, save_ttyrec_every=0)
        self.base = self.env.unwrapped
        self.more_index = self.base.actions.index(A.MiscAction.MORE)
        # Language action -> action index, through the language wrapper's table (first name of each
        # NetHack command, plus its key letter).
        table = NLELanguageWrapper.all_nle_action_map
        self.index = {}
        for enum, names in table.items():
            if enum in self.base.actions:
                for n in names:
                    self.index.setdefault(n, self.base.actions.index(enum))
        # The agent's action list as in BALROG: the first name of every "useful" action, then single
        # letters and digits. BALROG also lists "00".."99", which NLE cannot take (stepping one raises
        # in BALROG); they are left out here, so such outputs fall back to the default action.
        names = [names[0] for enum, names in table.items() if enum in USEFUL_ACTIONS]
        letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [chr(c) for c in range(ord("A"), ord("Z") + 1)]
        self.actions = [a for a in names + letters + [str(d) for d in range(10)] if a in self.index]
        self.table = None
        if args.achievements:
            with open(args.achievements) as f:
                self.table = {str(k): float(v) for k, v in json.load(f).items()}
        self.done = True
        self.frames = True

    def versions(self):
        return versions("balrog-nle", "gym", "numpy")

    def hello(self):
        return {"actions": self.actions, "default_action": "esc", "instruction_prompt": nle_prompt(),
                "max_steps": self.max_steps, "progression_table": self.table is not None, "obs_mode": self.obs_mode}

    def _message(self, obs):
        return self.lang.text_message(obs["tty_chars"]).decode("latin-1")

    def _text(self, obs, message):
        l = self.lang
        glyphs, bl = obs["glyphs"], obs["blstats"]
        parts = {
            "message": message,
            "language observation": l.text_glyphs(glyphs, bl).decode("latin-1"),
            "cursor": l.text_cursor(glyphs, bl, obs["tty_cursor"]).decode("latin-1"),
            "statistics": l.text_blstats(bl).decode("latin-1"),
            "inventory": l.text_inventory(obs["inv_strs"], obs["inv_letters"]).decode("latin-1"),
        }
        if self.obs_mode == "hybrid":
            rows = ["".join(chr(c) for c in row) for row in obs["tty_chars"]]
            parts["map"] = "\n".join(rows[1:]) + "\n"  # the screen without its message line
            cur = obs["tty_cursor"]
            parts["cursor"] += f"\n(x={int(cur[1])}, y={int(cur[0])})"
            long_keys, short_keys = ["message", "language observation", "cursor", "map"], ["inventory"]
        else:
            long_keys, short_keys = ["message", "language observation", "cursor"], ["statistics", "inventory"]
        block = lambda keys: "\n".join(f"{k}:\n{parts[k]}\n" for k in keys)  # noqa: E731
        return {"long_term_context": block(long_keys), "short_term_context": block(short_keys)}

    def _frame(self, obs):
        """The terminal as an image (our rendering: 80x24 cells, NetHack's 16 colours)."""
        import numpy as np
        from PIL import Image, ImageDraw, ImageFont
        palette = [(0, 0, 0), (170, 0, 0), (0, 170, 0), (170, 85, 0), (0, 0, 170), (170, 0, 170), (0, 170, 170),
                   (170, 170, 170), (85, 85, 85), (255, 85, 85), (85, 255, 85), (255, 255, 85), (85, 85, 255),
                   (255, 85, 255), (85, 255, 255), (255, 255, 255)]
        chars, colors = obs["tty_chars"], obs["tty_colors"]
        cw, ch = 8, 14
        img = Image.new("RGB", (chars.shape[1] * cw, chars.shape[0] * ch))
        draw, font = ImageDraw.Draw(img), ImageFont.load_default()
        for r in range(chars.shape[0]):
            for c in range(chars.shape[1]):
                if chars[r, c] != 32:
                    col = palette[int(colors[r, c]) & 15] if int(colors[r, c]) & 15 else palette[7]
                    draw.text((c * cw, r * ch), chr(int(chars[r, c])), fill=col, font=font)
        return frame_json(np.asarray(img))

    def _progress(self, obs):
        bl = obs["blstats"]
        for key, lst in ((f"Xp:{int(bl[18])}", self.xp_list), (f"Dlvl:{int(bl[12])}", self.dlvl_list)):
            if key in lst:
                continue
            if self.table is None:
                lst.append(key)
                continue
            if key in self.table:
                lst.append(key)
                if self.table[key] > self.progression:
                    self.progression, self.highest = self.table[key], key

    def _reply(self, obs, message):
        out = self._text(obs, message)
        bl = obs["blstats"]
        stats = {"episode_return": self.ret, "score": int(bl[9]), "depth": int(bl[12]), "gold": int(bl[13]),
                 "experience_level": int(bl[18]), "time": int(bl[20]), "dlvl_list": list(self.dlvl_list),
                 "xplvl_list": list(self.xp_list), "highest_achievement": self.highest,
                 "progression": self.progression if self.table is not None else None}
        out["stats"] = stats
        out["progression"] = stats["progression"]
        if self.frames:
            out["frame"] = self._frame(obs)
        return out

    def reset(self, req):
        seed = int_seed(req)
        self.frames = bool(req.get("frames", True))
        if seed is not None:
            self.base.seed(core=seed, disp=seed, reseed=False)
        obs = self.env.reset()
        self.done, self.steps, self.ret = False, 0, 0.0
        self.dlvl_list, self.xp_list, self.highest, self.progression = [], [], None, 0.0
        return self._reply(obs, self._message(obs))

    def step(self, req):
        if self.done:
            raise BridgeError("needs_reset", "step before reset or after the episode ended")
        action = req.get("action")
        if action not in self.actions:
            raise BridgeError("bad_action", f"{action!r} is not a NetHack action of the BALROG action list")
        obs, reward, done, info = self.env.step(self.index[action])
        message = self._message(obs)
        # Read through "--More--" (BALROG's skip_more), keeping every part of the message.
        while "--More--" in message and not done:
            message = message.replace("--More--", "\n")
            obs, r, done, info = self.env.step(self.more_index)
            message += self._message(obs)
            reward += r
        self.steps += 1
        self.ret += float(reward)
        self._progress(obs)
        aborted = info.get("end_status") == self.base.StepStatus.ABORTED
        self.done = bool(done)
        reply = self._reply(obs, message)
        reply["stats"]["end_status"] = str(getattr(info.get("end_status"), "name", info.get("end_status")))
        return {**reply, "reward": float(reward), "terminated": bool(done) and not aborted,
                "truncated": bool(done) and aborted, "step": self.steps}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("crafter")
    c.add_argument("--max-steps", type=int, default=2000)
    c.add_argument("--size", type=int, default=256, help="frame size in pixels (BALROG: 256)")
    c.add_argument("--no-unique-items", action="store_true", help="list every visible object, not the closest")
    c.add_argument("--precise-location", action="store_true", help="'2 steps north and 1 step west'")
    c.add_argument("--skip-items", default="", help="comma-separated kinds never listed (e.g. grass,sand,path)")
    c.add_argument("--edge-only-items", default="", help="comma-separated kinds listed only at their edges")
    n = sub.add_parser("nle")
    n.add_argument("--obs-mode", choices=["hybrid", "language"], default="hybrid",
                   help="BALROG uses hybrid (with the ASCII map) for text agents, language for VLM agents")
    n.add_argument("--achievements", help="BALROG's nle/achievements.json (Dlvl/Xp progression table)")
    n.add_argument("--max-steps", type=int, default=100_000)
    n.add_argument("--no-progress-timeout", type=int, default=150)
    args = ap.parse_args()
    start(lambda: CrafterBackend(args) if args.cmd == "crafter" else NleBackend(args))


if __name__ == "__main__":
    main()
