// soft_jumper.observe forward, two passes: observe_head, one invocation per env (phases, loss,
// com_q, com_qd: sums over the env's particles); observe_body, one per (env, j < 6P + A)
// (0.1 q, 0.1 q̇, the actions).
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> qd: array<f32>;
@group(0) @binding(2) var<storage, read> time: array<f32>;
@group(0) @binding(3) var<storage, read> act: array<f32>;
@group(0) @binding(4) var<storage, read_write> obs: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(64)
fn observe_head(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let o = e * p.no;
    var offs = PHASE_OFFSET;
    for (var k = 0u; k < 8u; k++) {
        obs[o + k] = sin(5.0 * time[e] + offs[k]);
    }
    let cq = mean3_q(e);
    let cqd = mean3_qd(e);
    obs[o + LOSS] = cqd.z * sign(cqd.z) + cqd.y * sign(cqd.y) - cqd.x;
    for (var c = 0u; c < 3u; c++) {
        obs[o + COM_Q + c] = cq[c];
        obs[o + COM_QD + c] = cqd[c];
    }
}

@compute @workgroup_size(64)
fn observe_body(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let w = 6u * p.np + p.na;
    let e = i / w;
    let j = i % w;
    var v: f32;
    if (j < 3u * p.np) {
        v = 0.1 * q[3u * p.np * e + j];
    } else if (j < 6u * p.np) {
        v = 0.1 * qd[3u * p.np * e + j - 3u * p.np];
    } else {
        v = act[p.na * e + j - 6u * p.np];
    }
    obs[e * p.no + PARTICLES + j] = v;
}
