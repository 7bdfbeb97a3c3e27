//! The language model: Qwen2 decoder layers (GQA attention with M-RoPE, SwiGLU MLP, RMSNorm),
//! every projection a [`LoraLinear`].

use burn::module::{Module, Param};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType, Device, Tensor};

use crate::config::TextConfig;
use crate::error::Result;
use crate::nn::{LoraLinear, RmsNorm, export_linear, load_param, to_host};
use crate::vision::apply_rotary;
use crate::weights::{TensorSink, WeightSource};

#[derive(Module, Debug)]
pub struct Attention {
    pub q_proj: LoraLinear,
    pub k_proj: LoraLinear,
    pub v_proj: LoraLinear,
    pub o_proj: LoraLinear,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: LoraLinear,
    pub up_proj: LoraLinear,
    pub down_proj: LoraLinear,
}

#[derive(Module, Debug)]
pub struct DecoderLayer {
    pub self_attn: Attention,
    pub mlp: Mlp,
    pub input_layernorm: RmsNorm,
    pub post_attention_layernorm: RmsNorm,
}

#[derive(Module, Debug)]
pub struct TextModel {
    /// `[vocab, hidden]`
    pub embed_tokens: Param<Tensor<2>>,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
}

/// Keys and values of past positions, per layer (`[batch, kv_heads, past, head_dim]`, after
/// rotary), plus which past positions are real tokens.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    pub layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    /// `[batch][past]`: false for left padding.
    pub key_mask: Vec<Vec<bool>>,
}

impl KvCache {
    pub fn len(&self) -> usize {
        self.key_mask.first().map_or(0, |m| m.len())
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Attention {
    /// # Shapes
    /// - x: `[b, s, hidden]`; cos/sin: `[b, 1, s, head_dim]`; mask: `[b, 1, s, past + s]` (true = blocked)
    fn forward(
        &self,
        x: Tensor<3>,
        cos: Tensor<4>,
        sin: Tensor<4>,
        mask: Tensor<4, Bool>,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
        adapters: bool,
    ) -> Tensor<3> {
        let [b, s, _] = x.dims();
        let (h, kvh, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let q = self.q_proj.forward(x.clone(), adapters);
        let k = self.k_proj.forward(x.clone(), adapters);
        let v = self.v_proj.forward(x, adapters);
        // A prompt (nothing cached before it) in bf16 on a CPU with AVX512-BF16: rotary and our
        // attention kernel on the token-major projections, no head-major copies or mask
        // repeats. The cache still gets `[b, kv_heads, s, hd]` views.
        let empty_cache = cache.as_ref().is_none_or(|c| c.is_none());
        if s > 1 && empty_cache && crate::cpu_bf16::text_attention_applies(&q, &k, &v, &cos, &sin, hd) {
            let (out, k) = crate::cpu_bf16::text_attention(q, k, v.clone(), &cos, &sin, mask, h, kvh);
            if let Some(slot) = cache {
                let heads_first = |t: Tensor<3>| t.reshape([b, s, kvh, hd]).swap_dims(1, 2);
                *slot = Some((heads_first(k), heads_first(v)));
            }
            return self.o_proj.forward(out, adapters);
        }
        // The same under autodiff (LoRA training's forward): rotary and attention as one op of
        // ours whose backward recomputes each head's probabilities.
        #[cfg(target_arch = "x86_64")]
        if s > 1 && cache.is_none() && crate::cpu_bf16::attention_grad::applies(&q, &k, &v, &cos, &sin, hd) {
            let out = crate::cpu_bf16::attention_grad::prompt_attention(q, k, v, &cos, &sin, mask, h, kvh);
            return self.o_proj.forward(out, adapters);
        }
        let q = q.reshape([b, s, h, hd]).swap_dims(1, 2);
        let k = k.reshape([b, s, kvh, hd]).swap_dims(1, 2);
        let v = v.reshape([b, s, kvh, hd]).swap_dims(1, 2);
        let q = apply_rotary(q, cos.clone(), sin.clone());
        let mut k = apply_rotary(k, cos, sin);
        let mut v = v;
        if let Some(slot) = cache {
            if let Some((pk, pv)) = slot.take() {
                k = Tensor::cat(vec![pk, k], 2);
                v = Tensor::cat(vec![pv, v], 2);
            }
            *slot = Some((k.clone(), v.clone()));
        }
        let t = k.dims()[2];
        let rep = h / kvh;
        // Grouped-query attention without repeating K/V: query head `g * rep + r` uses KV head
        // `g` (transformers' `repeat_kv`), so the `rep` query heads of a group are stacked as
        // `rep * s` rows against their one KV head. Repeating K/V instead copied the whole cache
        // `rep` times per layer and step.
        let q = q.reshape([b, kvh, rep * s, hd]);
        let mask = mask.unsqueeze_dim::<5>(2).expand([b, kvh, rep, s, t]).reshape([b, kvh, rep * s, t]);
        // burn's fused attention: flex's tiled kernel on CPU, flash attention on CUDA (autotune),
        // SDPA on libtorch; under autodiff it falls back to the explicit form. Every query sees
        // at least its own key (see `Qwen2Vl::mask`), so no row is fully masked.
        let mask = Some(libtorch_mask(mask));
        let out = if crate::cpu_bf16::attention_in_f32(&q) {
            let f = |t: Tensor<4>| t.cast(DType::F32);
            attention(f(q), f(k), f(v), mask, None, AttentionModuleOptions::default()).cast(DType::BF16)
        } else {
            attention(q, k, v, mask, None, AttentionModuleOptions::default())
        };
        let out = out.reshape([b, h, s, hd]);
        self.o_proj.forward(out.swap_dims(1, 2).reshape([b, s, h * hd]), adapters)
    }
}

/// burn-tch 0.22.1 hands burn's boolean mask (true = masked out) to torch's
/// `scaled_dot_product_attention`, where true means "may attend", so on a libtorch device
/// (outside autodiff, which uses burn's own explicit form) the mask is passed complemented.
/// Without this, generation on `tch-cpu` diverged from flex (`crates/train/tests/devices.rs`,
/// run by `cargo xtask test --with-tch`).
fn libtorch_mask(mask: Tensor<4, Bool>) -> Tensor<4, Bool> {
    let dev = mask.device();
    if !dev.is_autodiff() && format!("{dev:?}").contains("LibTorch") { mask.bool_not() } else { mask }
}

impl Mlp {
    fn forward(&self, x: Tensor<3>, adapters: bool) -> Tensor<3> {
        // Both base products and the activation in one call when neither has an adapter to add.
        let (gate, up) = (&self.gate_proj, &self.up_proj);
        let x = if gate.adapter_active(adapters)
            || up.adapter_active(adapters)
            || gate.base.bias.is_some()
            || up.base.bias.is_some()
        {
            x
        } else {
            match crate::cpu_bf16::try_swiglu(x, &gate.base.weight.val(), &up.base.weight.val()) {
                Ok(h) => return self.down_proj.forward(h, adapters),
                Err(x) => x,
            }
        };
        let g = self.gate_proj.forward(x.clone(), adapters);
        let h = crate::cpu_bf16::gated::silu_mul(g, self.up_proj.forward(x, adapters));
        self.down_proj.forward(h, adapters)
    }
}

impl TextModel {
    pub fn load(w: &mut dyn WeightSource, cfg: &TextConfig, dev: &Device) -> Result<Self> {
        let (hs, is) = (cfg.hidden_size, cfg.intermediate_size);
        let hd = cfg.head_dim();
        let (h, kvh) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let embed = load_param(w, "model.embed_tokens.weight", &[cfg.vocab_size, hs], dev)?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            layers.push(DecoderLayer {
                self_attn: Attention {
                    q_proj: LoraLinear::load(w, &format!("{p}.self_attn.q_proj"), hs, h * hd, true, dev)?,
                    k_proj: LoraLinear::load(w, &format!("{p}.self_attn.k_proj"), hs, kvh * hd, true, dev)?,
                    v_proj: LoraLinear::load(w, &format!("{p}.self_attn.v_proj"), hs, kvh * hd, true, dev)?,
                    o_proj: LoraLinear::load(w, &format!("{p}.self_attn.o_proj"), h * hd, hs, false, dev)?,
                    num_heads: h,
                    num_kv_heads: kvh,
                    head_dim: hd,
                },
                mlp: Mlp {
                    gate_proj: LoraLinear::load(w, &format!("{p}.mlp.gate_proj"), hs, is, false, dev)?,
                    up_proj: LoraLinear::load(w, &format!("{p}.mlp.up_proj"), hs, is, false, dev)?,
                    down_proj: LoraLinear::load(w, &format!("{p}.mlp.down_proj"), is, hs, false, dev)?,
                },
                input_layernorm: RmsNorm::load(w, &format!("{p}.input_layernorm"), hs, cfg.rms_norm_eps, dev)?,
                post_attention_layernorm: RmsNorm::load(
                    w,
                    &format!("{p}.post_attention_layernorm"),
                    hs,
                    cfg.rms_norm_eps,
                    dev,
                )?,
            });
        }
        let norm = RmsNorm::load(w, "model.norm", hs, cfg.rms_norm_eps, dev)?;
        Ok(TextModel { embed_tokens: Param::from_tensor(embed), layers, norm })
    }

    pub fn export(&self, sink: &mut TensorSink) {
        sink.put("model.embed_tokens.weight", to_host(self.embed_tokens.val()));
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            let a = &l.self_attn;
            for (n, proj) in
                [("q_proj", &a.q_proj), ("k_proj", &a.k_proj), ("v_proj", &a.v_proj), ("o_proj", &a.o_proj)]
            {
                export_linear(&proj.base, &format!("{p}.self_attn.{n}"), sink);
            }
            for (n, proj) in
                [("gate_proj", &l.mlp.gate_proj), ("up_proj", &l.mlp.up_proj), ("down_proj", &l.mlp.down_proj)]
            {
                export_linear(&proj.base, &format!("{p}.mlp.{n}"), sink);
            }
            l.input_layernorm.export(&format!("{p}.input_layernorm"), sink);
            l.post_attention_layernorm.export(&format!("{p}.post_attention_layernorm"), sink);
        }
        self.norm.export("model.norm", sink);
    }

    /// Every LoRA-able projection with its HF module path (`model.layers.N.self_attn.q_proj`...).
    pub fn projections_mut(&mut self) -> Vec<(String, &mut LoraLinear)> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter_mut().enumerate() {
            let p = format!("model.layers.{i}");
            let a = &mut l.self_attn;
            out.push((format!("{p}.self_attn.q_proj"), &mut a.q_proj));
            out.push((format!("{p}.self_attn.k_proj"), &mut a.k_proj));
            out.push((format!("{p}.self_attn.v_proj"), &mut a.v_proj));
            out.push((format!("{p}.self_attn.o_proj"), &mut a.o_proj));
            let m = &mut l.mlp;
            out.push((format!("{p}.mlp.gate_proj"), &mut m.gate_proj));
            out.push((format!("{p}.mlp.up_proj"), &mut m.up_proj));
            out.push((format!("{p}.mlp.down_proj"), &mut m.down_proj));
        }
        out
    }

    pub fn projections(&self) -> Vec<(String, &LoraLinear)> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            let a = &l.self_attn;
            for (n, proj) in
                [("q_proj", &a.q_proj), ("k_proj", &a.k_proj), ("v_proj", &a.v_proj), ("o_proj", &a.o_proj)]
            {
                out.push((format!("{p}.self_attn.{n}"), proj));
            }
            let m = &l.mlp;
            for (n, proj) in [("gate_proj", &m.gate_proj), ("up_proj", &m.up_proj), ("down_proj", &m.down_proj)] {
                out.push((format!("{p}.mlp.{n}"), proj));
            }
        }
        out
    }

    /// Runs the decoder on embeddings. Returns the final-norm hidden states.
    ///
    /// # Shapes
    /// - embeds: `[b, s, hidden]`; cos/sin: `[b, 1, s, head_dim]`; mask: `[b, 1, s, past + s]`
    pub fn forward_embeds(
        &self,
        embeds: Tensor<3>,
        cos: Tensor<4>,
        sin: Tensor<4>,
        mask: Tensor<4, Bool>,
        mut cache: Option<&mut KvCache>,
        adapters: bool,
    ) -> Tensor<3> {
        let mut x = embeds;
        if let Some(c) = cache.as_deref_mut()
            && c.layers.len() != self.layers.len()
        {
            c.layers = vec![None; self.layers.len()];
        }
        for (i, l) in self.layers.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            let a = l.self_attn.forward(
                l.input_layernorm.forward(x.clone()),
                cos.clone(),
                sin.clone(),
                mask.clone(),
                slot,
                adapters,
            );
            x = x + a;
            let m = l.mlp.forward(l.post_attention_layernorm.forward(x.clone()), adapters);
            x = x + m;
        }
        self.norm.forward(x)
    }
}
