// particles.springs adjoint, deterministic: one invocation per particle gathers x̄, v̄ from its
// springs (CSR as in springs_gather.wgsl), in increasing k. f̄ passes through (f accumulated).
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> qd: array<f32>;
@group(0) @binding(2) var<storage, read> sp: array<f32>;
@group(0) @binding(3) var<storage, read> si: array<u32>;
@group(0) @binding(4) var<storage, read> af: array<f32>;
@group(0) @binding(5) var<storage, read_write> aq: array<f32>;
@group(0) @binding(6) var<storage, read_write> aqd: array<f32>;
@group(0) @binding(7) var<storage, read> adj_off: array<u32>;
@group(0) @binding(8) var<storage, read> adj: array<u32>;
@group(0) @binding(9) var<uniform> p: Params;

fn load_af(i: u32) -> vec3<f32> {
    return vec3<f32>(af[3u * i], af[3u * i + 1u], af[3u * i + 2u]);
}

@compute @workgroup_size(64)
fn springs_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = linear_index(gid, nwg);
    if (g >= p.n) {
        return;
    }
    let e = g / p.np;
    var acc_q = vec3<f32>(aq[3u * g], aq[3u * g + 1u], aq[3u * g + 2u]);
    var acc_qd = vec3<f32>(aqd[3u * g], aqd[3u * g + 1u], aqd[3u * g + 2u]);
    for (var a = adj_off[g]; a < adj_off[g + 1u]; a++) {
        let ent = adj[a];
        let k = ent >> 1u;
        let s = eval_spring(k, e);
        if (!s.ok) {
            continue;
        }
        let r = spring_adjoint(k, s, load_af(s.gi), load_af(s.gj));
        if ((ent & 1u) == 1u) {
            acc_q = acc_q + r.ad;
            acc_qd = acc_qd + r.av;
        } else {
            acc_q = acc_q + (-r.ad);
            acc_qd = acc_qd + (-r.av);
        }
    }
    aq[3u * g] = acc_q.x;
    aq[3u * g + 1u] = acc_q.y;
    aq[3u * g + 2u] = acc_q.z;
    aqd[3u * g] = acc_qd.x;
    aqd[3u * g + 1u] = acc_qd.y;
    aqd[3u * g + 2u] = acc_qd.z;
}
