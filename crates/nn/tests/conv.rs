use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use winq_kernels::reference::{direct_conv, relative_l2};
use winq_kernels::Nchw;
use winq_nn::conv::{col2im, im2col, xavier_uniform};
use winq_nn::gradcheck::{check, random_tensor};
use winq_nn::{Conv2d, Layer, Mode, Precision};
use winq_quant::fake_quant_dynamic;

fn conv(c: usize, k: usize, r: usize, p: Precision, seed: u64) -> Conv2d {
    Conv2d::new(
        c,
        k,
        r,
        p,
        xavier_uniform(k, c, r, &mut ChaCha8Rng::seed_from_u64(seed)),
    )
}

#[test]
fn forward_matches_direct_for_awkward_shapes() {
    for (n, c, h, w, k, r) in [
        (2, 3, 5, 7, 4, 3),
        (1, 1, 1, 1, 1, 3),
        (3, 2, 4, 9, 5, 1),
        (1, 17, 6, 6, 3, 3),
    ] {
        let mut l = conv(c, k, r, Precision::Fp32, 1);
        let x = random_tensor(&[n, c, h, w], 2);
        let y = l.forward(&x, Mode::Eval);
        let xd: Vec<f64> = x.data.iter().map(|&v| v as f64).collect();
        let wd: Vec<f64> = l.weight.value.data.iter().map(|&v| v as f64).collect();
        let want = direct_conv(&xd, Nchw::new(n, c, h, w), &wd, k, r);
        assert!(relative_l2(&y.data, &want) < 1e-6, "{n}x{c}x{h}x{w} K{k} r{r}");
    }
}

#[test]
fn quantized_forward_is_quantize_conv_quantize() {
    let (n, c, h, w, k) = (2, 3, 6, 5, 4);
    let mut l = conv(c, k, 3, Precision::Int(8), 3);
    let x = random_tensor(&[n, c, h, w], 4);
    let y = l.forward(&x, Mode::Train);
    let mut xq = x.data.clone();
    fake_quant_dynamic(&mut xq, 8);
    let mut wq = l.weight.value.data.clone();
    fake_quant_dynamic(&mut wq, 8);
    let mut want = direct_conv(&xq, Nchw::new(n, c, h, w), &wq, k, 3);
    fake_quant_dynamic(&mut want, 8);
    let off = y
        .data
        .iter()
        .zip(&want)
        .filter(|(a, b)| (*a - *b).abs() > 1e-6)
        .count();
    assert!(off * 50 <= y.len(), "{off} of {} differ", y.len());
}

#[test]
fn gradients_match_finite_differences() {
    for r in [1, 3] {
        for (n, c, h, w, k) in [(2, 3, 5, 4, 2), (1, 1, 3, 7, 3)] {
            let mut l = conv(c, k, r, Precision::Fp32, 5);
            let x = random_tensor(&[n, c, h, w], 6);
            let rep = check(&mut l, &x, 1e-2, 60, 7);
            assert!(rep.worst < 1e-2, "r{r} {:?}", rep.details);
        }
    }
}

/// col2im is the adjoint of im2col: <im2col(x), c> = <x, col2im(c)>.
#[test]
fn col2im_is_adjoint_of_im2col() {
    let (c, h, w) = (2, 5, 3);
    let x = random_tensor(&[c * h * w], 8).data;
    let cols = random_tensor(&[c * 9 * h * w], 9).data;
    let mut xc = vec![0.0; cols.len()];
    im2col(&x, c, h, w, 3, &mut xc);
    let mut back = vec![0.0; x.len()];
    col2im(&cols, c, h, w, 3, &mut back);
    let lhs: f64 = xc.iter().zip(&cols).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
    let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
    assert!((lhs - rhs).abs() < 1e-5 * lhs.abs().max(1.0));
}
