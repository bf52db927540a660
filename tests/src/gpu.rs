//! Shared pieces of the CPU/GPU parity tests (`tests/tests/gpu_*.rs`): the rule for a missing
//! adapter, the relative error with a column-scale floor, and one system run on both sides from
//! the same inputs.

use std::sync::Arc;

use diffsim_engine::{Columns, EngineError, Gpu, GpuSim, ModelView, StepCx, System};

/// The GPU, or `None` (after saying so) when no adapter exists at all. With
/// `DIFFSIM_REQUIRE_GPU=1` (CI, where lavapipe is installed) a missing adapter fails instead, so
/// a broken driver install cannot turn the suite green by skipping; any other GPU failure fails.
pub fn gpu_or_skip(test: &str) -> Option<Arc<Gpu>> {
    match Gpu::new() {
        Ok(g) => Some(Arc::new(g)),
        Err(e) if std::env::var("DIFFSIM_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("{test}: DIFFSIM_REQUIRE_GPU=1 but no GPU device: {e}")
        }
        Err(e) if e.to_string().contains("no wgpu adapter found") => {
            eprintln!("SKIPPED {test}: no wgpu adapter on this machine: {e}");
            None
        }
        Err(e) => panic!("{test}: a wgpu adapter exists but the device failed: {e}"),
    }
}

/// max |a − b| / max(|b|, floor · max|b|): relative, with values near zero compared against the
/// column's scale (sums that cancel have no meaningful relative error of their own).
pub fn max_rel_err(a: &[f32], b: &[f32], floor: f64) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, &x| m.max(f64::from(x).abs()));
    let floor = (floor * scale).max(1e-30);
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).abs() / f64::from(y).abs().max(floor))
        .fold(0.0, f64::max)
}

/// The worst column's `max_rel_err` and its name.
pub fn worst_column(gpu: &Columns<f32>, cpu: &Columns<f32>, floor: f64) -> (f64, String) {
    gpu.columns()
        .zip(cpu.columns())
        .map(|((spec, g), (_, c))| (max_rel_err(g, c, floor), spec.name.clone()))
        .fold((0.0, String::new()), |a, b| if b.0 > a.0 { b } else { a })
}

/// One system's outputs on both sides, each `[gpu, cpu]`.
pub struct SystemRun {
    /// The state after the forward.
    pub forward: [Columns<f32>; 2],
    /// State and control adjoints after the adjoint (seeded with the same `adj`, `adj_c`).
    pub adjoint: [Columns<f32>; 2],
    pub adjoint_control: [Columns<f32>; 2],
}

/// Runs system `i` of `g` (the GPU mirror of `sys`) and `sys` itself from `state`: the forward,
/// then the adjoint seeded with `adj`/`adj_c` at `state` as the pre-state. The GPU's control must
/// already hold `control`.
#[allow(clippy::too_many_arguments)]
pub fn run_system(
    g: &mut GpuSim,
    i: usize,
    sys: &dyn System<f32>,
    cx: &StepCx,
    model: &ModelView,
    control: &Columns<f32>,
    state: &Columns<f32>,
    adj: &Columns<f32>,
    adj_c: &Columns<f32>,
) -> Result<SystemRun, EngineError> {
    let mut cpu = state.clone();
    sys.forward(cx, model, &control.view_all(), &mut cpu.view_all_mut());
    g.write_state(state)?;
    g.forward_system(i)?;
    let got = g.read_state()?;
    let (mut a, mut ac) = (adj.clone(), adj_c.clone());
    sys.adjoint(cx, model, &control.view_all(), &state.view_all(), &mut a.view_all_mut(), &mut ac.view_all_mut());
    g.write_adjoints(adj, adj_c)?;
    g.adjoint_system(i, state)?;
    let (ga, gac) = g.read_adjoints()?;
    Ok(SystemRun { forward: [got, cpu], adjoint: [ga, a], adjoint_control: [gac, ac] })
}
