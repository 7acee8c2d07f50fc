use winq_study::{run, Algo, Precision, StudyConfig, StudyError};

fn small() -> StudyConfig {
    StudyConfig {
        batch: 1,
        in_channels: 16,
        out_channels: 16,
        height: 12,
        width: 12,
        seeds: 2,
        ..StudyConfig::default()
    }
}

#[test]
fn int8_error_grows_with_tile_and_hadamard_dominates() {
    let res = run(&small()).unwrap();
    let e = |a, p| res.error(a, p).unwrap();
    let int8 = Precision::Int(8);
    let (i2r, f2, f4, f6) = (
        e(Algo::Im2row, int8),
        e(Algo::Winograd { m: 2, flex: false }, int8),
        e(Algo::Winograd { m: 4, flex: false }, int8),
        e(Algo::Winograd { m: 6, flex: false }, int8),
    );
    assert!(
        i2r < f2 && f2 < f4 && f4 < f6,
        "im2row {i2r} F2 {f2} F4 {f4} F6 {f6}"
    );
    for m in [4, 6] {
        let top = res.largest_source(Algo::Winograd { m, flex: false }).unwrap();
        assert_eq!(top.stage, "hadamard", "F{m}: largest source is {}", top.stage);
    }
    // Fewer bits, more error; FP32 is tiny.
    for a in [
        Algo::Im2row,
        Algo::Winograd { m: 2, flex: false },
        Algo::Winograd { m: 4, flex: false },
        Algo::Winograd { m: 6, flex: false },
    ] {
        let (fp, b16, b10, b8) = (
            e(a, Precision::Fp32),
            e(a, Precision::Int(16)),
            e(a, Precision::Int(10)),
            e(a, Precision::Int(8)),
        );
        assert!(
            fp < 1e-4 && fp < b16 && b16 < b10 && b10 < b8,
            "{a}: {fp} {b16} {b10} {b8}"
        );
    }
}

#[test]
fn deterministic_for_a_seed_and_thread_count() {
    let cfg = StudyConfig {
        tiles: vec![4],
        bits: vec![8],
        ..small()
    };
    let a = run(&cfg).unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let b = pool.install(|| run(&cfg).unwrap());
    for (x, y) in a.rows.iter().zip(&b.rows) {
        assert_eq!(x.error.per_seed, y.error.per_seed);
    }
    // Seeds differ from each other.
    assert_ne!(a.rows[1].error.per_seed[0], a.rows[1].error.per_seed[1]);
}

#[test]
fn bad_configurations_are_errors() {
    let bad_bits = StudyConfig {
        bits: vec![1],
        ..small()
    };
    assert_eq!(run(&bad_bits).unwrap_err(), StudyError::Bits(1));
    let bad_size = StudyConfig { height: 0, ..small() };
    assert_eq!(run(&bad_size).unwrap_err(), StudyError::Empty("height"));
    let bad_tile = StudyConfig {
        tiles: vec![0],
        ..small()
    };
    assert!(matches!(run(&bad_tile), Err(StudyError::Transform(_))));
    let paper_f3 = StudyConfig {
        tiles: vec![3],
        points: "paper".parse().unwrap(),
        ..small()
    };
    assert!(run(&paper_f3).unwrap_err().to_string().contains("paper"));
}
