//! The optimiser side: Adam/AdamW over the trainable parameters, gradient accumulation and a
//! global gradient-norm clip (burn's built-in clipping is per tensor).

use burn::Tensor;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};

use crate::config::{OptimConfig, OptimizerKind};

/// Builds the burn optimiser for `cfg`.
pub fn build_optimizer(cfg: &OptimConfig) -> ModuleOptimizer {
    match cfg.kind {
        OptimizerKind::Adam => AdamConfig::new()
            .with_beta_1(cfg.beta1)
            .with_beta_2(cfg.beta2)
            .with_epsilon(cfg.eps)
            .with_weight_decay((cfg.weight_decay > 0.0).then(|| WeightDecayConfig::new(cfg.weight_decay)))
            .init(),
        OptimizerKind::AdamW => AdamWConfig::new()
            .with_beta_1(cfg.beta1)
            .with_beta_2(cfg.beta2)
            .with_epsilon(cfg.eps)
            .with_weight_decay(cfg.weight_decay)
            .init(),
    }
}

struct SumSquares<'a> {
    grads: &'a GradientsParams,
    sum: f64,
}

impl ModuleVisitor for SumSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.sum += g.powi_scalar(2).sum().into_scalar::<f32>() as f64;
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f32,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register::<D>(param.id, g.mul_scalar(self.factor));
        }
    }
}

/// `sqrt(Σ ‖g‖²)` over the parameters of `module` present in `grads`.
pub fn global_grad_norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    let mut v = SumSquares { grads, sum: 0.0 };
    module.visit(&mut v);
    v.sum.sqrt()
}

/// Multiplies every gradient of `module` in `grads` by `factor`.
pub fn scale_grads<M: Module>(module: &M, grads: &mut GradientsParams, factor: f32) {
    let mut v = Scale { grads, factor };
    module.visit(&mut v);
}

/// Adam(W) with accumulation over micro-batches and a global-norm clip at each step.
pub struct Learner<M> {
    optimizer: ModuleOptimizer,
    accumulator: GradientsAccumulator<M>,
    pending: usize,
    max_grad_norm: Option<f32>,
    steps: usize,
}

impl<M: Module> Learner<M> {
    pub fn new(cfg: &OptimConfig) -> Self {
        Learner {
            optimizer: build_optimizer(cfg),
            accumulator: GradientsAccumulator::new(),
            pending: 0,
            max_grad_norm: cfg.max_grad_norm,
            steps: 0,
        }
    }

    /// The optimiser state as a burnpack buffer.
    pub fn optimizer_bytes(&self) -> Result<Vec<u8>, crate::error::DacError> {
        let bytes =
            self.optimizer.into_bytes().map_err(|e| crate::error::DacError::Config(format!("optimizer state: {e}")))?;
        Ok(bytes.to_vec())
    }

    /// Restores the optimiser state from [`optimizer_bytes`](Self::optimizer_bytes).
    pub fn load_optimizer_bytes(&mut self, bytes: Vec<u8>) -> Result<(), crate::error::DacError> {
        let optimizer = std::mem::replace(&mut self.optimizer, AdamConfig::new().init());
        self.optimizer = optimizer
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
            .map_err(|e| crate::error::DacError::Config(format!("optimizer state: {e}")))?;
        Ok(())
    }

    /// Micro-batches accumulated since the last step.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Optimiser steps taken.
    pub fn steps(&self) -> usize {
        self.steps
    }

    pub fn accumulate(&mut self, module: &M, grads: GradientsParams) {
        self.accumulator.accumulate(module, grads);
        self.pending += 1;
    }

    /// Counts a micro-batch that contributed no gradient here (a data-parallel rank whose slice
    /// of it was empty), so every rank averages over the same number of micro-batches.
    pub fn accumulate_nothing(&mut self) {
        self.pending += 1;
    }

    /// Takes the pending gradients: their mean over the accumulated micro-batches, with the
    /// global norm clipped. Returns them with the norm before clipping, or `None` if nothing was
    /// pending.
    pub fn take_grads(&mut self, module: &M) -> Option<(GradientsParams, f64)> {
        self.take_grads_with(module, &mut crate::update::Alone).ok().flatten()
    }

    /// [`take_grads`](Self::take_grads) with the pending sum first reduced across processes by
    /// `sync` (the sum over ranks of their slices' gradients is the one-process gradient).
    pub fn take_grads_with(
        &mut self,
        module: &M,
        sync: &mut dyn crate::update::GradSync,
    ) -> Result<Option<(GradientsParams, f64)>, crate::error::DacError> {
        if self.pending == 0 {
            return Ok(None);
        }
        let mut grads = self.accumulator.grads();
        if sync.size() > 1 {
            crate::update::all_reduce_grads(module, &mut grads, sync)?;
        }
        scale_grads(module, &mut grads, 1.0 / self.pending as f32);
        let norm = global_grad_norm(module, &grads);
        if let Some(max) = self.max_grad_norm {
            // torch.nn.utils.clip_grad_norm_: factor max/(norm + 1e-6), never above 1.
            let factor = max as f64 / (norm + 1e-6);
            if factor < 1.0 {
                scale_grads(module, &mut grads, factor as f32);
            }
        }
        self.pending = 0;
        Ok(Some((grads, norm)))
    }

    /// Averages the pending gradients, clips their global norm, and steps. Returns the norm before
    /// clipping, or `None` if nothing was pending.
    pub fn step(&mut self, module: &mut M, lr: f64) -> Option<f64> {
        self.step_with(module, lr, &mut crate::update::Alone).ok().flatten()
    }

    /// [`step`](Self::step) on the gradients summed across processes by `sync`.
    pub fn step_with(
        &mut self,
        module: &mut M,
        lr: f64,
        sync: &mut dyn crate::update::GradSync,
    ) -> Result<Option<f64>, crate::error::DacError> {
        let Some((grads, norm)) = self.take_grads_with(module, sync)? else {
            return Ok(None);
        };
        *module = self.optimizer.step(lr, module.clone(), grads);
        self.steps += 1;
        Ok(Some(norm))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DacConfig;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::{Device, TensorData};

    fn grads_of(m: &Linear, x: [f32; 3], device: &Device) -> (GradientsParams, Vec<f32>) {
        let x = Tensor::<2>::from_data(TensorData::new(x.to_vec(), [1, 3]), device);
        let loss = m.forward(x).powi_scalar(2).sum();
        let g = GradientsParams::from_grads(loss.backward(), m);
        let flat = g.get::<2>(m.weight.id).map(|t| t.into_data().try_to_vec::<f32>().unwrap()).unwrap_or_default();
        (g, flat)
    }

    #[test]
    fn accumulation_averages_and_clip_bounds_the_global_norm() {
        let device = Device::flex().autodiff();
        let m = LinearConfig::new(3, 2).with_bias(false).init(&device);
        let mut cfg = DacConfig::preset("vldac-paper").unwrap().optim;
        cfg.max_grad_norm = None;
        let mut learner = Learner::<Linear>::new(&cfg);
        let (g1, f1) = grads_of(&m, [1.0, -2.0, 0.5], &device);
        let (g2, f2) = grads_of(&m, [0.3, 0.1, -1.0], &device);
        learner.accumulate(&m, g1);
        learner.accumulate(&m, g2);
        let (mean, norm) = learner.take_grads(&m).unwrap();
        let got = mean.get::<2>(m.weight.id).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let want: Vec<f32> = f1.iter().zip(&f2).map(|(a, b)| (a + b) / 2.0).collect();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
        let want_norm = want.iter().map(|x| (x * x) as f64).sum::<f64>().sqrt();
        assert!((norm - want_norm).abs() < 1e-5 * want_norm.max(1.0));
        assert!(learner.take_grads(&m).is_none(), "nothing pending after take");

        cfg.max_grad_norm = Some((want_norm / 10.0) as f32);
        let mut learner = Learner::<Linear>::new(&cfg);
        learner.accumulate(&m, grads_of(&m, [1.0, -2.0, 0.5], &device).0);
        learner.accumulate(&m, grads_of(&m, [0.3, 0.1, -1.0], &device).0);
        let (clipped, pre) = learner.take_grads(&m).unwrap();
        assert!((pre - want_norm).abs() < 1e-5 * want_norm.max(1.0));
        let after = global_grad_norm(&m, &clipped);
        assert!((after - want_norm / 10.0).abs() < 1e-4 * want_norm, "{after}");
    }
}
