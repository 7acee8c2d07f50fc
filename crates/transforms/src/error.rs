use thiserror::Error;

/// Everything that can go wrong when asking for a Winograd transform.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TransformError {
    #[error("output tile size m must be at least 1 (got {0})")]
    OutputSize(usize),
    #[error("kernel size r must be at least 2 (got {0})")]
    KernelSize(usize),
    #[error("F({m},{r}) needs exactly t = m + r - 1 = {expected} interpolation points, got {got}: {points}")]
    PointCount {
        m: usize,
        r: usize,
        expected: usize,
        got: usize,
        points: String,
    },
    #[error("interpolation point {0} is given more than once; all points must be distinct")]
    RepeatedPoint(String),
    #[error("cannot read '{0}' as an interpolation point: use an integer, a fraction like -3/2, a decimal like 0.5, or 'inf'")]
    BadPoint(String),
    #[error("cannot read '{0}' as a scaling value: use an integer, a fraction or a decimal")]
    BadScalar(String),
    #[error("scaling {name} has {got} values but there are {expected} points")]
    ScalingLength {
        name: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("scaling {name} has a zero entry at position {index}; diagonal scalings must be non-zero")]
    ZeroScaling { name: &'static str, index: usize },
    #[error("point set '{name}' does not define F({m},{r}): {why}")]
    UnknownSet {
        name: String,
        m: usize,
        r: usize,
        why: String,
    },
    #[error("{0}")]
    NotExact(Box<Inexact>),
}

/// Where a transform triple fails to be a correlation.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error(
    "the transforms built from points [{points}] with Sy [{sy}], Sx [{sx}], Sw [{sw}] do not compute a \
     correlation (coefficient of g[{k}]*d[{l}] in y[{i}] is {got}, expected {expected}); \
     the scalings must satisfy Sy*Sx*Sw = 1 element-wise"
)]
pub struct Inexact {
    pub points: String,
    pub sy: String,
    pub sx: String,
    pub sw: String,
    pub i: usize,
    pub k: usize,
    pub l: usize,
    pub got: String,
    pub expected: String,
}
