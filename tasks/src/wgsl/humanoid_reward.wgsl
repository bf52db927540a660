// humanoid.reward r = v_x + 0.1 up_y + heading + H(height) − 0.002 Σ a², one invocation per env.
@group(0) @binding(2) var<storage, read> act: array<f32>;
@group(0) @binding(3) var<storage, read_write> reward: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<uniform> tp: Task;

@compute @workgroup_size(64)
fn reward_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let t = torso_of_env(e);
    var a2 = 0.0;
    for (var i = 0u; i < 21u; i++) {
        let a = act[21u * e + i];
        a2 = a2 + a * a;
    }
    reward[e] = t.v.x + 0.1 * t.rot.r1.y + heading(t, p.target_x) + height_reward(t.p.y).x - tp.action_penalty * a2;
}
