//! Run-time selection of the instruction set: the one place that detects CPU features.
//!
//! Levels, lowest first per architecture: x86_64 `Scalar` (SSE2) < `Avx2` (AVX2+FMA) <
//! `Avx512` (AVX-512 F/VL/BW) < `Avx512Vnni` (plus VNNI byte dot products); aarch64 `Scalar` <
//! `Neon` < `NeonDot` (the dot-product extension). Hot loops are written once as plain Rust and
//! compiled per level by `multiversion!`; the hand-written kernels (VNNI and AVX2 GEMMs, the
//! AVX-512/VNNI Winograd transforms, NEON and sdot GEMMs) run where `supports` says so. The best
//! level the CPU has is chosen at run time; `WINQ_ISA=scalar` (or `avx2`, `avx512`,
//! `avx512-vnni`, `neon`, `neon-dotprod`) caps it, and every path is callable explicitly (`*_isa`
//! functions, kernels' explicit paths) so tests compare them all in one process.

use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Whatever the compilation target guarantees (SSE2 on x86_64, NEON on aarch64).
    Scalar,
    Avx2,
    Avx512,
    /// AVX-512 with VNNI (vpdpbusd): the INT8 GEMM and Winograd input-transform kernels.
    Avx512Vnni,
    /// aarch64 hand-written NEON kernels (widening multiplies; every aarch64 CPU).
    Neon,
    /// aarch64 with the dot-product extension (sdot, ARMv8.2+).
    NeonDot,
}

impl Isa {
    pub const ALL: [Isa; 6] = [
        Isa::Scalar,
        Isa::Avx2,
        Isa::Avx512,
        Isa::Avx512Vnni,
        Isa::Neon,
        Isa::NeonDot,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Avx512Vnni => "avx512-vnni",
            Isa::Neon => "neon",
            Isa::NeonDot => "neon-dotprod",
        }
    }

    /// The level named `s` (as `name` writes it; `vnni` is accepted for `avx512-vnni`).
    pub fn parse(s: &str) -> Option<Isa> {
        match s {
            "vnni" => Some(Isa::Avx512Vnni),
            _ => Isa::ALL.into_iter().find(|i| i.name() == s),
        }
    }

    /// Whether this is an aarch64 level (the others are x86_64's, and `Scalar`).
    fn arm(self) -> bool {
        self >= Isa::Neon
    }

    /// Whether this level includes `other` (same architecture, at least as high).
    pub fn includes(self, other: Isa) -> bool {
        other == Isa::Scalar || (self.arm() == other.arm() && self >= other)
    }
}

/// Instruction sets this CPU can run, lowest first (detected once).
pub fn available() -> &'static [Isa] {
    static AVAILABLE: OnceLock<Vec<Isa>> = OnceLock::new();
    AVAILABLE.get_or_init(detect)
}

/// Whether code for `isa` may run on this CPU (explicit paths fall back when it may not).
pub fn supports(isa: Isa) -> bool {
    available().contains(&isa)
}

/// Whether code needing `level` (a hand-written kernel's features) runs for a caller asking
/// for `isa`: the level is included in it and the CPU has it.
pub fn enabled(isa: Isa, level: Isa) -> bool {
    isa.includes(level) && supports(level)
}

fn detect() -> Vec<Isa> {
    #[allow(unused_mut)]
    let mut v = vec![Isa::Scalar];
    #[cfg(target_arch = "aarch64")]
    {
        v.push(Isa::Neon);
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            v.push(Isa::NeonDot);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx2") && has!("fma") {
            v.push(Isa::Avx2);
            if has!("avx512f") && has!("avx512vl") && has!("avx512bw") {
                v.push(Isa::Avx512);
                if has!("avx512vnni") {
                    v.push(Isa::Avx512Vnni);
                }
            }
        }
    }
    v
}

/// The instruction set in use: the best available, capped by `WINQ_ISA` (a cap naming the
/// other architecture's level caps nothing; `scalar` caps everything).
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let cap = std::env::var("WINQ_ISA").ok().and_then(|s| Isa::parse(&s));
        let allowed = |i: Isa| match cap {
            Some(Isa::Scalar) => i == Isa::Scalar,
            Some(c) if c.arm() == i.arm() => c.includes(i),
            _ => true,
        };
        available()
            .iter()
            .rev()
            .copied()
            .find(|&i| allowed(i))
            .unwrap_or(Isa::Scalar)
    })
}

/// Defines `$name(args)` (dispatching on `isa()`) and `$name_isa(isa, args)` from one body.
/// The body is inlined into `#[target_feature]` wrappers so the compiler vectorizes it for
/// each instruction set. Asking for an ISA the CPU lacks falls back to the scalar path.
#[macro_export]
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident / $name_isa:ident ($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            $name_isa($crate::simd::isa(), $($arg),*)
        }

        /// The same function on an explicit instruction set.
        #[allow(clippy::too_many_arguments)]
        $vis fn $name_isa(isa: $crate::simd::Isa, $($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn imp($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx512($($arg: $ty),*) $(-> $ret)? { imp($($arg),*) }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { imp($($arg),*) }
            let isa = if isa == $crate::simd::isa() || $crate::simd::supports(isa) { isa } else { $crate::simd::Isa::Scalar };
            match isa {
                #[cfg(target_arch = "x86_64")]
                $crate::simd::Isa::Avx512 | $crate::simd::Isa::Avx512Vnni => {
                    // SAFETY: the CPU supports AVX-512 F/VL and AVX2+FMA (checked just above).
                    unsafe { avx512($($arg),*) }
                }
                #[cfg(target_arch = "x86_64")]
                $crate::simd::Isa::Avx2 => {
                    // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                    unsafe { avx2($($arg),*) }
                }
                _ => imp($($arg),*),
            }
        }
    };
}
