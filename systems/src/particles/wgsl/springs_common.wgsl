// particles.springs: one spring evaluated at a state (see springs.rs), shared by all spring
// kernels. Each kernel declares q, qd (the particle columns), sp (spring_params: rest, ke, kd)
// and si (spring_indices, per-env particle indices), and binds them before this file.
struct Spring {
    ok: bool,
    gi: u32,
    gj: u32,
    n: vec3<f32>,
    l: f32,
    v: vec3<f32>,
    s: f32,
}

fn load_q(i: u32) -> vec3<f32> {
    return vec3<f32>(q[3u * i], q[3u * i + 1u], q[3u * i + 2u]);
}
fn load_qd(i: u32) -> vec3<f32> {
    return vec3<f32>(qd[3u * i], qd[3u * i + 1u], qd[3u * i + 2u]);
}
// Written out rather than dot(): the CPU's order of operations.
fn dot3(a: vec3<f32>, b: vec3<f32>) -> f32 {
    return a.x * b.x + a.y * b.y + a.z * b.z;
}

// Spring k (global: env * ns + local) of env e. Zero length (l < 1e-9) exerts no force.
fn eval_spring(k: u32, e: u32) -> Spring {
    let gi = e * p.np + si[2u * k];
    let gj = e * p.np + si[2u * k + 1u];
    let d = load_q(gj) - load_q(gi);
    let l = sqrt(dot3(d, d));
    if (l < 1e-9) {
        return Spring(false, gi, gj, vec3<f32>(0.0), l, vec3<f32>(0.0), 0.0);
    }
    let n = d * (1.0 / l);
    let v = load_qd(gj) - load_qd(gi);
    let s = sp[3u * k + 1u] * (l - sp[3u * k]) + sp[3u * k + 2u] * dot3(v, n);
    return Spring(true, gi, gj, n, l, v, s);
}

// The adjoint of one spring's force F = s n (F on i, -F on j) with af the adjoint of f:
// returns (d̄, v̄) of d = x_j - x_i and v = v_j - v_i.
struct SpringAdj {
    ad: vec3<f32>,
    av: vec3<f32>,
}

fn spring_adjoint(k: u32, sp_: Spring, af_i: vec3<f32>, af_j: vec3<f32>) -> SpringAdj {
    let ke = sp[3u * k + 1u];
    let kd = sp[3u * k + 2u];
    let adj_force = af_i - af_j;
    let adj_s = dot3(adj_force, sp_.n);
    let adj_n = adj_force * sp_.s + sp_.v * (kd * adj_s);
    let adj_l = ke * adj_s;
    let adj_v = sp_.n * (kd * adj_s);
    let nn = dot3(sp_.n, adj_n);
    let tangential = (adj_n - sp_.n * nn) * (1.0 / sp_.l);
    return SpringAdj(sp_.n * adj_l + tangential, adj_v);
}
