// The shape columns of every articulation contact kernel (bindings 0-4, the same in each) and
// their accessors.
@group(0) @binding(0) var<storage, read> shape_size: array<f32>;
@group(0) @binding(1) var<storage, read> shape_pose: array<f32>;
@group(0) @binding(2) var<storage, read> shape_contact: array<f32>;
@group(0) @binding(3) var<storage, read> shape_body: array<u32>;
@group(0) @binding(4) var<storage, read> shape_kind: array<u32>;

const SHAPE_SPHERE: u32 = 0u;
const SHAPE_CAPSULE: u32 = 1u;
const SHAPE_BOX: u32 = 2u;

fn size_of(s: u32) -> vec3<f32> {
    return vec3<f32>(shape_size[3u * s], shape_size[3u * s + 1u], shape_size[3u * s + 2u]);
}

fn contact_of(s: u32) -> vec4<f32> {
    return vec4<f32>(shape_contact[4u * s], shape_contact[4u * s + 1u], shape_contact[4u * s + 2u], shape_contact[4u * s + 3u]);
}

// The shape's position and rotation in its body's frame.
fn pose_position(s: u32) -> vec3<f32> {
    return vec3<f32>(shape_pose[7u * s], shape_pose[7u * s + 1u], shape_pose[7u * s + 2u]);
}

fn pose_rotation(s: u32) -> M3 {
    return quat_to_mat(vec4<f32>(shape_pose[7u * s + 3u], shape_pose[7u * s + 4u], shape_pose[7u * s + 5u], shape_pose[7u * s + 6u]));
}

