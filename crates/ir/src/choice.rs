//! The one vocabulary of layer choices: how a 3x3 convolution is computed (`Algo`) and in
//! which arithmetic (`Precision`). Every command, file and table spells a choice the same way,
//! `ConvChoice`'s `Display`: "im2row-int8", "F4-flex-int8", "F2-static-fp32". Parsing also
//! takes the short forms of the command line ("int8", "fp32", "static-f4", "flex-f6-int16"),
//! and layer files and run configurations store a choice as {"algo": "F4", "flex": true,
//! "bits": 8} (bits 32 = FP32), which reads back, as does the string form.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Arithmetic of a layer: plain FP32, or fake-quantized to `bits` at every stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Precision {
    Fp32,
    Int(u32),
}

/// Bit-widths a quantized layer may have.
pub const BITS: std::ops::RangeInclusive<u32> = 2..=16;

/// Why a spelling is not a layer choice, a precision, an algorithm or a bit count. Each
/// message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChoiceError {
    #[error("bits must be 2..=16 or 32 (FP32), got {0}")]
    Bits(u32),
    #[error("unknown precision '{0}': use fp32 or int<bits> (2..=16)")]
    Precision(String),
    #[error("unknown algorithm '{0}': use im2row, F2, F4, F6 (or any F<m>)")]
    Algo(String),
    #[error(
        "unknown layer choice '{0}': use im2row-<p>, F<m>-static-<p> or F<m>-flex-<p> with <p> = int<bits> \
         or fp32 (e.g. F4-flex-int8; short: int8, fp32, static-f4, flex-f4)"
    )]
    Choice(String),
}

impl Precision {
    /// From a bit count as layer files write it: 32 is FP32.
    pub fn from_bits(bits: u32) -> Result<Precision, ChoiceError> {
        match bits {
            32 => Ok(Precision::Fp32),
            b if BITS.contains(&b) => Ok(Precision::Int(b)),
            b => Err(ChoiceError::Bits(b)),
        }
    }

    /// The bit count (32 for FP32).
    pub fn bits(self) -> u32 {
        match self {
            Precision::Fp32 => 32,
            Precision::Int(b) => b,
        }
    }

    /// "fp32" or "int8": the lower-case tag names and files use.
    pub fn tag(self) -> String {
        match self {
            Precision::Fp32 => "fp32".into(),
            Precision::Int(b) => format!("int{b}"),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Precision::Fp32 => write!(f, "FP32"),
            Precision::Int(b) => write!(f, "INT{b}"),
        }
    }
}

impl FromStr for Precision {
    type Err = ChoiceError;
    /// "fp32", "int8", "INT4", "32", "8" (case-insensitive).
    fn from_str(s: &str) -> Result<Precision, ChoiceError> {
        let l = s.trim().to_ascii_lowercase();
        let digits = l
            .strip_prefix("int")
            .or_else(|| l.strip_prefix("fp"))
            .unwrap_or(&l);
        match digits.parse::<u32>() {
            Ok(32) if !l.starts_with("int") => Ok(Precision::Fp32),
            Ok(b) if !l.starts_with("fp") => Precision::from_bits(b),
            _ => Err(ChoiceError::Precision(s.to_string())),
        }
    }
}

/// How one 3x3 convolution is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algo {
    Im2row,
    /// Winograd F(m×m, 3×3); `flex` learns the transforms.
    Winograd {
        m: usize,
        flex: bool,
    },
}

impl Algo {
    /// "im2row", or "F4" (the layer-file spelling, without the transform mode).
    pub fn kernel(self) -> String {
        match self {
            Algo::Im2row => "im2row".into(),
            Algo::Winograd { m, .. } => format!("F{m}"),
        }
    }

    /// From the layer-file spelling ("im2row", "F4", "f6") and the transform mode.
    pub fn parse(kernel: &str, flex: bool) -> Result<Algo, ChoiceError> {
        let a = kernel.trim().to_ascii_lowercase();
        if a == "im2row" {
            return Ok(Algo::Im2row);
        }
        match a.strip_prefix('f').and_then(|m| m.parse::<usize>().ok()) {
            Some(m) if m >= 1 => Ok(Algo::Winograd { m, flex }),
            _ => Err(ChoiceError::Algo(kernel.to_string())),
        }
    }
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Algo::Im2row => write!(f, "im2row"),
            Algo::Winograd { m, flex } => write!(f, "F{m} {}", if *flex { "flex" } else { "static" }),
        }
    }
}

/// Algorithm and arithmetic of one 3x3 layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvChoice {
    pub algo: Algo,
    pub precision: Precision,
}

impl ConvChoice {
    pub const IM2ROW_INT8: ConvChoice = ConvChoice {
        algo: Algo::Im2row,
        precision: Precision::Int(8),
    };

    /// The name of the kernel the engine runs for this choice ("F4-int8", "im2row-fp32"):
    /// flex and static transforms deploy the same kernel, so latency tables key on this.
    pub fn kernel_key(&self) -> String {
        format!("{}-{}", self.algo.kernel(), self.precision.tag())
    }
}

impl fmt::Display for ConvChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.algo {
            Algo::Im2row => write!(f, "im2row-{}", self.precision.tag()),
            Algo::Winograd { m, flex } => write!(
                f,
                "F{m}-{}-{}",
                if flex { "flex" } else { "static" },
                self.precision.tag()
            ),
        }
    }
}

impl FromStr for ConvChoice {
    type Err = ChoiceError;
    /// "im2row-int8", "F4-flex-int8", "F2-static-fp32" (case-insensitive, any order of the
    /// parts); short forms: "int8" / "fp32" (im2row), "static-f4" / "flex-f6" (INT8).
    fn from_str(s: &str) -> Result<ConvChoice, ChoiceError> {
        let bad = || ChoiceError::Choice(s.to_string());
        let (mut algo, mut flex, mut precision) = (None, None, None);
        for part in s.trim().to_ascii_lowercase().split('-') {
            match part {
                "static" | "flex" if flex.is_none() => flex = Some(part == "flex"),
                "im2row" if algo.is_none() => algo = Some(Algo::Im2row),
                p if p.starts_with('f')
                    && p[1..].parse::<usize>().is_ok()
                    && p != "fp32"
                    && algo.is_none() =>
                {
                    algo = Some(Algo::parse(p, false)?)
                }
                p if precision.is_none() && (p.starts_with("int") || p.starts_with("fp")) => {
                    precision = Some(p.parse::<Precision>()?)
                }
                _ => return Err(bad()),
            }
        }
        let algo = match (algo.unwrap_or(Algo::Im2row), flex) {
            (Algo::Im2row, Some(_)) => return Err(bad()),
            (Algo::Winograd { m, .. }, f) => Algo::Winograd {
                m,
                flex: f.ok_or_else(bad)?,
            },
            (a, None) => a,
        };
        Ok(ConvChoice {
            algo,
            precision: precision.unwrap_or(Precision::Int(8)),
        })
    }
}

/// A choice as layer files and run configurations store it.
#[derive(Serialize, Deserialize)]
struct Stored {
    algo: String,
    #[serde(default)]
    flex: bool,
    bits: u32,
}

impl Serialize for ConvChoice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Stored {
            algo: self.algo.kernel(),
            flex: matches!(self.algo, Algo::Winograd { flex: true, .. }),
            bits: self.precision.bits(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ConvChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ConvChoice, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Stored(Stored),
            Name(String),
        }
        let err = serde::de::Error::custom;
        match Form::deserialize(d)? {
            Form::Name(s) => s.parse().map_err(err),
            Form::Stored(st) => Ok(ConvChoice {
                algo: Algo::parse(&st.algo, st.flex).map_err(err)?,
                precision: Precision::from_bits(st.bits).map_err(err)?,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(algo: Algo, precision: Precision) -> ConvChoice {
        ConvChoice { algo, precision }
    }

    #[test]
    fn names_round_trip_and_short_forms_parse() {
        let f4 = Algo::Winograd { m: 4, flex: true };
        let s2 = Algo::Winograd { m: 2, flex: false };
        for (choice, name) in [
            (c(Algo::Im2row, Precision::Int(8)), "im2row-int8"),
            (c(f4, Precision::Int(8)), "F4-flex-int8"),
            (c(s2, Precision::Fp32), "F2-static-fp32"),
            (
                c(Algo::Winograd { m: 6, flex: true }, Precision::Int(16)),
                "F6-flex-int16",
            ),
        ] {
            assert_eq!(choice.to_string(), name);
            assert_eq!(name.parse::<ConvChoice>(), Ok(choice));
            let json = serde_json::to_string(&choice).unwrap();
            assert_eq!(
                serde_json::from_str::<ConvChoice>(&json).unwrap(),
                choice,
                "{json}"
            );
            assert_eq!(
                serde_json::from_str::<ConvChoice>(&format!("\"{name}\"")).unwrap(),
                choice
            );
        }
        for (short, want) in [
            ("int8", c(Algo::Im2row, Precision::Int(8))),
            ("fp32", c(Algo::Im2row, Precision::Fp32)),
            ("im2row-int4", c(Algo::Im2row, Precision::Int(4))),
            (
                "static-f4",
                c(Algo::Winograd { m: 4, flex: false }, Precision::Int(8)),
            ),
            (
                "flex-f6-int8",
                c(Algo::Winograd { m: 6, flex: true }, Precision::Int(8)),
            ),
            ("flex-f4-fp32", c(f4, Precision::Fp32)),
            ("f4-FLEX-Int8", c(f4, Precision::Int(8))),
        ] {
            assert_eq!(short.parse::<ConvChoice>(), Ok(want), "{short}");
        }
        assert_eq!(c(f4, Precision::Int(8)).kernel_key(), "F4-int8");
        assert_eq!(
            serde_json::to_string(&c(f4, Precision::Int(8))).unwrap(),
            r#"{"algo":"F4","flex":true,"bits":8}"#
        );
        assert_eq!(
            serde_json::from_str::<ConvChoice>(r#"{"algo":"im2row","bits":32}"#).unwrap(),
            c(Algo::Im2row, Precision::Fp32)
        );
    }

    #[test]
    fn bad_choices_say_what_is_accepted() {
        for bad in [
            "",
            "gemm",
            "F4",
            "F4-int8",
            "flex-im2row",
            "F4-flex-int1",
            "F4-flex-int8-int8",
            "F0-flex",
            "Fx-flex",
        ] {
            let e = bad.parse::<ConvChoice>().unwrap_err().to_string();
            assert!(e.contains("use") || e.contains("bits"), "{bad}: {e}");
        }
        let e = serde_json::from_str::<ConvChoice>(r#"{"algo":"F3x","flex":true,"bits":8}"#).unwrap_err();
        assert!(e.to_string().contains("F3x"), "{e}");
        let e = serde_json::from_str::<ConvChoice>(r#"{"algo":"F4","bits":40}"#).unwrap_err();
        assert!(e.to_string().contains("bits"), "{e}");
    }
}
