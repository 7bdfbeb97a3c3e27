//! Small building blocks loaded from HF-named tensors: linear (with optional LoRA), RMSNorm,
//! LayerNorm, and the tensor <-> host conversions used by loading and export.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::{DType, Device, Tensor};

use crate::error::Result;
use crate::weights::{HostTensor, RawTensor, TensorSink, WeightSource};

/// A raw tensor on `dev`, in its own dtype (no conversion through the device's default).
pub fn device_tensor<const D: usize>(t: RawTensor, dev: &Device) -> Tensor<D> {
    let dtype = t.dtype;
    Tensor::from_data(t.into_data(), (dev, dtype))
}

/// A frozen base parameter `name` in the source's precision.
pub fn load_param<const D: usize>(
    w: &mut dyn WeightSource,
    name: &str,
    shape: &[usize],
    dev: &Device,
) -> Result<Tensor<D>> {
    Ok(device_tensor(w.take_raw(name, shape)?, dev))
}

/// `t` in `dtype` (a no-op when it already is).
pub fn cast<const D: usize>(t: Tensor<D>, dtype: DType) -> Tensor<D> {
    if t.dtype() == dtype { t } else { t.cast(dtype) }
}

/// Reads a tensor back to the host as f32.
pub fn to_host<const D: usize>(t: Tensor<D>) -> HostTensor {
    let shape = t.dims().to_vec();
    let data = t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 data");
    HostTensor { shape, data }
}

/// `[r, c] -> [c, r]` on the host (torch's `[out, in]` Linear layout to burn's `[in, out]`).
pub(crate) fn transpose_host(t: &HostTensor) -> HostTensor {
    let (r, c) = (t.shape[0], t.shape[1]);
    let mut data = vec![0f32; r * c];
    for i in 0..r {
        for j in 0..c {
            data[j * r + i] = t.data[i * c + j];
        }
    }
    HostTensor { shape: vec![c, r], data }
}

/// `x @ w` for a batch of rows: `[.., in] x [in, out] -> [.., out]`.
pub fn matmul_last<const D: usize>(x: Tensor<D>, w: Tensor<2>) -> Tensor<D> {
    let dims = x.dims();
    let rows: usize = dims[..D - 1].iter().product();
    let out = w.dims()[1];
    let mut new_dims = dims;
    new_dims[D - 1] = out;
    x.reshape([rows, dims[D - 1]]).matmul(w).reshape(new_dims)
}

/// A `torch.nn.Linear` (`name.weight` [out, in], optional `name.bias`) as burn's `[in, out]`
/// weight. bf16 weights on flex stay as stored and are used through a transposed view (our bf16
/// kernels read either layout), as torch's `F.linear` does: a bf16 checkpoint's projections are
/// then views of its mapped file, read when first used. Elsewhere the weight is transposed while
/// it is read: f32 stays `[in, out]` because flex's gemm with the transposed view made the 2b:4
/// f32 vision tower, prefill and LoRA step 7-17% slower and the LoRA step's peak RSS 0.8 GB higher.
pub fn load_linear(
    w: &mut dyn WeightSource,
    name: &str,
    d_in: usize,
    d_out: usize,
    bias: bool,
    dev: &Device,
) -> Result<Linear> {
    let key = format!("{name}.weight");
    let weight = if w.dtype() == DType::BF16 && crate::cpu_bf16::on_flex(dev) {
        device_tensor::<2>(w.take_raw(&key, &[d_out, d_in])?, dev).transpose()
    } else {
        device_tensor(w.take_raw_transposed(&key, &[d_out, d_in])?, dev)
    };
    let bias =
        if bias { Some(Param::from_tensor(load_param(w, &format!("{name}.bias"), &[d_out], dev)?)) } else { None };
    Ok(Linear { weight: Param::from_tensor(weight), bias })
}

pub fn export_linear(l: &Linear, name: &str, sink: &mut TensorSink) {
    sink.put(format!("{name}.weight"), transpose_host(&to_host(l.weight.val())));
    if let Some(b) = &l.bias {
        sink.put(format!("{name}.bias"), to_host(b.val()));
    }
}

/// Low-rank update `x A B * alpha / r` (PEFT's `lora_A` = A^T, `lora_B` = B^T). A and B are
/// always f32 (master weights, so Adam's small steps are not rounded away under a bf16 base);
/// the update is computed in f32 and cast to the base's dtype, as PEFT does.
#[derive(Module, Debug)]
pub struct LoraAdapter {
    /// `[in, r]`, Kaiming-uniform initialised.
    pub a: Param<Tensor<2>>,
    /// `[r, out]`, zero initialised so a fresh adapter changes nothing.
    pub b: Param<Tensor<2>>,
    pub scaling: f64,
    pub dropout: Dropout,
}

/// A projection that may carry a LoRA adapter.
#[derive(Module, Debug)]
pub struct LoraLinear {
    pub base: Linear,
    pub lora: Option<LoraAdapter>,
}

impl LoraLinear {
    pub fn load(
        w: &mut dyn WeightSource,
        name: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
        dev: &Device,
    ) -> Result<Self> {
        Ok(LoraLinear { base: load_linear(w, name, d_in, d_out, bias, dev)?, lora: None })
    }

    /// Whether [`Self::forward`] adds an adapter's product.
    pub fn adapter_active(&self, adapters: bool) -> bool {
        adapters && self.lora.is_some()
    }

    /// # Shapes
    /// - x: `[.., in]` -> `[.., out]`
    pub fn forward<const D: usize>(&self, x: Tensor<D>, adapters: bool) -> Tensor<D> {
        match (&self.lora, adapters) {
            (Some(l), true) => {
                // bf16 LoRA training on flex: base product and adapter as one autodiff op.
                #[cfg(target_arch = "x86_64")]
                let x = {
                    let d = &l.dropout;
                    let adapter = crate::cpu_bf16::Adapter {
                        a: l.a.val(),
                        b: l.b.val(),
                        scaling: l.scaling,
                        dropout: if d.training.is_enabled() { d.prob } else { 0.0 },
                    };
                    match crate::cpu_bf16::try_lora_linear(&self.base, x, &adapter) {
                        Ok(y) => return y,
                        Err(x) => x,
                    }
                };
                let y = crate::cpu_bf16::linear(&self.base, x.clone());
                let dtype = y.dtype();
                let x = cast(x, l.a.val().dtype());
                // The scaling on the rank-r activations, not on the [.., out] product: a pass
                // over r values per row instead of `out` (forward and backward).
                let h = matmul_last(l.dropout.forward(x), l.a.val()).mul_scalar(l.scaling);
                y + cast(matmul_last(h, l.b.val()), dtype)
            }
            _ => crate::cpu_bf16::linear(&self.base, x),
        }
    }

    /// Attaches a fresh adapter (A uniform in +-1/sqrt(in) like PEFT's Kaiming init, drawn on
    /// the host from `seed` so every backend starts from the same values; B = 0).
    pub fn add_lora(&mut self, rank: usize, alpha: f64, dropout: f64, seed: u64, dev: &Device) {
        use rand::{RngExt, SeedableRng};
        let [d_in, d_out] = self.base.weight.val().dims();
        let bound = 1.0 / (d_in as f64).sqrt();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let values: Vec<f32> = (0..d_in * rank).map(|_| rng.random_range(-bound..bound) as f32).collect();
        let a = Tensor::<2>::from_data(burn::tensor::TensorData::new(values, [d_in, rank]), (dev, DType::F32));
        let b = Tensor::<2>::zeros([rank, d_out], (dev, DType::F32));
        self.lora = Some(LoraAdapter {
            a: Param::from_tensor(a),
            b: Param::from_tensor(b),
            scaling: alpha / rank as f64,
            dropout: DropoutConfig::new(dropout).init(),
        });
    }

    /// Folds the adapter into the base weight (`W += A B * scaling`) and removes it.
    pub fn merge_lora(&mut self) {
        if let Some(l) = self.lora.take() {
            let delta = l.a.val().matmul(l.b.val()).mul_scalar(l.scaling);
            let base = self.base.weight.val();
            let w = base.clone() + cast(delta, base.dtype());
            self.base.weight = Param::from_tensor(w.detach()).set_require_grad(false);
        }
    }
}

/// Qwen2 RMSNorm (`name.weight`): normalised in f32, then scaled in the input's dtype (as
/// transformers' `Qwen2RMSNorm`).
#[derive(Module, Debug)]
pub struct RmsNorm {
    pub weight: Param<Tensor<1>>,
    pub eps: f64,
}

impl RmsNorm {
    pub fn load(w: &mut dyn WeightSource, name: &str, d: usize, eps: f64, dev: &Device) -> Result<Self> {
        Ok(RmsNorm { weight: Param::from_tensor(load_param(w, &format!("{name}.weight"), &[d], dev)?), eps })
    }
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        // bf16 inference on flex: one pass per row instead of eight tensor ops.
        let x = match crate::cpu_bf16::try_rms_norm(x, &self.weight.val(), self.eps) {
            Ok(y) => return y,
            Err(x) => x,
        };
        let dtype = x.dtype();
        let x = cast(x, DType::F32);
        let var = x.clone().square().mean_dim(D - 1);
        let x = cast(x * var.add_scalar(self.eps).sqrt().recip(), dtype);
        x * self.weight.val().unsqueeze()
    }
    pub fn export(&self, name: &str, sink: &mut TensorSink) {
        sink.put(format!("{name}.weight"), to_host(self.weight.val()));
    }
}

/// `torch.nn.LayerNorm` with affine weight and bias, computed in f32 and returned in the input's
/// dtype.
#[derive(Module, Debug)]
pub struct LayerNorm {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
    pub eps: f64,
}

impl LayerNorm {
    pub fn load(w: &mut dyn WeightSource, name: &str, d: usize, eps: f64, dev: &Device) -> Result<Self> {
        Ok(LayerNorm {
            weight: Param::from_tensor(load_param(w, &format!("{name}.weight"), &[d], dev)?),
            bias: Param::from_tensor(load_param(w, &format!("{name}.bias"), &[d], dev)?),
            eps,
        })
    }
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        // bf16 inference on flex: one pass per row instead of a dozen tensor ops.
        let x = match crate::cpu_bf16::try_layer_norm(x, &self.weight.val(), &self.bias.val(), self.eps) {
            Ok(y) => return y,
            Err(x) => x,
        };
        let dtype = x.dtype();
        let x = cast(x, DType::F32);
        let mean = x.clone().mean_dim(D - 1);
        let xc = x - mean;
        let var = xc.clone().square().mean_dim(D - 1);
        let xn = xc * var.add_scalar(self.eps).sqrt().recip();
        let w = cast(self.weight.val(), DType::F32).unsqueeze();
        let b = cast(self.bias.val(), DType::F32).unsqueeze();
        cast(xn * w + b, dtype)
    }
    pub fn export(&self, name: &str, sink: &mut TensorSink) {
        sink.put(format!("{name}.weight"), to_host(self.weight.val()));
        sink.put(format!("{name}.bias"), to_host(self.bias.val()));
    }
}
