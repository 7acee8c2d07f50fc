//! Run-time selection of the instruction set for winq's hand-written loops.
//!
//! Hot loops are written once as plain Rust and compiled several times by `multiversion!`
//! (AVX-512, AVX2+FMA, baseline); the best the CPU supports is chosen at run time.
//! `WINQ_ISA=scalar` (or `avx2`, `avx512`, `neon`) forces a lower path, and every path is
//! callable explicitly (`*_isa` functions) so tests can compare them. On aarch64 the
//! `multiversion!` loops have one build (NEON is the baseline there); the hand-written NEON
//! and dot-product kernels are selected through `Neon` / `NeonDot`.

use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Whatever the compilation target guarantees (SSE2 on x86_64, NEON on aarch64).
    Scalar,
    Avx2,
    Avx512,
    /// aarch64 hand-written NEON kernels (widening multiplies; every aarch64 CPU).
    Neon,
    /// aarch64 with the dot-product extension (sdot, ARMv8.2+).
    NeonDot,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
            Isa::NeonDot => "neon-dotprod",
        }
    }
}

/// Instruction sets this CPU can run, lowest first (detected once).
pub fn available() -> &'static [Isa] {
    static AVAILABLE: OnceLock<Vec<Isa>> = OnceLock::new();
    AVAILABLE.get_or_init(detect)
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
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            v.push(Isa::Avx2);
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                v.push(Isa::Avx512);
            }
        }
    }
    v
}

/// The instruction set in use: the best available, capped by `WINQ_ISA`.
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let cap = match std::env::var("WINQ_ISA").as_deref() {
            Ok("scalar") => Some(Isa::Scalar),
            Ok("avx2") => Some(Isa::Avx2),
            Ok("avx512") => Some(Isa::Avx512),
            Ok("neon") => Some(Isa::Neon),
            _ => None,
        };
        // Paths of one architecture are ordered lowest first; a cap naming the other
        // architecture's path caps nothing (scalar caps everything).
        let arm = |i: Isa| i >= Isa::Neon;
        let allowed = |i: Isa| match cap {
            Some(Isa::Scalar) => i == Isa::Scalar,
            Some(c) if arm(c) == arm(i) => i <= c,
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
            let isa = if isa == $crate::simd::isa() || $crate::simd::available().contains(&isa) { isa } else { $crate::simd::Isa::Scalar };
            match isa {
                // SAFETY: the CPU supports the features (checked just above).
                #[cfg(target_arch = "x86_64")]
                $crate::simd::Isa::Avx512 => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                $crate::simd::Isa::Avx2 => unsafe { avx2($($arg),*) },
                _ => imp($($arg),*),
            }
        }
    };
}
