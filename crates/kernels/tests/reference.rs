use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use winq_kernels::reference::{direct_conv, im2row_conv, no_hook, relative_l2, winograd_conv, Stage};
use winq_kernels::Nchw;
use winq_transforms::{transform, PointSet};

fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

#[test]
fn direct_conv_known_values() {
    // All-ones 3x3 kernel over an all-ones 4x5 image counts the in-bounds taps.
    let xs = Nchw::new(1, 1, 4, 5);
    let y = direct_conv(&[1.0f64; 20], xs, &[1.0; 9], 1, 3);
    assert_eq!(&y[0..5], &[4.0, 6.0, 6.0, 6.0, 4.0]);
    assert_eq!(&y[5..10], &[6.0, 9.0, 9.0, 9.0, 6.0]);
    // Correlation, not convolution: a kernel with a single tap at (0, 0) shifts the image
    // down-right (y[i,j] = x[i-1,j-1]).
    let x: Vec<f64> = (0..20).map(|v| v as f64).collect();
    let mut w = [0.0; 9];
    w[0] = 1.0;
    let y = direct_conv(&x, xs, &w, 1, 3);
    assert_eq!(y[xs.index(0, 0, 2, 3)], x[xs.index(0, 0, 1, 2)]);
    assert_eq!(y[xs.index(0, 0, 0, 3)], 0.0);
    // Two channels sum; two output channels are independent.
    let xs2 = Nchw::new(1, 2, 3, 3);
    let x2: Vec<f64> = (0..18).map(|v| v as f64).collect();
    let mut w2 = vec![0.0; 2 * 2 * 9];
    w2[4] = 1.0; // k0 <- centre tap of c0
    w2[9 + 4] = 2.0; // k0 <- 2 * centre tap of c1
    w2[18 + 9 + 4] = -1.0; // k1 <- -c1
    let y = direct_conv(&x2, xs2, &w2, 2, 3);
    for p in 0..9 {
        assert_eq!(y[p], x2[p] + 2.0 * x2[9 + p]);
        assert_eq!(y[9 + p], -x2[9 + p]);
    }
}

#[test]
fn im2row_matches_direct_including_5x5() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (n, c, h, w, k, r) in [(2, 3, 5, 7, 4, 3), (1, 1, 1, 1, 1, 3), (1, 2, 6, 4, 3, 5)] {
        let xs = Nchw::new(n, c, h, w);
        let x = random(&mut rng, xs.len());
        let wt = random(&mut rng, k * c * r * r);
        let a = direct_conv(&x, xs, &wt, k, r);
        let b = im2row_conv(&x, xs, &wt, k, r, &mut no_hook);
        assert!(relative_l2(&b, &a) < 1e-14);
    }
}

#[test]
fn winograd_f64_equals_direct_for_every_size_4_to_37() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for m in [2, 4, 6] {
        let tr = transform(m, 3, &PointSet::Paper).unwrap().to_f64();
        for size in 4..=37 {
            let xs = Nchw::new(1, 2, size, size);
            let x = random(&mut rng, xs.len());
            let w = random(&mut rng, 3 * 2 * 9);
            let want = direct_conv(&x, xs, &w, 3, 3);
            let got = winograd_conv(&x, xs, &w, 3, &tr, &mut no_hook);
            let err = relative_l2(&got, &want);
            assert!(err <= 1e-12, "F{m} size {size}: relative error {err:e}");
        }
    }
}

#[test]
fn winograd_awkward_shapes_and_other_kernels() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // Non-square, one channel, batch > 1, maps smaller than a tile, 5x5 and 7x7 kernels.
    let cases = [
        (2, 1, 5, 9, 1, 2, 3),
        (3, 3, 11, 4, 2, 6, 3),
        (1, 2, 1, 1, 2, 4, 3),
        (1, 2, 3, 2, 3, 6, 3),
        (1, 2, 9, 10, 2, 3, 5),
        (1, 1, 13, 8, 1, 2, 7),
    ];
    for (n, c, h, w, k, m, r) in cases {
        let tr = transform(m, r, &PointSet::Default).unwrap().to_f64();
        let xs = Nchw::new(n, c, h, w);
        let x = random(&mut rng, xs.len());
        let wt = random(&mut rng, k * c * r * r);
        let want = direct_conv(&x, xs, &wt, k, r);
        let got = winograd_conv(&x, xs, &wt, k, &tr, &mut no_hook);
        let err = relative_l2(&got, &want);
        assert!(err <= 1e-11, "{n}x{c}x{h}x{w} K{k} F({m},{r}): {err:e}");
    }
}

#[test]
fn winograd_f32_is_close_to_f64_direct() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for m in [2, 4, 6] {
        let tr = transform(m, 3, &PointSet::Paper).unwrap().to_f32();
        let xs = Nchw::new(1, 8, 14, 14);
        let x = random(&mut rng, xs.len());
        let w = random(&mut rng, 8 * 8 * 9);
        let want = direct_conv(&x, xs, &w, 8, 3);
        let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let wf: Vec<f32> = w.iter().map(|&v| v as f32).collect();
        let got = winograd_conv(&xf, xs, &wf, 8, &tr, &mut no_hook);
        let err = relative_l2(&got, &want);
        // F6's paper points (±3/2) give entries up to 243/32: f32 loses about 10x more.
        let tol = if m == 6 { 1e-4 } else { 1e-5 };
        assert!(err <= tol, "F{m} f32: {err:e}");
        assert!(err > 0.0);
    }
}

#[test]
fn hook_sees_every_stage_once_with_its_shape() {
    let tr = transform(4, 3, &PointSet::Paper).unwrap().to_f64();
    let xs = Nchw::new(2, 3, 7, 9); // 2x3 tiles of 4x4 outputs
    let mut seen = Vec::new();
    let mut hook = |s: Stage, d: &mut [f64]| seen.push((s, d.len()));
    winograd_conv(&vec![0.5; xs.len()], xs, &[0.25; 5 * 3 * 9], 5, &tr, &mut hook);
    let tiles = 2 * 3;
    assert_eq!(
        seen,
        vec![
            (Stage::Input, xs.len()),
            (Stage::Weight, 5 * 3 * 9),
            (Stage::WinogradWeight, 5 * 3 * 36),
            (Stage::WinogradInput, 2 * 3 * tiles * 36),
            (Stage::Hadamard, 2 * 5 * tiles * 36),
            (Stage::Output, 2 * 5 * 7 * 9),
        ]
    );
}
