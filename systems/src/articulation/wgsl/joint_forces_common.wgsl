// articulation.joint_forces, forward and adjoint: the bindings both share (gpu.rs's `head`) and
// the one dof of an invocation's body.
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> topo: array<u32>;
@group(0) @binding(2) var<storage, read> actuator: array<u32>;
@group(0) @binding(3) var<storage, read> gain: array<f32>;
@group(0) @binding(4) var<storage, read> limit: array<f32>;
@group(0) @binding(5) var<storage, read> damping: array<f32>;
@group(0) @binding(6) var<storage, read> gains: array<f32>;
@group(0) @binding(7) var<storage, read> jq: array<f32>;

// Body b's env and the indices of its joint coordinate and rate; on = false for an index past
// the bodies or a joint that is not revolute or prismatic (no single dof to force).
struct JointDof {
    on: bool,
    e: u32,
    qi: u32,
    di: u32,
}

fn joint_dof(b: u32) -> JointDof {
    if (b >= p.n) {
        return JointDof(false, 0u, 0u, 0u);
    }
    let kind = topo[4u * b + 1u];
    if (kind != KIND_REVOLUTE && kind != KIND_PRISMATIC) {
        return JointDof(false, 0u, 0u, 0u);
    }
    let e = b / p.nb;
    return JointDof(true, e, e * p.nq + topo[4u * b + 2u], e * p.nd + topo[4u * b + 3u]);
}
