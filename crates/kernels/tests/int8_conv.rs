//! The channel-last INT8 im2row kernel against a plain integer direct convolution followed by
//! the same requantization: exactly equal, on awkward shapes (1 channel, odd sizes, 1×1,
//! channel counts not a multiple of 4, batch > 1), on every instruction set this CPU has; and
//! every INT8 Winograd path (instruction set × tile transforms) against the portable one.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use winq_kernels::int8::conv::Im2rowI8;
use winq_kernels::int8::to_code;
use winq_quant::simd;

/// Direct convolution in i32 on N×H×W×C codes, weights [K, C, r, r], then requantized.
#[allow(clippy::too_many_arguments)]
fn reference(
    x: &[i8],
    qw: &[i8],
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    k: usize,
    r: usize,
    mul: &[f32],
) -> Vec<i8> {
    let p = (r - 1) as isize / 2;
    let mut y = vec![0i8; n * h * w * k];
    for ni in 0..n {
        for i in 0..h {
            for j in 0..w {
                for ko in 0..k {
                    let mut acc = 0i32;
                    for ci in 0..c {
                        for u in 0..r {
                            for v in 0..r {
                                let (si, sj) = (i as isize + u as isize - p, j as isize + v as isize - p);
                                if si < 0 || sj < 0 || si >= h as isize || sj >= w as isize {
                                    continue;
                                }
                                let xv = x[((ni * h + si as usize) * w + sj as usize) * c + ci] as i32;
                                acc += xv * qw[((ko * c + ci) * r + u) * r + v] as i32;
                            }
                        }
                    }
                    y[((ni * h + i) * w + j) * k + ko] = to_code(acc as f32 * mul[ko]);
                }
            }
        }
    }
    y
}

#[test]
fn im2row_int8_equals_integer_direct_convolution() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for &(n, c, k, h, w, r, per_channel) in &[
        (1, 1, 1, 1, 1, 3, false),
        (1, 1, 5, 7, 3, 3, false),
        (2, 3, 7, 5, 9, 3, true),
        (1, 32, 32, 8, 8, 3, false),
        (1, 13, 17, 11, 6, 1, true),
        (3, 6, 70, 4, 5, 3, true),
        (1, 64, 10, 3, 3, 1, false),
    ] {
        let x: Vec<i8> = (0..n * h * w * c).map(|_| rng.gen()).collect();
        let mut qw: Vec<i8> = (0..k * c * r * r).map(|_| rng.gen()).collect();
        qw[0] = -128;
        let (s_in, s_out) = (0.02, 0.9);
        let s_w: Vec<f64> = if per_channel {
            (0..k).map(|_| rng.gen_range(0.001..0.02)).collect()
        } else {
            vec![0.01]
        };
        let mul: Vec<f32> = (0..k)
            .map(|i| (s_in * s_w[if per_channel { i } else { 0 }] / s_out) as f32)
            .collect();
        let want = reference(&x, &qw, n, h, w, c, k, r, &mul);
        for &isa in simd::available() {
            let layer = Im2rowI8::new(&qw, c, k, r, s_in, &s_w, s_out).with_isa(isa);
            let mut y = vec![0i8; n * h * w * k];
            layer.forward(&x, n, h, w, &mut y);
            assert_eq!(y, want, "{}: n{n} c{c} k{k} {h}x{w} r{r}", isa.name());
        }
    }
}

/// The register-block Winograd transforms against the lane-wise ones: identical codes, for
/// F2/F4/F6, random transforms (including Bᵀ and Aᵀ codes too large for the exact-f32
/// shortcuts), per-tap and single Hadamard scales (output transform on values / on codes),
/// odd sizes and batch 2.
#[test]
fn winograd_block_transforms_equal_lane_transforms() {
    use winq_ir::QuantWinograd;
    use winq_kernels::int8::winograd::{Transforms, WinogradI8};
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let mut a_kinds = [false; 2];
    let cases = [(2, false), (4, false), (4, true), (6, false), (6, true)];
    for ((m, big), per_tap) in cases.into_iter().flat_map(|c| [(c, true), (c, false)]) {
        let big_b = big;
        let t = m + 2;
        let (n, c, k, h, w) = (2, 32, 16, 7, 13);
        let mut qb: Vec<i8> = (0..t * t)
            .map(|_| {
                if rng.gen_bool(0.4) {
                    0
                } else {
                    rng.gen_range(-40..=40)
                }
            })
            .collect();
        if big_b {
            qb[0..t].iter_mut().for_each(|v| *v = 127);
        }
        let a_max = if big { 127 } else { 30 };
        let qa: Vec<i8> = (0..m * t).map(|_| rng.gen_range(-a_max..=a_max)).collect();
        let spec = QuantWinograd {
            c,
            k,
            m,
            at: qa.clone(),
            bt: qb,
            s_at: 0.01,
            s_bt: 0.02,
            u: (0..t * t * k * c).map(|_| rng.gen()).collect(),
            s_u: (0..t * t).map(|_| rng.gen_range(0.001..0.01)).collect(),
            s_in: 0.05,
            s_v: (0..t * t).map(|_| rng.gen_range(0.01..0.1)).collect(),
            s_m: (0..if per_tap { t * t } else { 1 })
                .map(|_| rng.gen_range(0.05..0.5))
                .collect(),
            s_out: 1.0,
        };
        // An output scale that keeps most codes in range: |Y| ~ s_a²·s_m·σ(M codes)·Σ a².
        let a2 = qa
            .chunks(t)
            .map(|r| r.iter().map(|&v| (v as f64).powi(2)).sum::<f64>())
            .fold(0.0, f64::max);
        let s_m = spec.s_m.iter().sum::<f64>() / spec.s_m.len() as f64;
        let spec = QuantWinograd {
            s_out: spec.s_at * spec.s_at * s_m * 50.0 * a2 / 40.0,
            ..spec
        };
        if !per_tap {
            // Which output path the codes take: f32 (exact) or i32.
            let l1 = qa
                .chunks(t)
                .map(|r| r.iter().map(|v| v.unsigned_abs() as u32).sum::<u32>())
                .max();
            a_kinds[usize::from(l1.map_or(0, |l| l as u64 * l as u64 * 128) >= 1 << 24)] = true;
        }
        let x: Vec<i8> = (0..n * h * w * c).map(|_| rng.gen()).collect();
        let (mut y_blocks, mut y_lanes) = (vec![0i8; n * h * w * k], vec![1i8; n * h * w * k]);
        // On 3 threads: the block path splits the tile rows into parts, some starting inside
        // an image.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("thread pool");
        pool.install(|| WinogradI8::new(spec.clone()).forward(&x, n, h, w, &mut y_blocks));
        WinogradI8::new(spec)
            .with_path(simd::isa(), Transforms::Lanes)
            .forward(&x, n, h, w, &mut y_lanes);
        assert_eq!(y_blocks, y_lanes, "F{m} big={big} per_tap={per_tap}");
        assert!(y_blocks.iter().any(|&v| v != 0) && y_blocks.iter().any(|&v| v != y_blocks[0]));
        let saturated = y_blocks.iter().filter(|&&v| v == 127 || v == -128).count();
        let distinct = y_blocks.iter().collect::<std::collections::BTreeSet<_>>().len();
        assert!(
            saturated * 20 < y_blocks.len() && distinct > 32,
            "F{m}: outputs should spread over the code range ({saturated} saturated, {distinct} distinct)"
        );
    }
    assert_eq!(
        a_kinds,
        [true, true],
        "both output paths on codes (f32 and i32) tested"
    );
}

/// Layers split into row chunks over threads compute exactly what one thread computes (pools
/// of 1, 2 and 3 threads; uneven splits, batch 2).
#[test]
fn thread_count_does_not_change_results() {
    use winq_ir::QuantWinograd;
    use winq_kernels::int8::winograd::WinogradI8;
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let (n, c, k, h, w) = (2, 16, 32, 13, 11);
    let x: Vec<i8> = (0..n * h * w * c).map(|_| rng.gen()).collect();
    let qw: Vec<i8> = (0..k * c * 9).map(|_| rng.gen()).collect();
    let im2row = Im2rowI8::new(&qw, c, k, 3, 0.02, &[0.01], 0.3);
    let winograd: Vec<WinogradI8> = [2usize, 4, 6]
        .iter()
        .map(|&m| {
            let t = m + 2;
            WinogradI8::new(QuantWinograd {
                c,
                k,
                m,
                at: (0..m * t).map(|_| rng.gen_range(-127..=127)).collect(),
                bt: (0..t * t).map(|_| rng.gen_range(-60..=60)).collect(),
                s_at: 0.01,
                s_bt: 0.02,
                u: (0..t * t * k * c).map(|_| rng.gen()).collect(),
                s_u: vec![0.004],
                s_in: 0.05,
                s_v: vec![0.05],
                s_m: vec![0.2],
                s_out: 0.1,
            })
        })
        .collect();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        pool.install(|| {
            let mut outs = Vec::new();
            let mut y = vec![0i8; n * h * w * k];
            im2row.forward(&x, n, h, w, &mut y);
            outs.push(y.clone());
            for l in &winograd {
                l.forward(&x, n, h, w, &mut y);
                outs.push(y.clone());
            }
            outs
        })
    };
    let one = run(1);
    assert!(one.iter().all(|y| y.iter().any(|&v| v != y[0])));
    assert_eq!(run(2), one);
    assert_eq!(run(3), one);
}

/// An empty batch (or empty image) is a no-op on every path, not a panic.
#[test]
fn empty_inputs_are_no_ops() {
    use winq_ir::QuantWinograd;
    use winq_kernels::int8::winograd::{Transforms, WinogradI8};
    let (c, k) = (16, 16);
    let qw: Vec<i8> = vec![1; k * c * 9];
    let im2row = Im2rowI8::new(&qw, c, k, 3, 0.02, &[0.01], 0.3);
    for (n, h, w) in [(0, 8, 8), (1, 0, 8), (2, 8, 0)] {
        im2row.forward(&[], n, h, w, &mut []);
        for m in [2usize, 4, 6] {
            let t = m + 2;
            let spec = QuantWinograd {
                c,
                k,
                m,
                at: vec![1; m * t],
                bt: vec![1; t * t],
                s_at: 0.01,
                s_bt: 0.02,
                u: vec![1; t * t * k * c],
                s_u: vec![0.004],
                s_in: 0.05,
                s_v: vec![0.05],
                s_m: vec![0.2],
                s_out: 0.1,
            };
            WinogradI8::new(spec.clone()).forward(&[], n, h, w, &mut []);
            for isa in simd::available().iter().copied() {
                for tr in [Transforms::Lanes, Transforms::Blocks, Transforms::Native] {
                    WinogradI8::new(spec.clone())
                        .with_path(isa, tr)
                        .forward(&[], n, h, w, &mut []);
                }
            }
        }
    }
}

/// Every INT8 Winograd path — each instruction set this CPU has × lane-wise, portable block
/// and native (AVX-512 / VNNI) tile transforms — computes exactly the codes of the portable
/// lane-wise path (itself equal to training's eval forward, see winq-nn's engine_match): F2,
/// F4, F6, channel counts that take the block path (multiples of 16) and ones that do not, one
/// and per-tap Hadamard scales, odd sizes, batch 2.
#[test]
fn every_winograd_path_equals_the_portable_lanes() {
    use winq_ir::QuantWinograd;
    use winq_kernels::int8::winograd::{Transforms, WinogradI8};
    let mut rng = ChaCha8Rng::seed_from_u64(24);
    let mut covered = std::collections::BTreeSet::new();
    for (m, c, k, per_tap) in [
        (2, 16, 32, false),
        (4, 16, 16, false),
        (4, 32, 16, true),
        (6, 16, 16, false),
        (6, 16, 48, true),
        (4, 3, 5, false),
        (2, 1, 16, true),
    ] {
        let t = m + 2;
        let (n, h, w) = (2, 9, 7);
        let taps = if per_tap { t * t } else { 1 };
        let spec = QuantWinograd {
            c,
            k,
            m,
            at: (0..m * t).map(|_| rng.gen_range(-40..=40)).collect(),
            bt: (0..t * t).map(|_| rng.gen_range(-20..=20)).collect(),
            s_at: 0.02,
            s_bt: 0.05,
            u: (0..t * t * k * c).map(|_| rng.gen()).collect(),
            s_u: (0..taps).map(|_| rng.gen_range(0.001..0.01)).collect(),
            s_in: 0.05,
            s_v: (0..taps).map(|_| rng.gen_range(0.02..0.2)).collect(),
            s_m: (0..taps).map(|_| rng.gen_range(0.05..0.5)).collect(),
            s_out: 0.05,
        };
        let x: Vec<i8> = (0..n * h * w * c).map(|_| rng.gen()).collect();
        let run = |isa, tr| {
            let l = WinogradI8::new(spec.clone()).with_path(isa, tr);
            let mut y = vec![0i8; n * h * w * k];
            l.forward(&x, n, h, w, &mut y);
            (y, l.transform_path())
        };
        let (want, _) = run(simd::Isa::Scalar, Transforms::Lanes);
        assert!(want.iter().any(|&v| v != want[0]), "F{m}: outputs vary");
        for &isa in simd::available() {
            for tr in [Transforms::Lanes, Transforms::Blocks, Transforms::Native] {
                let (y, path) = run(isa, tr);
                covered.insert(format!("{}/{path}", isa.name()));
                assert_eq!(
                    y,
                    want,
                    "F{m} {c}->{k} per_tap={per_tap}: {} {tr:?} ({path})",
                    isa.name()
                );
            }
        }
    }
    // The native transforms ran where this CPU has them.
    if simd::supports(simd::Isa::Avx512Vnni) {
        assert!(covered.contains("avx512-vnni/vnni+avx512"), "{covered:?}");
    }
    assert!(
        covered.contains("scalar/blocks") && covered.contains("scalar/lanes"),
        "{covered:?}"
    );
}
