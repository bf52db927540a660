// particles.springs adjoint with atomics: one invocation per spring scatters ±d̄, ±v̄ into the
// adjoints of both endpoints (see springs_atomic.wgsl for ATOMIC_T / ADD).
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> qd: array<f32>;
@group(0) @binding(2) var<storage, read> sp: array<f32>;
@group(0) @binding(3) var<storage, read> si: array<u32>;
@group(0) @binding(4) var<storage, read> af: array<f32>;
@group(0) @binding(5) var<storage, read_write> aq: array<atomic<ATOMIC_T>>;
@group(0) @binding(6) var<storage, read_write> aqd: array<atomic<ATOMIC_T>>;
@group(0) @binding(7) var<uniform> p: Params;

fn add_aq(i: u32, v: f32) {
    ADD(aq)
}
fn add_aqd(i: u32, v: f32) {
    ADD(aqd)
}
fn load_af(i: u32) -> vec3<f32> {
    return vec3<f32>(af[3u * i], af[3u * i + 1u], af[3u * i + 2u]);
}

@compute @workgroup_size(64)
fn springs_adjoint_atomic(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.n) {
        return;
    }
    let s = eval_spring(k, k / p.ns);
    if (!s.ok) {
        return;
    }
    let r = spring_adjoint(k, s, load_af(s.gi), load_af(s.gj));
    for (var c = 0u; c < 3u; c++) {
        add_aq(3u * s.gj + c, r.ad[c]);
        add_aq(3u * s.gi + c, -r.ad[c]);
        add_aqd(3u * s.gj + c, r.av[c]);
        add_aqd(3u * s.gi + c, -r.av[c]);
    }
}
