//! A tiny network trained for 200 steps on a fixed synthetic problem must learn it, in plain
//! FP32 and as a flex F4 INT8 Winograd-aware network.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use winq_nn::conv::{torch_default_uniform, xavier_uniform};
use winq_nn::{
    softmax_cross_entropy, zero_grads, Adam, BatchNorm2d, Conv2d, GlobalAvgPool, Layer, Linear, Mode,
    Optimizer, Precision, Relu, Sequential, Tensor, WinogradConv2d,
};
use winq_transforms::PointSet;

/// 4 classes of 8x8 images: horizontal stripes, vertical stripes, a bright centre, a checkerboard,
/// at random phase, amplitude and with noise.
fn batch(rng: &mut ChaCha8Rng, n: usize) -> (Tensor, Vec<usize>) {
    let mut x = vec![0.0f32; n * 64];
    let mut y = Vec::with_capacity(n);
    for s in 0..n {
        let class = rng.gen_range(0..4);
        let phase = rng.gen_range(0..2);
        let amp = rng.gen_range(0.5..1.5f32);
        for i in 0..8 {
            for j in 0..8 {
                let v = match class {
                    0 => ((i + phase) % 2) as f32,
                    1 => ((j + phase) % 2) as f32,
                    2 => ((2..6).contains(&i) && (2..6).contains(&j)) as u8 as f32,
                    _ => ((i + j + phase) % 2) as f32,
                };
                x[s * 64 + i * 8 + j] = amp * v + rng.gen_range(-0.3..0.3f32);
            }
        }
        y.push(class);
    }
    (Tensor::from_vec(&[n, 1, 8, 8], x), y)
}

fn train(conv: Box<dyn Layer>) -> f32 {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut net = Sequential::new();
    net.push_boxed("conv", conv);
    let mut net = net
        .push("bn", BatchNorm2d::new(8))
        .push("relu", Relu::new())
        .push("pool", GlobalAvgPool::new())
        .push("fc", Linear::new(8, 4, &mut rng));
    let mut opt = Adam::new(4e-5).unwrap();
    let mut data = ChaCha8Rng::seed_from_u64(7);
    let mut last = Vec::new();
    for step in 0..200 {
        let (x, y) = batch(&mut data, 32);
        let logits = net.forward(&x, Mode::Train);
        let (loss, g, _) = softmax_cross_entropy(&logits, &y).unwrap();
        net.backward(&g);
        opt.step(&mut net, 1e-2);
        zero_grads(&mut net);
        if step >= 180 {
            last.push(loss);
        }
    }
    // Eval-mode accuracy on fresh data must also be high.
    let (x, y) = batch(&mut data, 256);
    let logits = net.forward(&x, Mode::Eval);
    let (_, _, correct) = softmax_cross_entropy(&logits, &y).unwrap();
    assert!(correct >= 230, "eval accuracy {correct}/256");
    let loss = last.iter().sum::<f32>() / last.len() as f32;
    eprintln!("final loss {loss}, eval accuracy {correct}/256");
    loss
}

#[test]
fn tiny_fp32_network_learns() {
    let w = torch_default_uniform(8, 1, 3, &mut ChaCha8Rng::seed_from_u64(1));
    let loss = train(Box::new(Conv2d::new(1, 8, 3, Precision::Fp32, w)));
    assert!(loss < 0.15, "final loss {loss}");
}

#[test]
fn tiny_flex_f4_int8_network_learns() {
    let w = xavier_uniform(8, 1, 3, &mut ChaCha8Rng::seed_from_u64(1));
    let conv = WinogradConv2d::new(1, 8, 4, PointSet::Default, true, Precision::Int(8), w).unwrap();
    let loss = train(Box::new(conv));
    assert!(loss < 0.15, "final loss {loss}");
}
