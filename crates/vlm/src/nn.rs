//! Small building blocks loaded from HF-named tensors: linear (with optional LoRA), RMSNorm,
//! LayerNorm, and the tensor <-> host conversions used by loading and export.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::Result;
use crate::weights::{HostTensor, TensorSink, WeightSource};

pub fn tensor1(t: HostTensor, dev: &Device) -> Tensor<1> {
    let n = t.data.len();
    Tensor::from_data(TensorData::new(t.data, [n]), dev)
}

pub fn tensor2(t: HostTensor, dev: &Device) -> Tensor<2> {
    let s = [t.shape[0], t.shape[1]];
    Tensor::from_data(TensorData::new(t.data, s), dev)
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

/// A `torch.nn.Linear` (`name.weight` [out, in], optional `name.bias`), stored as burn's
/// `[in, out]` layout.
pub fn load_linear(
    w: &mut dyn WeightSource,
    name: &str,
    d_in: usize,
    d_out: usize,
    bias: bool,
    dev: &Device,
) -> Result<Linear> {
    let weight = transpose_host(&w.take(&format!("{name}.weight"), &[d_out, d_in])?);
    let bias =
        if bias { Some(Param::from_tensor(tensor1(w.take(&format!("{name}.bias"), &[d_out])?, dev))) } else { None };
    Ok(Linear { weight: Param::from_tensor(tensor2(weight, dev)), bias })
}

pub fn export_linear(l: &Linear, name: &str, sink: &mut TensorSink) {
    sink.put(format!("{name}.weight"), transpose_host(&to_host(l.weight.val())));
    if let Some(b) = &l.bias {
        sink.put(format!("{name}.bias"), to_host(b.val()));
    }
}

/// Low-rank update `x A B * alpha / r` (PEFT's `lora_A` = A^T, `lora_B` = B^T).
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

    /// # Shapes
    /// - x: `[.., in]` -> `[.., out]`
    pub fn forward<const D: usize>(&self, x: Tensor<D>, adapters: bool) -> Tensor<D> {
        let y = self.base.forward(x.clone());
        match (&self.lora, adapters) {
            (Some(l), true) => {
                let h = matmul_last(l.dropout.forward(x), l.a.val());
                y + matmul_last(h, l.b.val()).mul_scalar(l.scaling)
            }
            _ => y,
        }
    }

    /// Attaches a fresh adapter (A uniform in +-1/sqrt(in) like PEFT's Kaiming init, B = 0).
    pub fn add_lora(&mut self, rank: usize, alpha: f64, dropout: f64, dev: &Device) {
        let [d_in, d_out] = self.base.weight.val().dims();
        let bound = 1.0 / (d_in as f64).sqrt();
        let a = Tensor::<2>::random([d_in, rank], burn::tensor::Distribution::Uniform(-bound, bound), dev);
        let b = Tensor::<2>::zeros([rank, d_out], dev);
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
            let w = self.base.weight.val() + delta;
            self.base.weight = Param::from_tensor(w.detach()).set_require_grad(false);
        }
    }
}

/// Qwen2 RMSNorm (`name.weight`), computed in the tensor's dtype.
#[derive(Module, Debug)]
pub struct RmsNorm {
    pub weight: Param<Tensor<1>>,
    pub eps: f64,
}

impl RmsNorm {
    pub fn load(w: &mut dyn WeightSource, name: &str, d: usize, eps: f64, dev: &Device) -> Result<Self> {
        Ok(RmsNorm { weight: Param::from_tensor(tensor1(w.take(&format!("{name}.weight"), &[d])?, dev)), eps })
    }
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let var = x.clone().square().mean_dim(D - 1);
        let x = x * var.add_scalar(self.eps).sqrt().recip();
        x * self.weight.val().unsqueeze()
    }
    pub fn export(&self, name: &str, sink: &mut TensorSink) {
        sink.put(format!("{name}.weight"), to_host(self.weight.val()));
    }
}

/// `torch.nn.LayerNorm` with affine weight and bias.
#[derive(Module, Debug)]
pub struct LayerNorm {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
    pub eps: f64,
}

impl LayerNorm {
    pub fn load(w: &mut dyn WeightSource, name: &str, d: usize, eps: f64, dev: &Device) -> Result<Self> {
        Ok(LayerNorm {
            weight: Param::from_tensor(tensor1(w.take(&format!("{name}.weight"), &[d])?, dev)),
            bias: Param::from_tensor(tensor1(w.take(&format!("{name}.bias"), &[d])?, dev)),
            eps,
        })
    }
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let mean = x.clone().mean_dim(D - 1);
        let xc = x - mean;
        let var = xc.clone().square().mean_dim(D - 1);
        let xn = xc * var.add_scalar(self.eps).sqrt().recip();
        xn * self.weight.val().unsqueeze() + self.bias.val().unsqueeze()
    }
    pub fn export(&self, name: &str, sink: &mut TensorSink) {
        sink.put(format!("{name}.weight"), to_host(self.weight.val()));
        sink.put(format!("{name}.bias"), to_host(self.bias.val()));
    }
}
