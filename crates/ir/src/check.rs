//! The one validity check of a graph: every operation's parameters are consistent (tensor
//! lengths, positive finite scales, odd kernels, supported tiles) and accept what reaches them
//! from an input of a given shape. A graph that passes cannot make the engine panic on inputs
//! of that shape.

use crate::{IrError, Op, QuantConv, QuantWinograd, MAX_TILE};

/// Channels, height and width of one image's activations.
pub type Shape = (usize, usize, usize);

fn bad(why: String) -> IrError {
    IrError::Graph(why)
}

fn len(what: &str, got: usize, want: usize) -> Result<(), IrError> {
    if got != want {
        return Err(bad(format!("{what} has {got} values, expected {want}")));
    }
    Ok(())
}

/// Every value finite: a NaN weight would make the engine answer one class for everything.
fn finite(what: &str, v: &[f32]) -> Result<(), IrError> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(bad(format!("{what} holds a non-finite value ({} at {i})", v[i]))),
        None => Ok(()),
    }
}

fn scale(what: &str, s: f64) -> Result<(), IrError> {
    if !(s > 0.0 && s.is_finite()) {
        return Err(bad(format!("{what}: scale {s} is not positive and finite")));
    }
    Ok(())
}

/// Scales of a tensor split into `groups` equal groups: one for all, or one per group.
fn scales(what: &str, s: &[f64], groups: usize) -> Result<(), IrError> {
    if s.len() != 1 && s.len() != groups {
        return Err(bad(format!("{what}: {} scales, expected 1 or {groups}", s.len())));
    }
    s.iter().try_for_each(|&x| scale(what, x))
}

fn channels(what: &str, c: usize, k: usize) -> Result<(), IrError> {
    if c == 0 || k == 0 {
        return Err(bad(format!("{what}: {c} -> {k} channels")));
    }
    Ok(())
}

fn tile(what: &str, m: usize) -> Result<(), IrError> {
    if !(1..=MAX_TILE).contains(&m) {
        return Err(bad(format!("{what}: unsupported tile m = {m} (1..={MAX_TILE})")));
    }
    Ok(())
}

fn odd(what: &str, r: usize) -> Result<(), IrError> {
    if r.is_multiple_of(2) {
        return Err(bad(format!("{what}: even kernel {r}x{r}")));
    }
    Ok(())
}

impl QuantConv {
    fn check(&self) -> Result<(), IrError> {
        let what = format!("INT8 {}x{} convolution {}->{}", self.r, self.r, self.c, self.k);
        channels(&what, self.c, self.k)?;
        odd(&what, self.r)?;
        len(
            &format!("{what}: weight"),
            self.weight.len(),
            self.k * self.c * self.r * self.r,
        )?;
        scales(&format!("{what}: s_w"), &self.s_w, self.k)?;
        scale(&format!("{what}: s_in"), self.s_in)?;
        scale(&format!("{what}: s_out"), self.s_out)
    }
}

impl QuantWinograd {
    fn check(&self) -> Result<(), IrError> {
        let what = format!("INT8 F{} Winograd {}->{}", self.m, self.c, self.k);
        channels(&what, self.c, self.k)?;
        tile(&what, self.m)?;
        let t = self.t();
        len(&format!("{what}: Aᵀ"), self.at.len(), self.m * t)?;
        len(&format!("{what}: Bᵀ"), self.bt.len(), t * t)?;
        len(&format!("{what}: U"), self.u.len(), t * t * self.k * self.c)?;
        scale(&format!("{what}: s_at"), self.s_at)?;
        scale(&format!("{what}: s_bt"), self.s_bt)?;
        scale(&format!("{what}: s_in"), self.s_in)?;
        scale(&format!("{what}: s_out"), self.s_out)?;
        for (name, s) in [("s_u", &self.s_u), ("s_v", &self.s_v), ("s_m", &self.s_m)] {
            scales(&format!("{what}: {name}"), s, t * t)?;
        }
        Ok(())
    }
}

impl Op {
    /// The parameters of this operation alone (containers: of everything inside).
    pub fn check_params(&self) -> Result<(), IrError> {
        match self {
            Op::ConvF32 { c, k, r, weight } => {
                let what = format!("FP32 {r}x{r} convolution {c}->{k}");
                channels(&what, *c, *k)?;
                odd(&what, *r)?;
                len(&format!("{what}: weight"), weight.len(), k * c * r * r)?;
                finite(&format!("{what}: weight"), weight)
            }
            Op::WinogradF32 { c, k, m, at, bt, u } => {
                let what = format!("FP32 F{m} Winograd {c}->{k}");
                channels(&what, *c, *k)?;
                tile(&what, *m)?;
                let t = m + 2;
                len(&format!("{what}: Aᵀ"), at.len(), m * t)?;
                len(&format!("{what}: Bᵀ"), bt.len(), t * t)?;
                len(&format!("{what}: U"), u.len(), t * t * k * c)?;
                for (name, v) in [("Aᵀ", at), ("Bᵀ", bt), ("U", u)] {
                    finite(&format!("{what}: {name}"), v)?;
                }
                Ok(())
            }
            Op::ConvI8(q) => q.check(),
            Op::WinogradI8(q) => q.check(),
            Op::BatchNorm { c, mean, scale, bias } => {
                for (name, v) in [("mean", mean), ("scale", scale), ("bias", bias)] {
                    len(&format!("BatchNorm({c}) {name}"), v.len(), *c)?;
                    finite(&format!("BatchNorm({c}) {name}"), v)?;
                }
                Ok(())
            }
            Op::Linear {
                inputs,
                outputs,
                weight,
                bias,
            } => {
                let what = format!("Linear({inputs} -> {outputs})");
                channels(&what, *inputs, *outputs)?;
                len(&format!("{what}: weight"), weight.len(), inputs * outputs)?;
                len(&format!("{what}: bias"), bias.len(), *outputs)?;
                finite(&format!("{what}: weight"), weight)?;
                finite(&format!("{what}: bias"), bias)
            }
            Op::Relu | Op::MaxPool2 | Op::GlobalAvgPool => Ok(()),
            Op::Seq { .. } | Op::Residual { .. } => self.children().iter().try_for_each(|o| o.check_params()),
        }
    }

    /// Checks the graph from an input of shape (C, H, W) and returns its output shape: every
    /// operation's parameters, and that each accepts what reaches it (channel counts, BatchNorm
    /// lengths, classifier inputs, maps large enough to pool).
    pub fn output_shape(&self, (c, h, w): Shape) -> Result<Shape, IrError> {
        if c == 0 || h == 0 || w == 0 {
            return Err(bad(format!("empty activations {c}x{h}x{w} reach an operation")));
        }
        if !matches!(self, Op::Seq { .. } | Op::Residual { .. }) {
            self.check_params()?;
        }
        let conv = |name: String, ci: usize, k: usize| {
            if ci != c {
                return Err(bad(format!("{name}: expects {ci} input channels, gets {c}")));
            }
            Ok((k, h, w))
        };
        match self {
            Op::ConvF32 { c: ci, k, r, .. } => conv(format!("FP32 {r}x{r} convolution"), *ci, *k),
            Op::WinogradF32 { c: ci, k, m, .. } => conv(format!("FP32 F{m} Winograd"), *ci, *k),
            Op::ConvI8(q) => conv(format!("INT8 {}x{} convolution", q.r, q.r), q.c, q.k),
            Op::WinogradI8(q) => conv(format!("INT8 F{} Winograd", q.m), q.c, q.k),
            Op::BatchNorm { c: ci, .. } => conv("BatchNorm".into(), *ci, *ci),
            Op::Relu => Ok((c, h, w)),
            Op::MaxPool2 if h >= 2 && w >= 2 => Ok((c, h / 2, w / 2)),
            Op::MaxPool2 => Err(bad(format!("2x2 max-pool of a {h}x{w} map"))),
            Op::GlobalAvgPool => Ok((c, 1, 1)),
            Op::Linear { inputs, outputs, .. } => {
                if *inputs != c * h * w {
                    return Err(bad(format!("Linear({inputs} -> {outputs}) gets {c}x{h}x{w}")));
                }
                Ok((*outputs, 1, 1))
            }
            Op::Seq { ops } => ops.iter().try_fold((c, h, w), |s, o| o.output_shape(s)),
            Op::Residual { body, shortcut } => {
                let run = |ops: &[Op]| ops.iter().try_fold((c, h, w), |s, o| o.output_shape(s));
                let b = run(body)?;
                let sc = shortcut.as_deref().map_or(Ok((c, h, w)), run)?;
                if b != sc {
                    return Err(bad(format!("residual block: body gives {b:?}, shortcut {sc:?}")));
                }
                Ok(b)
            }
        }
    }
}
