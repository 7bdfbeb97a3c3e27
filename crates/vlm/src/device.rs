//! Where a model runs and in which precision: the `--device` and `--dtype` choices of every
//! command, resolved into a burn [`Device`] once, before anything is loaded or written.
//!
//! burn 0.22's `Device` dispatches at run time, so one binary built with `cuda` and `tch` can use
//! flex, CUDA and libtorch side by side; a backend the binary was not built with is an error that
//! says which cargo feature and build command give it.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{DType, Device};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `--device` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The first CUDA GPU when the binary has `cuda` and a GPU is present, else `cpu`.
    #[default]
    Auto,
    /// burn's flex backend (pure Rust, multi-threaded with rayon).
    Cpu,
    /// burn-cuda on GPU `N` (`None`: GPU 0, or the local MPI rank's GPU).
    Cuda(Option<usize>),
    /// libtorch on the CPU (burn-tch).
    TchCpu,
    /// libtorch on CUDA GPU `N`.
    TchCuda(Option<usize>),
}

/// Why a device choice cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    #[error("unknown device {0:?}: expected auto, cpu, cuda, cuda:N, tch-cpu, tch-cuda or tch-cuda:N")]
    Unknown(String),
    #[error(
        "device `{device}` needs the `{feature}` cargo feature, which this binary was built without; build it with:\n  {build}"
    )]
    NotBuilt { device: String, feature: &'static str, build: &'static str },
    #[error("device `{device}`: {detail}")]
    NoGpu { device: String, detail: String },
    #[error("unknown dtype {0:?}: expected f32, bf16 or f16")]
    UnknownDtype(String),
    #[error("device `{device}` cannot store or compute {dtype}")]
    UnsupportedDtype { device: String, dtype: Precision },
}

/// The build command for each optional backend (printed in errors and the README).
pub const CUDA_BUILD: &str =
    "cargo xtask setup cuda && CUDARC_CUDA_VERSION=13000 cargo build --release -p vldac --features cuda";
pub const TCH_BUILD: &str = "cargo xtask setup tch && VIRTUAL_ENV=target/venvs/tch LIBTORCH_USE_PYTORCH=1 \
     LIBTORCH_BYPASS_VERSION_CHECK=1 cargo build --release -p vldac --features tch";

impl DeviceChoice {
    /// A GPU device (where bf16 is the default precision).
    pub fn is_gpu(self) -> bool {
        matches!(self, DeviceChoice::Cuda(_) | DeviceChoice::TchCuda(_))
    }
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, DeviceError> {
        let t = s.trim().to_ascii_lowercase();
        let index = |rest: &str| -> Result<Option<usize>, DeviceError> {
            match rest {
                "" => Ok(None),
                r => match r.strip_prefix(':').map(str::parse::<usize>) {
                    Some(Ok(i)) => Ok(Some(i)),
                    _ => Err(DeviceError::Unknown(s.to_string())),
                },
            }
        };
        Ok(match t.as_str() {
            "auto" => DeviceChoice::Auto,
            "cpu" | "flex" => DeviceChoice::Cpu,
            "tch-cpu" => DeviceChoice::TchCpu,
            _ => {
                if let Some(rest) = t.strip_prefix("tch-cuda") {
                    DeviceChoice::TchCuda(index(rest)?)
                } else if let Some(rest) = t.strip_prefix("cuda") {
                    DeviceChoice::Cuda(index(rest)?)
                } else {
                    return Err(DeviceError::Unknown(s.to_string()));
                }
            }
        })
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(None) => f.write_str("cuda"),
            DeviceChoice::Cuda(Some(i)) => write!(f, "cuda:{i}"),
            DeviceChoice::TchCpu => f.write_str("tch-cpu"),
            DeviceChoice::TchCuda(None) => f.write_str("tch-cuda"),
            DeviceChoice::TchCuda(Some(i)) => write!(f, "tch-cuda:{i}"),
        }
    }
}

impl Serialize for DeviceChoice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A `--dtype` value: the precision of the frozen base weights and activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    Bf16,
    F16,
}

impl Precision {
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
            Precision::F16 => DType::F16,
        }
    }
}

impl FromStr for Precision {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, DeviceError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            "f16" | "fp16" | "float16" => Ok(Precision::F16),
            _ => Err(DeviceError::UnknownDtype(s.to_string())),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        })
    }
}

impl Serialize for Precision {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Precision {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A resolved choice: the device the model lives on (non-autodiff; training uses its
/// `.autodiff()` twin) and the base weights' precision.
#[derive(Clone, Debug)]
pub struct Placement {
    /// What `auto` (or an index-less `cuda`) became.
    pub choice: DeviceChoice,
    pub device: Device,
    pub precision: Precision,
}

impl Placement {
    pub fn dtype(&self) -> DType {
        self.precision.dtype()
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.choice, self.precision)
    }
}

/// The node-local rank under an MPI or Slurm launcher, if any: an index-less `cuda` then means
/// `cuda:<local rank>`, so one node with 8 GPUs is `mpirun -np 8`.
pub fn launcher_local_rank() -> Option<usize> {
    ["OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "LOCAL_RANK"]
        .iter()
        .find_map(|k| std::env::var(k).ok().and_then(|v| v.trim().parse().ok()))
}

/// Resolves `choice` and `precision` (default: f32 on CPUs, bf16 on GPUs) into a device.
/// `local_rank` picks the GPU for an index-less `cuda` / `tch-cuda`.
pub fn resolve(
    choice: DeviceChoice,
    precision: Option<Precision>,
    local_rank: Option<usize>,
) -> Result<Placement, DeviceError> {
    let choice = match choice {
        DeviceChoice::Auto => match cuda_count() {
            Ok(n) if n > 0 => DeviceChoice::Cuda(None),
            _ => DeviceChoice::Cpu,
        },
        c => c,
    };
    let device = match choice {
        DeviceChoice::Auto => unreachable!("resolved above"),
        DeviceChoice::Cpu => Device::flex(),
        DeviceChoice::Cuda(i) => cuda_device(choice, i.or(local_rank).unwrap_or(0))?,
        DeviceChoice::TchCpu => tch_cpu(choice)?,
        DeviceChoice::TchCuda(i) => tch_cuda(choice, i.or(local_rank).unwrap_or(0))?,
    };
    let choice = match choice {
        DeviceChoice::Cuda(None) => DeviceChoice::Cuda(Some(local_rank.unwrap_or(0))),
        DeviceChoice::TchCuda(None) => DeviceChoice::TchCuda(Some(local_rank.unwrap_or(0))),
        c => c,
    };
    let precision = precision.unwrap_or(if choice.is_gpu() { Precision::Bf16 } else { Precision::F32 });
    if !device.supports_dtype(precision.dtype()) {
        return Err(DeviceError::UnsupportedDtype { device: choice.to_string(), dtype: precision });
    }
    Ok(Placement { choice, device, precision })
}

/// Runs `f`, turning a panic (e.g. a CUDA driver that cannot be loaded) into `None`, without
/// printing the panic message.
#[allow(dead_code)]
fn quietly<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> Option<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = std::panic::catch_unwind(f).ok();
    std::panic::set_hook(hook);
    out
}

/// Number of CUDA GPUs burn-cuda sees; an error when the binary has no `cuda`.
pub fn cuda_count() -> Result<usize, DeviceError> {
    #[cfg(feature = "cuda")]
    {
        use burn::tensor::DeviceType;
        Ok(quietly(|| Device::enumerate(DeviceType::Cuda).into_vec().len()).unwrap_or(0))
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err(not_built(DeviceChoice::Cuda(None)))
    }
}

// Unused only in a binary that has both backends.
#[cfg_attr(all(feature = "cuda", feature = "tch"), allow(dead_code))]
fn not_built(choice: DeviceChoice) -> DeviceError {
    let (feature, build) = match choice {
        DeviceChoice::TchCpu | DeviceChoice::TchCuda(_) => ("tch", TCH_BUILD),
        _ => ("cuda", CUDA_BUILD),
    };
    DeviceError::NotBuilt { device: choice.to_string(), feature, build }
}

#[allow(unused_variables)]
fn cuda_device(choice: DeviceChoice, index: usize) -> Result<Device, DeviceError> {
    #[cfg(feature = "cuda")]
    {
        let n = cuda_count()?;
        if index >= n {
            return Err(DeviceError::NoGpu {
                device: choice.to_string(),
                detail: if n == 0 {
                    "no CUDA GPU found (is the NVIDIA driver installed and a GPU visible? check `nvidia-smi` \
                     and CUDA_VISIBLE_DEVICES)"
                        .into()
                } else {
                    format!("GPU {index} requested but only {n} CUDA GPU(s) are visible")
                },
            });
        }
        Ok(Device::cuda(index))
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err(not_built(choice))
    }
}

#[allow(unused_variables)]
fn tch_cpu(choice: DeviceChoice) -> Result<Device, DeviceError> {
    #[cfg(feature = "tch")]
    {
        #[allow(deprecated)]
        Ok(Device::libtorch())
    }
    #[cfg(not(feature = "tch"))]
    {
        Err(not_built(choice))
    }
}

#[allow(unused_variables)]
fn tch_cuda(choice: DeviceChoice, index: usize) -> Result<Device, DeviceError> {
    #[cfg(feature = "tch")]
    {
        use burn::tensor::DeviceType;
        let n = quietly(|| Device::enumerate(DeviceType::LibTorch).into_vec().len()).unwrap_or(0);
        if index >= n {
            return Err(DeviceError::NoGpu {
                device: choice.to_string(),
                detail: if n == 0 {
                    "libtorch sees no CUDA GPU (a CPU-only torch, or no driver / GPU visible)".into()
                } else {
                    format!("GPU {index} requested but libtorch sees only {n} CUDA GPU(s)")
                },
            });
        }
        #[allow(deprecated)]
        Ok(Device::libtorch_cuda(index))
    }
    #[cfg(not(feature = "tch"))]
    {
        Err(not_built(choice))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_value() {
        let cases = [
            ("auto", DeviceChoice::Auto),
            ("cpu", DeviceChoice::Cpu),
            ("CUDA", DeviceChoice::Cuda(None)),
            ("cuda:3", DeviceChoice::Cuda(Some(3))),
            ("tch-cpu", DeviceChoice::TchCpu),
            ("tch-cuda", DeviceChoice::TchCuda(None)),
            ("tch-cuda:1", DeviceChoice::TchCuda(Some(1))),
        ];
        for (s, want) in cases {
            let got: DeviceChoice = s.parse().expect(s);
            assert_eq!(got, want, "{s}");
            // Display round-trips.
            assert_eq!(got.to_string().parse::<DeviceChoice>().expect("round trip"), want);
        }
        for bad in ["gpu", "cuda:", "cuda:x", "cuda0", "tch", "tch-cuda:-1", "metal", ""] {
            assert_eq!(bad.parse::<DeviceChoice>(), Err(DeviceError::Unknown(bad.into())), "{bad}");
        }
        assert_eq!("bf16".parse::<Precision>(), Ok(Precision::Bf16));
        assert!(matches!("f8".parse::<Precision>(), Err(DeviceError::UnknownDtype(_))));
    }

    #[test]
    fn cpu_defaults_to_f32_and_takes_bf16() {
        let p = resolve(DeviceChoice::Cpu, None, None).expect("cpu");
        assert_eq!((p.choice, p.precision), (DeviceChoice::Cpu, Precision::F32));
        let p = resolve(DeviceChoice::Cpu, Some(Precision::Bf16), None).expect("cpu bf16");
        assert_eq!(p.precision, Precision::Bf16);
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_names_feature_and_build() {
        let e = resolve("cuda:1".parse().expect("parse"), None, None).expect_err("not built");
        let msg = e.to_string();
        assert!(matches!(e, DeviceError::NotBuilt { feature: "cuda", .. }), "{msg}");
        assert!(msg.contains("cuda:1") && msg.contains("--features cuda") && msg.contains("setup cuda"), "{msg}");
        // auto falls back to the CPU.
        let p = resolve(DeviceChoice::Auto, None, None).expect("auto");
        assert_eq!((p.choice, p.precision), (DeviceChoice::Cpu, Precision::F32));
    }

    #[cfg(not(feature = "tch"))]
    #[test]
    fn tch_without_the_feature_names_feature_and_build() {
        for d in ["tch-cpu", "tch-cuda:0"] {
            let e = resolve(d.parse().expect("parse"), None, None).expect_err("not built");
            let msg = e.to_string();
            assert!(matches!(e, DeviceError::NotBuilt { feature: "tch", .. }), "{msg}");
            assert!(msg.contains(d) && msg.contains("--features tch"), "{msg}");
        }
    }

    #[cfg(feature = "tch")]
    #[test]
    fn tch_cpu_resolves() {
        let p = resolve(DeviceChoice::TchCpu, None, None).expect("tch-cpu");
        assert_eq!(p.precision, Precision::F32);
    }
}
