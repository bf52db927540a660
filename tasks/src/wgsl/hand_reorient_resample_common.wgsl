// hand_reorient.resample_goal (hand_reorient.rs), shared by its forward and adjoint: the
// success test and the env's goal stream, SplitMix64 (vec_env.rs `TaskRng`) seeded as
// hand_reorient.rs `goal_stream`, emulated in u32 pairs since WGSL has no u64.
const CAP: f32 = 0.999;

struct U64 {
    hi: u32,
    lo: u32,
}

fn add64(a: U64, b: U64) -> U64 {
    let lo = a.lo + b.lo;
    return U64(a.hi + b.hi + select(0u, 1u, lo < a.lo), lo);
}

fn xor64(a: U64, b: U64) -> U64 {
    return U64(a.hi ^ b.hi, a.lo ^ b.lo);
}

// a >> n for 0 < n < 32.
fn shr64(a: U64, n: u32) -> U64 {
    return U64(a.hi >> n, (a.lo >> n) | (a.hi << (32u - n)));
}

// The full 64-bit product of two u32, from 16-bit halves.
fn mul32(a: u32, b: u32) -> U64 {
    let al = a & 0xffffu;
    let ah = a >> 16u;
    let bl = b & 0xffffu;
    let bh = b >> 16u;
    let p0 = al * bl;
    let p1 = al * bh;
    let p2 = ah * bl;
    let p3 = ah * bh;
    let mid = p1 + p2;
    let mid_carry = select(0u, 1u, mid < p1);
    let lo = p0 + (mid << 16u);
    let lo_carry = select(0u, 1u, lo < p0);
    return U64(p3 + (mid >> 16u) + (mid_carry << 16u) + lo_carry, lo);
}

// a · b mod 2^64.
fn mul64(a: U64, b: U64) -> U64 {
    let r = mul32(a.lo, b.lo);
    return U64(r.hi + a.hi * b.lo + a.lo * b.hi, r.lo);
}

// SplitMix64's output function.
fn mix64(z0: U64) -> U64 {
    var z = mul64(xor64(z0, shr64(z0, 30u)), U64(0xBF58476Du, 0x1CE4E5B9u));
    z = mul64(xor64(z, shr64(z, 27u)), U64(0x94D049BBu, 0x133111EBu));
    return xor64(z, shr64(z, 31u));
}

// π/2 · uniform(−1, 1), uniform = −1 + 2 m/2^53 with m the top 53 bits of the next output, times π/2 and
// rounded to f32 (the CPU's `from_f64(0.5 u π)`): m − 2^52 = k is exact in two parts, so only
// the final products round (within an ulp or two of the CPU's single f64 rounding).
fn half_turn(z: U64) -> f32 {
    let m = shr64(z, 11u);
    // k = m − 2^52, |k| ≤ 2^52: hi part (m.hi has 21 bits) and lo part.
    let k_hi = f32(i32(m.hi) - 1048576);
    let k_lo = f32(m.lo >> 8u) * 256.0 + f32(m.lo & 255u);
    let u = k_hi * (1.0 / 1048576.0) + k_lo * (1.0 / 4503599627370496.0);
    return u * 1.5707963267948966;
}

fn rot_dist(e: u32) -> f32 {
    let qd = quat_mul(cube_quat(e), conj(goal_quat(e)));
    let n2 = qd.x * qd.x + qd.y * qd.y + qd.z * qd.z;
    let n = select(0.0, sqrt(n2), n2 > 1e-30);
    return 2.0 * asin_precise(min(n, CAP));
}


// The new goal rotation R_x(π u₀) R_{−z}(π u₁) (hand_reorient.rs `rotation_from`) of env e's
// stream [key, successes].
fn new_goal(key: u32, successes: u32) -> vec4<f32> {
    let golden = U64(0x9E3779B9u, 0x7F4A7C15u);
    var s = xor64(U64(key >> 8u, key << 24u), mul64(U64(0u, successes), golden));
    s = add64(s, golden);
    let ax = half_turn(mix64(s));
    s = add64(s, golden);
    let az = -half_turn(mix64(s));
    return quat_mul(vec4<f32>(sin(ax), 0.0, 0.0, cos(ax)), vec4<f32>(0.0, 0.0, sin(az), cos(az)));
}

// Whether env e's goal is reached (|rot| <= the success tolerance; p.success is the largest f32
// <= it, so the f32 test equals the CPU's f64 one).
fn reached(e: u32) -> bool {
    return abs(rot_dist(e)) <= p.success;
}
