// particles.gravity forward: f_k += m_k g_env, one invocation per particle (gravity is a [1, 3]
// model column per env). No adjoint pass: the force depends on no state or control.
@group(0) @binding(0) var<storage, read_write> f: array<f32>;
@group(0) @binding(1) var<storage, read> mass: array<f32>;
@group(0) @binding(2) var<storage, read> gravity: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn gravity_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.n) {
        return;
    }
    let e = k / p.np;
    for (var c = 0u; c < 3u; c++) {
        f[3u * k + c] = f[3u * k + c] + mass[k] * gravity[3u * e + c];
    }
}
