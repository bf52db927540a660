// particles.springs forward with atomics: one invocation per spring adds +F into particle i and
// -F into particle j. ATOMIC_T and the body of add_f are filled in by springs.rs: native
// atomicAdd on atomic<f32> where the device has SHADER_FLOAT32_ATOMIC, else a compare-exchange
// loop on the u32 bits of the f32.
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> qd: array<f32>;
@group(0) @binding(2) var<storage, read_write> f: array<atomic<ATOMIC_T>>;
@group(0) @binding(3) var<storage, read> sp: array<f32>;
@group(0) @binding(4) var<storage, read> si: array<u32>;
@group(0) @binding(5) var<uniform> p: Params;

fn add_f(i: u32, v: f32) {
    ADD(f)
}

@compute @workgroup_size(64)
fn springs_forward_atomic(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.n) {
        return;
    }
    let s = eval_spring(k, k / p.ns);
    if (!s.ok) {
        return;
    }
    let force = s.n * s.s;
    for (var c = 0u; c < 3u; c++) {
        add_f(3u * s.gi + c, force[c]);
        add_f(3u * s.gj + c, -force[c]);
    }
}
