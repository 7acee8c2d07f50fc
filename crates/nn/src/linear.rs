//! Fully connected layer.

use crate::export::ExportError;
use crate::layer::{path, Layer, Mode, Param, ParamVisitor};
use crate::tensor::Tensor;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use winq_kernels::gemm::{sgemm, Layout};

/// Products with at least this many multiply-adds use rayon's pool inside gemm.
const PAR_MIN_FLOPS: usize = 1 << 18;

/// y = x·Wᵀ + b with W [out, in], x [N, in]. Any input [N, d1, d2, ...] with d1·d2·… = in
/// (e.g. [N, C, 1, 1]) is flattened, and its gradient comes back in that shape.
/// Both modes cache the input, so backward works after either.
pub struct Linear {
    pub in_features: usize,
    pub out_features: usize,
    pub weight: Param,
    pub bias: Param,
    x: Tensor,
    in_shape: Option<Vec<usize>>,
}

impl Linear {
    /// PyTorch's default init: kaiming-uniform with a = √5 gives U(−1/√in, 1/√in) for W, and
    /// the bias uses the same bound.
    pub fn new(in_features: usize, out_features: usize, rng: &mut ChaCha8Rng) -> Linear {
        assert!(
            in_features > 0 && out_features > 0,
            "Linear needs in and out features > 0, got {in_features} -> {out_features}"
        );
        let bound = 1.0 / (in_features as f32).sqrt();
        let mut uniform =
            |len: usize| -> Vec<f32> { (0..len).map(|_| rng.gen_range(-bound..bound)).collect() };
        let w = uniform(out_features * in_features);
        let b = uniform(out_features);
        Linear {
            in_features,
            out_features,
            weight: Param::new(Tensor::from_vec(&[out_features, in_features], w)),
            bias: Param::new(Tensor::from_vec(&[out_features], b)),
            x: Tensor::default(),
            in_shape: None,
        }
    }

    fn threads(&self, n: usize) -> usize {
        if n * self.in_features * self.out_features >= PAR_MIN_FLOPS {
            rayon::current_num_threads()
        } else {
            1
        }
    }
}

impl Layer for Linear {
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> Tensor {
        let feats: usize = x.shape.iter().skip(1).product();
        assert!(
            x.shape.len() >= 2 && feats == self.in_features,
            "Linear({} -> {}): expected input [N, {}] or [N, C, 1, 1] with C = {}, got shape {:?}",
            self.in_features,
            self.out_features,
            self.in_features,
            self.in_features,
            x.shape
        );
        let (n, din, dout) = (x.shape[0], self.in_features, self.out_features);
        let y = winq_kernels::gemm::linear_rows(
            &x.data,
            n,
            din,
            &self.weight.value.data,
            dout,
            &self.bias.value.data,
        );
        self.x.clone_from(x);
        self.in_shape = Some(x.shape.clone());
        Tensor::from_vec(&[n, dout], y)
    }

    fn backward(&mut self, grad: &Tensor) -> Tensor {
        let shape = self
            .in_shape
            .take()
            .expect("Linear::backward called without a forward");
        let (n, din, dout) = (shape[0], self.in_features, self.out_features);
        assert_eq!(
            grad.shape,
            [n, dout],
            "Linear: gradient shape differs from output"
        );
        let th = self.threads(n);
        // dW += gᵀ·x: [out, N]·[N, in].
        let g = &grad.data;
        sgemm(
            dout,
            din,
            n,
            g,
            Layout::T,
            &self.x.data,
            Layout::N,
            &mut self.weight.grad.data,
            true,
            th,
        );
        for row in g.chunks_exact(dout) {
            for (b, &v) in self.bias.grad.data.iter_mut().zip(row) {
                *b += v;
            }
        }
        // dx = g·W: [N, out]·[out, in].
        let mut dx = vec![0.0; n * din];
        sgemm(
            n,
            din,
            dout,
            g,
            Layout::N,
            &self.weight.value.data,
            Layout::N,
            &mut dx,
            false,
            th,
        );
        Tensor::from_vec(&shape, dx)
    }

    fn visit_params(&mut self, prefix: &str, f: ParamVisitor) {
        f(&path(prefix, "weight"), &mut self.weight);
        f(&path(prefix, "bias"), &mut self.bias);
    }

    fn export(&mut self) -> Result<winq_ir::Op, ExportError> {
        Ok(winq_ir::Op::Linear {
            inputs: self.in_features,
            outputs: self.out_features,
            weight: self.weight.value.data.clone(),
            bias: self.bias.value.data.clone(),
        })
    }

    fn describe(&self) -> String {
        format!("Linear({} -> {})", self.in_features, self.out_features)
    }
}
