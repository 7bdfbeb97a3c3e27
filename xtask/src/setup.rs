//! `cargo xtask setup ...`: optional tools, installed by command rather than by hand.
//!
//! Python environments live under `target/venvs/NAME` (ignored by git, removed by `cargo clean`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use crate::root;
use crate::run as run_cmd;

#[derive(Subcommand)]
pub enum SetupTarget {
    /// Everything the `--with-python` tests need.
    Python,
    /// ALFWorld (PyPI `alfworld`, with TextWorld) in `target/venvs/alfworld`, and the fixture
    /// games generated offline from `crates/textenv/fixtures/alfworld` into `target/alfworld-games`.
    Alfworld,
    /// The WebShop bridge's Python side: `target/venvs/webshop` (flask, bs4, thefuzz, ...) and a
    /// WebShop source checkout in `target/webshop-src` (git clone of princeton-nlp/WebShop, or a
    /// copy of `$VLDAC_WEBSHOP_SRC/web_agent_site` where GitHub is not reachable).
    Webshop,
    /// BALROG's bridged environments: `target/venvs/balrog` (PyPI `crafter`, `balrog-nle`) and
    /// BALROG's NetHack progression table in `target/balrog/nle_achievements.json` (fetched from
    /// BALROG's repository at a pinned commit and checked; or copied from `$VLDAC_BALROG_SRC`).
    Balrog,
    /// The venv that regenerates vldac-dac's official-code fixtures (numpy, torch, accelerate;
    /// large: torch pulls its CUDA wheels). Not needed to run the tests.
    DacFixtures,
    /// The venv that regenerates crates/babaisai's peer fixtures (`target/venvs/babaisai`: gym 0.25,
    /// numpy, the peer's render deps). The peer itself is git-only: see crates/babaisai/README.md.
    BabaisaiFixtures,
    /// The venv that regenerates crates/vlm's Qwen2-VL fixtures (torch + transformers on CPU).
    Qwen2vl,
    /// Offline LLVM for burn-cuda (cubecl-llvm), from PyPI wheels; then build with
    /// `CUDARC_CUDA_VERSION=13000 cargo build --release -p vldac --features cuda`.
    Cuda,
    /// A venv with pip torch 2.9 (what burn-tch 0.22 builds against) for the `tch` feature.
    Tch,
    /// The MiniWorld peer (`target/venvs/mw`: `miniworld==2.1.0` with gymnasium, pyglet, numpy,
    /// pillow) and Mesa's EGL/GL from Debian (apt), checked by rendering one frame headless. The
    /// live-peer test, `crates/miniworld/bench/peer_speed.py` and the fixture generator use it.
    MiniworldPeer,
    /// Open MPI and what the `mpi` feature's bindings build with (apt: libopenmpi-dev,
    /// openmpi-bin, libclang-dev); then `cargo build --release -p vldac --features mpi` and
    /// `mpirun -np K target/release/vldac train ...` (or `cargo xtask train --ranks K`).
    Mpi,
}

/// ALFWorld's PyPI release the bridge is tested with.
pub const ALFWORLD_VERSION: &str = "alfworld==0.4.2";

/// Installs ALFWorld and generates the fixture games (idempotent).
pub fn alfworld() -> Result<()> {
    let py = venv("alfworld")?;
    let installed =
        Command::new(&py).args(["-c", "import alfworld, textworld"]).status().map(|s| s.success()).unwrap_or(false);
    if !installed {
        pip_install("alfworld", &[ALFWORLD_VERSION])?;
    }
    let games = root().join("target").join("alfworld-games");
    let textenv = root().join("crates").join("textenv");
    let mut c = Command::new(&py);
    c.arg(textenv.join("python").join("textenv_bridge.py"))
        .arg("generate")
        .arg("--src")
        .arg(textenv.join("fixtures").join("alfworld").join("json_2.1.1"))
        .arg("--out")
        .arg(&games);
    run_cmd(c)
}

/// WebShop's public source (the bridge imports its `web_agent_site` package).
pub const WEBSHOP_GIT: &str = "https://github.com/princeton-nlp/WebShop";

/// Sets up the real-WebShop bridge (idempotent): venv + source checkout. Where GitHub is not
/// reachable, `VLDAC_WEBSHOP_SRC` names a local WebShop checkout whose `web_agent_site` is copied.
pub fn webshop() -> Result<()> {
    pip_install("webshop", &["thefuzz==0.19.0", "flask", "beautifulsoup4", "numpy", "rich", "tqdm"])?;
    let src = root().join("target").join("webshop-src");
    if src.join("web_agent_site").exists() {
        return Ok(());
    }
    if let Some(local) = std::env::var_os("VLDAC_WEBSHOP_SRC").map(PathBuf::from) {
        let from = local.join("web_agent_site");
        if !from.join("engine").join("goal.py").exists() {
            bail!("VLDAC_WEBSHOP_SRC={}: no web_agent_site/engine/goal.py there", local.display());
        }
        eprintln!("copying {} to {}", from.display(), src.display());
        // Into a temporary name first, so an interrupted copy is not taken for a checkout.
        let tmp = root().join("target").join("webshop-src.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        copy_dir(&from, &tmp.join("web_agent_site"))?;
        let _ = std::fs::remove_dir_all(&src);
        std::fs::rename(&tmp, &src).with_context(|| format!("renaming {} to {}", tmp.display(), src.display()))?;
        return Ok(());
    }
    let mut c = Command::new("git");
    c.args(["clone", "--depth", "1", WEBSHOP_GIT]).arg(&src);
    run_cmd(c).map_err(|e| {
        anyhow::anyhow!(
            "{e}: cannot clone {WEBSHOP_GIT} into {}; where GitHub is not reachable, set VLDAC_WEBSHOP_SRC to a \
             WebShop checkout made elsewhere",
            src.display()
        )
    })
}

/// Copies a directory tree (files and folders; links are followed).
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
        }
    }
    Ok(())
}

/// The PyPI releases the BALROG bridge is tested with.
pub const BALROG_PACKAGES: &[&str] = &["balrog-nle==0.9.0", "crafter==1.8.3"];
/// BALROG's NetHack progression table (`balrog/environments/nle/achievements.json`): the share of
/// human NetHack games that got no further than each `Dlvl:k` / `Xp:k`. It is BALROG's data (not
/// derivable without their human-play dataset), so it is fetched on the user's machine, pinned.
pub const BALROG_COMMIT: &str = "af7d1f17e0deec3a7a0e334beae5f11b7a21371b";
pub const NLE_ACHIEVEMENTS_SHA256: &str = "a582cff2ffcaa34117e7c94a5406faf70fe41369263f9e49a46dff19169d3101";

/// Sets up the BALROG bridge (idempotent). A missing progression table is a warning: Crafter
/// works without it, NetHack evaluation asks for it.
pub fn balrog() -> Result<()> {
    let py = venv_dir("balrog").join("bin").join("python");
    let ok = py.exists()
        && Command::new(&py)
            .args(["-c", "import crafter, nle.language_wrapper"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    if !ok {
        pip_install("balrog", BALROG_PACKAGES)?;
    }
    let dest = root().join("target").join("balrog").join("nle_achievements.json");
    std::fs::create_dir_all(dest.parent().expect("has a parent"))?;
    let local = std::env::var_os("VLDAC_BALROG_SRC")
        .map(|d| PathBuf::from(d).join("balrog").join("environments").join("nle").join("achievements.json"));
    let url = format!(
        "https://raw.githubusercontent.com/balrog-ai/BALROG/{BALROG_COMMIT}/balrog/environments/nle/achievements.json"
    );
    // Python does the fetch and the checksum (no curl/sha256sum needed); the file is written only
    // when its sha256 is the pinned one.
    let script = r#"
import hashlib, os, shutil, sys, urllib.request
dest, want, local, url = sys.argv[1:5]
def ok(p):
    return os.path.exists(p) and hashlib.sha256(open(p, "rb").read()).hexdigest() == want
if ok(dest):
    sys.exit(0)
if local and os.path.exists(local):
    data = open(local, "rb").read()
else:
    try:
        data = urllib.request.urlopen(url, timeout=30).read()
    except Exception as e:
        sys.exit(f"cannot fetch {url}: {e}")
if hashlib.sha256(data).hexdigest() != want:
    sys.exit("the fetched NetHack progression table does not have the pinned sha256")
open(dest + ".tmp", "wb").write(data)
os.replace(dest + ".tmp", dest)
"#;
    let mut c = Command::new(&py);
    c.args(["-c", script])
        .arg(&dest)
        .arg(NLE_ACHIEVEMENTS_SHA256)
        .arg(local.map(|p| p.display().to_string()).unwrap_or_default())
        .arg(&url);
    if run_cmd(c).is_err() {
        eprintln!(
            "warning: BALROG's NetHack progression table is not installed at {}.
  Crafter works; for NetHack (`--envs nle`) run this again where GitHub is reachable, or set \
             VLDAC_BALROG_SRC to a BALROG checkout, or pass --nle-achievements FILE.",
            dest.display()
        );
    }
    Ok(())
}

/// The folder of a named venv.
pub fn venv_dir(name: &str) -> PathBuf {
    root().join("target").join("venvs").join(name)
}

/// The python of a named venv, creating the venv (and upgrading pip) if needed.
pub fn venv(name: &str) -> Result<PathBuf> {
    let dir = venv_dir(name);
    let py = dir.join("bin").join("python");
    if !py.exists() {
        let mut c = Command::new("python3");
        c.args(["-m", "venv"]).arg(&dir);
        run_cmd(c).map_err(|e| anyhow::anyhow!("{e}: is python3 (with venv) installed?"))?;
    }
    Ok(py)
}

/// pip-installs packages into a named venv.
pub fn pip_install(name: &str, packages: &[&str]) -> Result<PathBuf> {
    let py = venv(name)?;
    let mut c = Command::new(&py);
    c.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]).args(packages);
    run_cmd(c)?;
    Ok(py)
}

/// Sets up every Python-side tool the `--with-python` tests use.
pub fn python_all() -> Result<()> {
    // Checks the trainer's TensorBoard files with TensorBoard itself.
    pip_install("tools", &["tensorboard"])?;
    // PYTHON-SETUP: crates with Python bridges add their setup calls here.
    miniworld_peer()?;
    alfworld()?;
    webshop()?;
    balrog()?;
    // vldac-evals: the official scorers' PyPI code (lmms-eval without its heavy deps) + rouge 1.0.1.
    pip_install("evals", &["--no-deps", "lmms-eval==0.7.3"])?;
    pip_install("evals", &["rouge==1.0.1", "numpy", "pandas", "pyarrow", "loguru", "pyyaml", "pillow"])?;
    qwen2vl()?;
    Ok(())
}

pub fn run(what: SetupTarget) -> Result<()> {
    match what {
        SetupTarget::Python => python_all(),
        SetupTarget::Alfworld => alfworld(),
        SetupTarget::Webshop => webshop(),
        SetupTarget::Balrog => balrog(),
        SetupTarget::DacFixtures => {
            pip_install("fixtures", &["numpy", "torch", "accelerate", "tqdm", "gymnasium"]).map(|_| ())
        }
        SetupTarget::BabaisaiFixtures => pip_install(
            "babaisai",
            &["gym==0.25.0", "numpy<2", "pillow", "matplotlib", "opencv-python-headless", "pygame"],
        )
        .map(|_| ()),
        SetupTarget::Qwen2vl => qwen2vl(),
        SetupTarget::Cuda => cuda(),
        SetupTarget::Tch => tch(),
        SetupTarget::MiniworldPeer => miniworld_peer(),
        SetupTarget::Mpi => mpi(),
    }
}

/// Pinned peers of crates/vlm/fixtures/gen_fixtures.py (torch 2.11 = the GPU machine's version).
pub const QWEN2VL_PACKAGES: &[&str] =
    &["torch==2.11.0", "transformers==5.23.0", "tokenizers", "pillow", "safetensors", "peft==0.18.0"];

/// `target/venvs/qwen2vl`: torch + transformers for the Qwen2-VL fixtures and the HF benchmark.
pub fn qwen2vl() -> Result<()> {
    let py = venv_dir("qwen2vl").join("bin").join("python");
    let ok = py.exists()
        && Command::new(&py).args(["-c", "import torch, transformers"]).status().map(|s| s.success()).unwrap_or(false);
    if !ok {
        pip_install("qwen2vl", QWEN2VL_PACKAGES)?;
    }
    Ok(())
}

/// burn-cuda 0.22 -> cubecl-llvm's build script downloads LLVM 23.1 from GitHub, which is not
/// reachable here. It skips the download when its data dir already holds an install, so we
/// provide one from PyPI's static LLVM wheels (which include the NVPTX target).
pub fn cuda() -> Result<()> {
    const BUNDLE: &str = "tracel-llvm-23.1.0-4";
    let sdk = root().join("target").join("cuda-llvm");
    let static_dir = sdk.join("mlc_llvm_static").join("static");
    if !static_dir.join("bin").join("llvm-config").exists() {
        let dl = root().join("target").join("cuda-llvm-wheels");
        let py = venv("cuda-tools")?;
        let mut c = Command::new(&py);
        c.args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d"])
            .arg(&dl)
            .args(["mlc-llvm-static==23.1.1.post0", "mlc-llvm-static-extra-targets==23.1.1.post0"]);
        run_cmd(c)?;
        let wheels: Vec<PathBuf> = std::fs::read_dir(&dl)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "whl"))
            .collect();
        let mut c = Command::new(&py);
        c.args(["-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "--target"])
            .arg(&sdk)
            .args(&wheels);
        run_cmd(c)?;
    }
    // llvm-config in the wheel is a python script; it must be executable.
    let mut c = Command::new("chmod");
    c.arg("+x").arg(static_dir.join("bin").join("llvm-config"));
    run_cmd(c)?;
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share")))
        .ok_or_else(|| anyhow::anyhow!("neither XDG_DATA_HOME nor HOME is set"))?;
    let tracel = data.join("tracel");
    std::fs::create_dir_all(&tracel)?;
    let link = tracel.join(BUNDLE);
    if link.exists() || link.is_symlink() {
        if link.is_symlink() {
            std::fs::remove_file(&link)?;
        } else {
            anyhow::bail!("{} exists and is not our symlink; remove it first", link.display());
        }
    }
    std::os::unix::fs::symlink(&static_dir, &link)?;
    std::fs::write(link.join(".tracel-llvm-installed"), b"")?;
    // `llvm-config --system-libs` asks for -lzstd.
    let has_zstd =
        ["/usr/lib/x86_64-linux-gnu/libzstd.so", "/usr/lib/libzstd.so"].iter().any(|p| Path::new(p).exists());
    if !has_zstd {
        eprintln!("libzstd.so not found: run `apt-get install -y libzstd-dev` (needed to link cubecl-llvm)");
    }
    eprintln!(
        "LLVM ready at {}. Build with:\n  CUDARC_CUDA_VERSION=13000 cargo build --release -p vldac --features cuda",
        link.display()
    );
    Ok(())
}

/// The torch that burn-tch 0.22's torch-sys is written against (its C++ shim is compiled
/// against these headers).
pub const TCH_TORCH: &str = "torch==2.9.0";

/// A venv with pip torch for the `tch` feature (`--device tch-cpu | tch-cuda`); idempotent.
pub fn tch() -> Result<()> {
    let py = venv_dir("tch").join("bin").join("python");
    let want = TCH_TORCH.trim_start_matches("torch==");
    let ok = py.exists()
        && Command::new(&py)
            .args(["-c", &format!("import torch, sys; sys.exit(0 if torch.__version__.startswith('{want}') else 1)")])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    if !ok {
        pip_install("tch", &[TCH_TORCH])?;
    }
    eprintln!(
        "torch ready in {}. Build with:\n  VIRTUAL_ENV={} LIBTORCH_USE_PYTORCH=1 LIBTORCH_BYPASS_VERSION_CHECK=1 \\\n    \
         cargo build --release -p vldac --features tch\nand run with LD_LIBRARY_PATH=<venv site-packages>/torch/lib \
         (`cargo xtask test --with-tch` does all of this)",
        venv_dir("tch").display(),
        venv_dir("tch").display()
    );
    Ok(())
}

/// Debian packages of the `mpi` feature: Open MPI (headers, `mpicc`, `mpirun`) and libclang for
/// rsmpi's bindgen.
pub const MPI_APT: &[&str] = &["libopenmpi-dev", "openmpi-bin", "libclang-dev"];

/// Whether `mpirun` and Open MPI's headers are installed.
pub fn mpi_installed() -> bool {
    let ok = |c: &str, a: &[&str]| Command::new(c).args(a).output().map(|o| o.status.success()).unwrap_or(false);
    ok("mpirun", &["--version"])
        && ok("mpicc", &["--showme:compile"])
        && ok("sh", &["-c", "ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1"])
}

/// Installs Open MPI with apt (idempotent; as root, or with sudo when it is there).
pub fn mpi() -> Result<()> {
    if !mpi_installed() {
        apt_install(MPI_APT)?;
    }
    let mut c = Command::new("mpirun");
    c.arg("--version");
    run_cmd(c)?;
    eprintln!(
        "Open MPI ready. Build with:\n  cargo build --release -p vldac --features mpi\nand launch with \
         `mpirun -np K target/release/vldac train ...` (as root add --allow-run-as-root; more ranks than \
         cores: --oversubscribe), or `cargo xtask train --ranks K ...`"
    );
    Ok(())
}

/// Installs Debian packages with apt-get (`update`, then `install --no-install-recommends`), as
/// root or with sudo when it is there.
pub fn apt_install(packages: &[&str]) -> Result<()> {
    let root_user = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
    let apt = |args: &[&str]| {
        let mut c = if root_user {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    run_cmd(apt(&["update"]))?;
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend_from_slice(packages);
    run_cmd(apt(&install))
}

/// Whether every one of these Debian packages is installed (`dpkg-query`).
fn apt_installed(packages: &[&str]) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Status}\\n"])
        .args(packages)
        .output()
        .map(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).lines().filter(|l| *l == "installed").count() == packages.len()
        })
        .unwrap_or(false)
}

/// The MiniWorld peer's PyPI release (what `crates/miniworld` is checked against) and what its
/// scripts import besides (`fixtures/gen_fixtures.py` writes PNGs with pillow).
pub const MINIWORLD_PACKAGES: &[&str] = &["miniworld==2.1.0", "pillow"];
/// Mesa's EGL and GL from Debian: the peer renders headless through pyglet's EGL with llvmpipe.
pub const MESA_APT: &[&str] = &["libgl1", "libegl1", "libegl-mesa0", "libgl1-mesa-dri", "libglu1-mesa"];

/// Renders one 80x60 frame of the peer headless (EGL + llvmpipe); exits non-zero if it cannot.
const MINIWORLD_SMOKE: &str = r#"
import contextlib, sys
import pyglet
pyglet.options["headless"] = True
import importlib.metadata
import gymnasium as gym, miniworld
assert importlib.metadata.version("miniworld") == "2.1.0", importlib.metadata.version("miniworld")
with contextlib.redirect_stdout(sys.stderr):
    env = gym.make("MiniWorld-OneRoom-v0")
obs, _ = env.reset(seed=0)
assert obs.shape == (60, 80, 3), obs.shape
obs, *_ = env.step(2)
assert obs.shape == (60, 80, 3) and obs.std() > 0, "blank frame"
env.close()
"#;

/// `target/venvs/mw` with the MiniWorld peer, and Mesa's EGL/GL from apt (idempotent: each part
/// is installed only when missing); then one frame rendered headless checks both.
pub fn miniworld_peer() -> Result<()> {
    if !apt_installed(MESA_APT) {
        apt_install(MESA_APT)?;
    }
    let py = venv_dir("mw").join("bin").join("python");
    let importable = |py: &Path| {
        Command::new(py)
            .args([
                "-c",
                "import importlib.metadata as m, miniworld, gymnasium, pyglet, numpy, PIL; \
                 assert m.version('miniworld') == '2.1.0'",
            ])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !(py.exists() && importable(&py)) {
        pip_install("mw", MINIWORLD_PACKAGES)?;
    }
    let mut c = Command::new(&py);
    c.args(["-c", MINIWORLD_SMOKE]);
    run_cmd(c).map_err(|e| {
        anyhow::anyhow!(
            "{e}: the MiniWorld peer in {} cannot render headless (Mesa EGL: {})",
            venv_dir("mw").display(),
            MESA_APT.join(" ")
        )
    })?;
    eprintln!("MiniWorld peer ready: {}", py.display());
    Ok(())
}
