//! Vision tower: patch embedding (a Conv3d whose stride equals its kernel, i.e. a matmul on
//! flattened patches), ViT blocks with 2D rotary attention inside each image, and the
//! PatchMerger that turns every 2x2 window into one language-model token.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::{gelu, sigmoid};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::config::VisionConfig;
use crate::cpu_bf16::{Epilogue, linear};
use crate::error::Result;
use crate::nn::{LayerNorm, cast, device_tensor, export_linear, load_linear, to_host};
use crate::rope::vision_cos_sin;
use crate::weights::{HostTensor, TensorSink, WeightSource};

const LN_EPS: f64 = 1e-6;

#[derive(Module, Debug)]
pub struct VisionBlock {
    pub norm1: LayerNorm,
    pub norm2: LayerNorm,
    pub qkv: Linear,
    pub proj: Linear,
    pub fc1: Linear,
    pub fc2: Linear,
    pub num_heads: usize,
}

#[derive(Module, Debug)]
pub struct PatchMerger {
    pub ln_q: LayerNorm,
    pub fc1: Linear,
    pub fc2: Linear,
}

#[derive(Module, Debug)]
pub struct VisionTower {
    /// `[patch_dim, embed_dim]` (the Conv3d kernel flattened in (C, T, P, P) order).
    pub patch_embed: Param<Tensor<2>>,
    pub blocks: Vec<VisionBlock>,
    pub merger: PatchMerger,
    #[module(skip)]
    pub config: VisionConfig,
}

fn rotate_half<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let d = x.dims()[D - 1];
    let x1 = x.clone().narrow(D - 1, 0, d / 2);
    let x2 = x.narrow(D - 1, d / 2, d / 2);
    Tensor::cat(vec![x2.neg(), x1], D - 1)
}

/// `x * cos + rotate_half(x) * sin` (cos/sin broadcast against x).
pub fn apply_rotary<const D: usize>(x: Tensor<D>, cos: Tensor<D>, sin: Tensor<D>) -> Tensor<D> {
    x.clone() * cos + rotate_half(x) * sin
}

fn quick_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone() * sigmoid(x.mul_scalar(1.702))
}

impl VisionBlock {
    /// # Shapes
    /// - x: `[n, embed]` patches of one image; cos/sin: `[n, 1, head_dim]`
    fn attention(&self, x: Tensor<2>, cos: Tensor<3>, sin: Tensor<3>) -> Tensor<2> {
        let [n, e] = x.dims();
        let h = self.num_heads;
        let hd = e / h;
        // bf16 on a CPU with AVX512-BF16: rotary and attention in one pass of our kernels.
        let qkv = match crate::cpu_bf16::try_vision_attention(linear(&self.qkv, x), h, &cos, &sin) {
            Ok(out) => return linear(&self.proj, out),
            Err(qkv) => qkv.reshape([n, 3, h, hd]),
        };
        let q = qkv.clone().narrow(1, 0, 1).reshape([n, h, hd]);
        let k = qkv.clone().narrow(1, 1, 1).reshape([n, h, hd]);
        let v = qkv.narrow(1, 2, 1).reshape([n, h, hd]);
        // Rotary in f32 (cos/sin are f32), as transformers does for the vision tower.
        let dtype = v.dtype();
        let q = cast(apply_rotary(cast(q, DType::F32), cos.clone(), sin.clone()), dtype).swap_dims(0, 1);
        let k = cast(apply_rotary(cast(k, DType::F32), cos, sin), dtype).swap_dims(0, 1);
        let v = v.swap_dims(0, 1);
        // burn's fused attention (tiled on flex, flash on CUDA, SDPA on libtorch), full within
        // the image.
        let out = attention(
            q.unsqueeze_dim(0),
            k.unsqueeze_dim(0),
            v.unsqueeze_dim(0),
            None,
            None,
            AttentionModuleOptions::default(),
        );
        let out: Tensor<3> = out.squeeze_dim(0); // [h, n, hd]
        linear(&self.proj, out.swap_dims(0, 1).reshape([n, e]))
    }

    fn forward(&self, x: Tensor<2>, cos: Tensor<3>, sin: Tensor<3>) -> Tensor<2> {
        let x = x.clone() + self.attention(self.norm1.forward(x), cos, sin);
        let h = crate::cpu_bf16::linear_then(&self.fc1, self.norm2.forward(x.clone()), Epilogue::QuickGelu, quick_gelu);
        let h = linear(&self.fc2, h);
        x + h
    }
}

impl VisionTower {
    pub fn load(w: &mut dyn WeightSource, cfg: &VisionConfig, dev: &Device) -> Result<Self> {
        let e = cfg.embed_dim;
        let mut pe = w.take_raw(
            "visual.patch_embed.proj.weight",
            &[e, cfg.in_channels, cfg.temporal_patch_size, cfg.patch_size, cfg.patch_size],
        )?;
        pe.shape = vec![e, cfg.patch_dim()];
        let pe = device_tensor::<2>(pe.transposed(), dev);
        let mut blocks = Vec::with_capacity(cfg.depth);
        for i in 0..cfg.depth {
            let p = format!("visual.blocks.{i}");
            blocks.push(VisionBlock {
                norm1: LayerNorm::load(w, &format!("{p}.norm1"), e, LN_EPS, dev)?,
                norm2: LayerNorm::load(w, &format!("{p}.norm2"), e, LN_EPS, dev)?,
                qkv: load_linear(w, &format!("{p}.attn.qkv"), e, 3 * e, true, dev)?,
                proj: load_linear(w, &format!("{p}.attn.proj"), e, e, true, dev)?,
                fc1: load_linear(w, &format!("{p}.mlp.fc1"), e, cfg.mlp_dim(), true, dev)?,
                fc2: load_linear(w, &format!("{p}.mlp.fc2"), cfg.mlp_dim(), e, true, dev)?,
                num_heads: cfg.num_heads,
            });
        }
        let m2 = e * cfg.spatial_merge_size * cfg.spatial_merge_size;
        let merger = PatchMerger {
            ln_q: LayerNorm::load(w, "visual.merger.ln_q", e, LN_EPS, dev)?,
            fc1: load_linear(w, "visual.merger.mlp.0", m2, m2, true, dev)?,
            fc2: load_linear(w, "visual.merger.mlp.2", m2, cfg.hidden_size, true, dev)?,
        };
        // Nothing trains the tower, and each image multiplies every weight by ~1,000 rows.
        for b in &blocks {
            [&b.qkv, &b.proj, &b.fc1, &b.fc2].into_iter().for_each(crate::cpu_bf16::keep_packed);
        }
        [&merger.fc1, &merger.fc2].into_iter().for_each(crate::cpu_bf16::keep_packed);
        Ok(VisionTower { patch_embed: Param::from_tensor(pe), blocks, merger, config: cfg.clone() })
    }

    pub fn export(&self, sink: &mut TensorSink) {
        let c = &self.config;
        let pe = to_host(self.patch_embed.val().transpose());
        sink.put(
            "visual.patch_embed.proj.weight",
            HostTensor {
                shape: vec![c.embed_dim, c.in_channels, c.temporal_patch_size, c.patch_size, c.patch_size],
                data: pe.data,
            },
        );
        for (i, b) in self.blocks.iter().enumerate() {
            let p = format!("visual.blocks.{i}");
            b.norm1.export(&format!("{p}.norm1"), sink);
            b.norm2.export(&format!("{p}.norm2"), sink);
            export_linear(&b.qkv, &format!("{p}.attn.qkv"), sink);
            export_linear(&b.proj, &format!("{p}.attn.proj"), sink);
            export_linear(&b.fc1, &format!("{p}.mlp.fc1"), sink);
            export_linear(&b.fc2, &format!("{p}.mlp.fc2"), sink);
        }
        self.merger.ln_q.export("visual.merger.ln_q", sink);
        export_linear(&self.merger.fc1, "visual.merger.mlp.0", sink);
        export_linear(&self.merger.fc2, "visual.merger.mlp.2", sink);
    }

    /// # Shapes
    /// - pixel_values: `[n_patches, patch_dim]` (all images, in order)
    /// - returns: `[n_patches / merge^2, hidden]`, one row per `<|image_pad|>` token
    pub fn forward(&self, pixel_values: Tensor<2>, grids: &[[usize; 3]]) -> Tensor<2> {
        let dev = pixel_values.device();
        let c = &self.config;
        let hd = c.head_dim();
        let x = crate::cpu_bf16::matmul_last(
            cast(pixel_values, self.patch_embed.val().dtype()),
            self.patch_embed.val(),
            false,
        );
        let (cos, sin) = vision_cos_sin(grids, hd, c.spatial_merge_size);
        let n_total = x.dims()[0];
        let cos = Tensor::<3>::from_data(TensorData::new(cos, [n_total, 1, hd]), (&dev, DType::F32));
        let sin = Tensor::<3>::from_data(TensorData::new(sin, [n_total, 1, hd]), (&dev, DType::F32));
        // Attention is full within each image and absent across images.
        let mut outs = Vec::with_capacity(grids.len());
        let mut start = 0;
        for g in grids {
            let n = g[0] * g[1] * g[2];
            let mut h = x.clone().narrow(0, start, n);
            let (cs, sn) = (cos.clone().narrow(0, start, n), sin.clone().narrow(0, start, n));
            for b in &self.blocks {
                h = b.forward(h, cs.clone(), sn.clone());
            }
            outs.push(h);
            start += n;
        }
        let h = Tensor::cat(outs, 0);
        let m2 = c.spatial_merge_size * c.spatial_merge_size;
        let h = self.merger.ln_q.forward(h).reshape([n_total / m2, c.embed_dim * m2]);
        linear(&self.merger.fc2, crate::cpu_bf16::linear_then(&self.merger.fc1, h, Epilogue::Gelu, gelu))
    }
}
