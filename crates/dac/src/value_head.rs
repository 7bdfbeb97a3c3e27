//! The step-level critic: an MLP on the hidden state of the last prompt token, with a
//! stop-gradient at its input (VL-DAC Eq. 4 and §"Stabilization").

use burn::Tensor;
use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::Device;
use burn::tensor::activation::relu;

/// Value head shape. The official code uses `H → 3072 → 2048 → 1` with ReLU.
#[derive(Config, Debug)]
pub struct ValueHeadConfig {
    /// Hidden size of the backbone (3584 for Qwen2-VL-7B, 1536 for Qwen2-VL-2B).
    pub d_input: usize,
    #[config(default = "vec![3072, 2048]")]
    pub hidden: Vec<usize>,
}

/// `V(s) = MLP(h_last_prompt_token)`.
#[derive(Module, Debug)]
pub struct ValueHead {
    layers: Vec<Linear>,
}

impl ValueHeadConfig {
    pub fn init(&self, device: &Device) -> ValueHead {
        let mut dims = vec![self.d_input];
        dims.extend(&self.hidden);
        dims.push(1);
        let layers = dims.windows(2).map(|w| LinearConfig::new(w[0], w[1]).init(device)).collect();
        ValueHead { layers }
    }

    /// Like [`Self::init`], with torch's `nn.Linear` initialisation (weights and biases uniform
    /// in ±1/sqrt(fan_in), as the official head) drawn on the host from `seed`: the same head on
    /// every backend, whose own random generators differ.
    pub fn init_seeded(&self, device: &Device, seed: u64) -> ValueHead {
        use burn::module::Param;
        use burn::tensor::{DType, TensorData};
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut dims = vec![self.d_input];
        dims.extend(&self.hidden);
        dims.push(1);
        let mut uniform =
            |n: usize, bound: f64| -> Vec<f32> { (0..n).map(|_| rng.random_range(-bound..bound) as f32).collect() };
        let layers = dims
            .windows(2)
            .map(|w| {
                let bound = 1.0 / (w[0] as f64).sqrt();
                let weight = TensorData::new(uniform(w[0] * w[1], bound), [w[0], w[1]]);
                let bias = TensorData::new(uniform(w[1], bound), [w[1]]);
                Linear {
                    weight: Param::from_tensor(Tensor::<2>::from_data(weight, (device, DType::F32))),
                    bias: Some(Param::from_tensor(Tensor::<1>::from_data(bias, (device, DType::F32)))),
                }
            })
            .collect();
        ValueHead { layers }
    }
}

impl ValueHead {
    /// A head from given layers (input first), e.g. loaded weights. ReLU between layers; the
    /// last layer must have one output.
    pub fn from_layers(layers: Vec<Linear>) -> Self {
        ValueHead { layers }
    }

    /// The linear layers, input first.
    pub fn layers(&self) -> Vec<&Linear> {
        self.layers.iter().collect()
    }

    /// # Shapes
    /// - `hidden`: `[B, H]`, the backbone's last-layer state at the last prompt token
    /// - output: `[B]`
    ///
    /// With `stop_grad`, `hidden` is detached first: the value loss then trains only this head.
    pub fn forward(&self, hidden: Tensor<2>, stop_grad: bool) -> Tensor<1> {
        let mut x = if stop_grad { hidden.detach() } else { hidden };
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = relu(x);
            }
        }
        let [b, _] = x.dims();
        x.reshape([b])
    }
}
