use winq_kernels::int8::winograd::{WinogradI8, WinogradSpec};
use winq_transforms::{transform, PointSet};
fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let (c, s, reps) = (args[0], args[1], args[2]);
    let (k, m, n) = (c, 4, 1);
    let t = m + 2;
    let mut seed = 5u64;
    let mut rnd = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 56) as u8 as i8
    };
    let x: Vec<i8> = (0..n * c * s * s).map(|_| rnd() & 127).collect();
    let tr = transform(m, 3, &PointSet::Default).unwrap().to_f64();
    let code = |v: &[f64]| -> (Vec<i32>, f64) {
        let s = v.iter().fold(0.0f64, |a, x| a.max(x.abs())) / 127.5;
        (
            v.iter()
                .map(|x| (x / s).round().clamp(-128.0, 127.0) as i32)
                .collect(),
            s,
        )
    };
    let (qa, s_a) = code(&tr.at.data);
    let (qb, s_b) = code(&tr.bt.data);
    let spec = WinogradSpec {
        c,
        k,
        m,
        qa,
        qb,
        s_a,
        s_b,
        qu: (0..t * t * k * c).map(|_| rnd()).collect(),
        s_u: vec![0.01],
        s_in: 0.02,
        s_v: vec![0.05],
        s_m: vec![0.5],
        s_out: 0.05,
    };
    let l = WinogradI8::new(spec);
    let mut y = vec![0i8; n * k * s * s];
    let mut times = vec![];
    for _ in 0..reps {
        let t0 = std::time::Instant::now();
        l.forward(&x, n, s, s, &mut y);
        times.push(t0.elapsed().as_secs_f64());
        std::hint::black_box(&y);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "F4 {c}@{s}: median {:.4} ms, checksum {}",
        times[reps / 2] * 1e3,
        y.iter().map(|&v| v as i64).sum::<i64>()
    );
}
