// The torso's pose and twist columns (bindings 0, 1 of the observe and reward kernels).
@group(0) @binding(0) var<storage, read> bq: array<f32>;
@group(0) @binding(1) var<storage, read> bqd: array<f32>;

fn torso_of_env(e: u32) -> Torso {
    let b = e * p.nb;
    let x = vec3<f32>(bq[7u * b], bq[7u * b + 1u], bq[7u * b + 2u]);
    let q = vec4<f32>(bq[7u * b + 3u], bq[7u * b + 4u], bq[7u * b + 5u], bq[7u * b + 6u]);
    let w = vec3<f32>(bqd[6u * b], bqd[6u * b + 1u], bqd[6u * b + 2u]);
    let vo = vec3<f32>(bqd[6u * b + 3u], bqd[6u * b + 4u], bqd[6u * b + 5u]);
    return torso_of(x, q, w, vo);
}

