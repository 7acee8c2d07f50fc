use crate::export::ExportError;
use crate::layer::{path, BufferVisitor, Layer, Mode, ParamVisitor};
use crate::tensor::Tensor;

/// Layers applied one after another.
pub struct Sequential {
    pub layers: Vec<(String, Box<dyn Layer>)>,
}

impl Sequential {
    pub fn new() -> Self {
        Sequential { layers: Vec::new() }
    }

    pub fn push(mut self, name: &str, layer: impl Layer + 'static) -> Self {
        self.layers.push((name.to_string(), Box::new(layer)));
        self
    }

    pub fn push_boxed(&mut self, name: &str, layer: Box<dyn Layer>) {
        self.layers.push((name.to_string(), layer));
    }
}

impl Default for Sequential {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer for Sequential {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor {
        let mut iter = self.layers.iter_mut();
        let Some((_, first)) = iter.next() else {
            return x.clone();
        };
        let mut y = first.forward(x, mode);
        for (_, l) in iter {
            y = l.forward(&y, mode);
        }
        y
    }

    fn backward(&mut self, grad: &Tensor) -> Tensor {
        let mut iter = self.layers.iter_mut().rev();
        let Some((_, last)) = iter.next() else {
            return grad.clone();
        };
        let mut g = last.backward(grad);
        for (_, l) in iter {
            g = l.backward(&g);
        }
        g
    }

    fn visit_params(&mut self, prefix: &str, f: ParamVisitor) {
        for (name, l) in &mut self.layers {
            l.visit_params(&path(prefix, name), f);
        }
    }

    fn visit_buffers(&mut self, prefix: &str, f: BufferVisitor) {
        for (name, l) in &mut self.layers {
            l.visit_buffers(&path(prefix, name), f);
        }
    }

    fn describe(&self) -> String {
        format!("Sequential({})", self.layers.len())
    }

    fn export(&mut self) -> Result<winq_ir::Op, ExportError> {
        let ops = self
            .layers
            .iter_mut()
            .map(|(_, l)| l.export())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(winq_ir::Op::Seq { ops })
    }

    fn children(&self) -> Vec<(String, &dyn Layer)> {
        self.layers
            .iter()
            .map(|(n, l)| (n.clone(), l.as_ref() as &dyn Layer))
            .collect()
    }
}

/// y = body(x) + shortcut(x) (identity shortcut when None). The add stays FP32.
pub struct Residual {
    pub body: Sequential,
    pub shortcut: Option<Sequential>,
}

impl Layer for Residual {
    fn forward(&mut self, x: &Tensor, mode: Mode) -> Tensor {
        let mut y = self.body.forward(x, mode);
        match &mut self.shortcut {
            Some(s) => {
                let sc = s.forward(x, mode);
                assert_eq!(sc.shape, y.shape, "residual shapes differ");
                y.data.iter_mut().zip(&sc.data).for_each(|(a, b)| *a += b);
            }
            None => {
                assert_eq!(x.shape, y.shape, "identity residual needs equal shapes");
                y.data.iter_mut().zip(&x.data).for_each(|(a, b)| *a += b);
            }
        }
        y
    }

    fn backward(&mut self, grad: &Tensor) -> Tensor {
        let mut gx = self.body.backward(grad);
        let gs = match &mut self.shortcut {
            Some(s) => s.backward(grad),
            None => grad.clone(),
        };
        gx.data.iter_mut().zip(&gs.data).for_each(|(a, b)| *a += b);
        gx
    }

    fn visit_params(&mut self, prefix: &str, f: ParamVisitor) {
        self.body.visit_params(prefix, f);
        if let Some(s) = &mut self.shortcut {
            s.visit_params(&path(prefix, "shortcut"), f);
        }
    }

    fn visit_buffers(&mut self, prefix: &str, f: BufferVisitor) {
        self.body.visit_buffers(prefix, f);
        if let Some(s) = &mut self.shortcut {
            s.visit_buffers(&path(prefix, "shortcut"), f);
        }
    }

    fn describe(&self) -> String {
        "Residual".into()
    }

    fn export(&mut self) -> Result<winq_ir::Op, ExportError> {
        let body = match self.body.export()? {
            winq_ir::Op::Seq { ops: v } => v,
            other => vec![other],
        };
        let shortcut = match &mut self.shortcut {
            Some(s) => match s.export()? {
                winq_ir::Op::Seq { ops: v } => Some(v),
                other => Some(vec![other]),
            },
            None => None,
        };
        Ok(winq_ir::Op::Residual { body, shortcut })
    }

    fn children(&self) -> Vec<(String, &dyn Layer)> {
        let mut v = self.body.children();
        if let Some(s) = &self.shortcut {
            v.push(("shortcut".into(), s as &dyn Layer));
        }
        v
    }
}
