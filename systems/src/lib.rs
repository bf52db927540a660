//! diffsim-systems: the differentiable systems, one module per system, each with its forward and
//! its adjoint in the same file and the equations cited. Systems are generic over the scalar
//! (`diffsim_engine::Real`) so the code that runs in f32 is the code tested in f64 and duals.

pub mod articulation;
pub mod fem;
pub mod mpm;
pub mod particles;
