// Reverse G2P with atomics (Scatter::Atomic): each particle adds its v_bar_i contributions into
// the grid adjoint directly; nothing is kept for a gather.
fn add_vbar(i: u32, v: f32) {
    ADD(gvbar)
}

fn keep_adjoint(li: u32, vpbar: vec3<f32>, cbar: M3) {}
