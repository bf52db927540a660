//! Conversions between packed mirror columns and tch tensors, and the vector-Jacobian product of a
//! network, used to chain the simulator adjoint with libtorch autograd.
//!
//! tch has no `grad_outputs` argument, so a VJP gᵀ ∂y/∂x is taken as the gradient of the scalar
//! (y · g).sum() with g held constant.

use diffsim_engine::{Columns, EngineError};
use tch::{Kind, Tensor};

/// A state or control column as a `[num_envs, count * width]` f32 tensor.
pub fn column_to_tensor(c: &Columns<f32>, name: &str) -> Result<Tensor, EngineError> {
    let data = c.get(name)?;
    let n = c.num_envs();
    Ok(Tensor::from_slice(data).reshape([n as i64, (data.len() / n.max(1)) as i64]))
}

/// Writes a `[num_envs, count * width]` tensor into a column, checking its size.
pub fn tensor_to_column(t: &Tensor, c: &mut Columns<f32>, name: &str) -> Result<(), EngineError> {
    let t = t.detach().to_kind(Kind::Float).contiguous().view([-1]);
    let v: Vec<f32> = Vec::<f32>::try_from(&t).map_err(|e| EngineError::Tape(format!("tensor -> `{name}`: {e}")))?;
    c.set(name, &v)
}

/// gᵀ ∂f(x)/∂x and gᵀ ∂f(x)/∂θ for the parameters `params`, without touching `.grad()`.
pub fn vjp(f: impl Fn(&Tensor) -> Tensor, x: &Tensor, g: &Tensor, params: &[Tensor]) -> (Tensor, Vec<Tensor>) {
    let x = x.detach().set_requires_grad(true);
    let y = f(&x);
    let s = (&y * g.detach()).sum(Kind::Float);
    let mut inputs: Vec<&Tensor> = vec![&x];
    inputs.extend(params.iter());
    let mut grads = Tensor::run_backward(&[&s], &inputs, false, false);
    let gx = grads.remove(0);
    (gx, grads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use diffsim_engine::{ColumnSpec, Layout};
    use tch::nn::{self, Module};

    #[test]
    fn column_roundtrip_through_tensor() {
        let mut c: Columns<f32> = Columns::zeros(Layout::new(vec![ColumnSpec::new("obs", 2, 3)]), 4);
        c.set("obs", &(0..24).map(|i| i as f32).collect::<Vec<_>>()).unwrap();
        let t = column_to_tensor(&c, "obs").unwrap();
        assert_eq!(t.size(), vec![4, 6]);
        let mut d = c.zeros_like::<f32>();
        tensor_to_column(&(t * 2.0), &mut d, "obs").unwrap();
        assert_eq!(d.get("obs").unwrap()[23], 46.0);
        let err = tensor_to_column(&Tensor::zeros([3], (Kind::Float, tch::Device::Cpu)), &mut d, "obs").unwrap_err();
        assert!(err.to_string().contains("obs"));
    }

    #[test]
    fn vjp_matches_central_differences() {
        tch::set_num_threads(1);
        tch::manual_seed(0);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = nn::seq()
            .add(nn::linear(vs.root() / "l1", 5, 16, Default::default()))
            .add_fn(|x| x.tanh())
            .add(nn::linear(vs.root() / "l2", 16, 3, Default::default()));
        let x = Tensor::randn([2, 5], (Kind::Double, tch::Device::Cpu));
        let g = Tensor::randn([2, 3], (Kind::Double, tch::Device::Cpu));
        let dir = Tensor::randn([2, 5], (Kind::Double, tch::Device::Cpu));
        let f = |x: &Tensor| net.forward(&x.to_kind(Kind::Float)).to_kind(Kind::Double);
        let (gx, gp) = vjp(f, &x, &g, &vs.trainable_variables());
        assert_eq!(gp.len(), 4);
        let h = 1e-2;
        let lp = (f(&(&x + &dir * h)) * &g).sum(Kind::Double).double_value(&[]);
        let lm = (f(&(&x - &dir * h)) * &g).sum(Kind::Double).double_value(&[]);
        let fd = (lp - lm) / (2.0 * h);
        let ad = (gx * dir).sum(Kind::Double).double_value(&[]);
        assert!((fd - ad).abs() <= 1e-3 * ad.abs().max(1e-3), "fd {fd} vs adjoint {ad}");
    }
}
