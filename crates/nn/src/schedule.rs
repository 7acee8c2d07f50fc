//! Learning-rate schedules over a run of `total_steps` optimizer steps.

use std::f64::consts::PI;

/// The shape of the learning rate over training (without warm-up; see [`LrSchedule`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Schedule {
    #[default]
    Constant,
    /// Multiply by `gamma` at each milestone, given as a fraction of the total steps.
    MultiStep { milestones: Vec<f32>, gamma: f32 },
    /// Cosine annealing from the base rate to `min_lr`, reached at `step == total_steps`
    /// (as `torch.optim.lr_scheduler.CosineAnnealingLR` with T_max = total).
    Cosine { min_lr: f32 },
}

impl Schedule {
    /// Milestones at 60% and 80% of training, γ = 0.1.
    pub fn multi_step() -> Schedule {
        Schedule::MultiStep {
            milestones: vec![0.6, 0.8],
            gamma: 0.1,
        }
    }

    /// Learning rate for 0-based `step` of `total_steps`.
    pub fn lr(&self, base_lr: f32, step: usize, total_steps: usize) -> f32 {
        match self {
            Schedule::Constant => base_lr,
            Schedule::MultiStep { milestones, gamma } => {
                // Rounded in f64 so 0.6 (0.6000000238 as f32) of 100 steps is step 60.
                let passed = milestones
                    .iter()
                    .filter(|&&f| step as f64 >= (f as f64 * total_steps as f64).round())
                    .count();
                (base_lr as f64 * (*gamma as f64).powi(passed as i32)) as f32
            }
            Schedule::Cosine { min_lr } => {
                let progress = step.min(total_steps) as f64 / total_steps.max(1) as f64;
                let (base, min) = (base_lr as f64, *min_lr as f64);
                (min + (base - min) * 0.5 * (1.0 + (PI * progress).cos())) as f32
            }
        }
    }
}

/// A schedule with an optional linear warm-up: during the first `warmup_steps` steps the
/// schedule's rate is scaled by (step + 1) / warmup_steps, so step 0 already moves.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LrSchedule {
    pub schedule: Schedule,
    pub warmup_steps: usize,
}

impl LrSchedule {
    pub fn new(schedule: Schedule, warmup_steps: usize) -> LrSchedule {
        LrSchedule {
            schedule,
            warmup_steps,
        }
    }

    pub fn lr(&self, base_lr: f32, step: usize, total_steps: usize) -> f32 {
        let lr = self.schedule.lr(base_lr, step, total_steps);
        if step < self.warmup_steps {
            (lr as f64 * (step + 1) as f64 / self.warmup_steps as f64) as f32
        } else {
            lr
        }
    }
}
