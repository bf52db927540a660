// mpm.transfer adjoint, reverse G2P: one invocation per particle (transfer.rs `adjoint`, "Reverse
// G2P"), after the grid was recomputed into gv. Scatters v_bar_i = sum w (v_bar_p + k C_bar dpos)
// into the grid with atomic adds; sets x_bar to the G2P part (P2G's adjoint adds its own), adds
// F_bar_p, consumes v_bar, C_bar, F_bar. `vbar_clear` zeroes the grid adjoint first.
@group(0) @binding(0) var<storage, read> xcol: array<f32>;
@group(0) @binding(1) var<storage, read> fpcol: array<f32>;
@group(0) @binding(2) var<storage, read_write> gv: array<f32>;
@group(0) @binding(3) var<storage, read_write> gvbar: array<VBAR_T>;
@group(0) @binding(4) var<storage, read_write> ax: array<f32>;
@group(0) @binding(5) var<storage, read_write> av: array<f32>;
@group(0) @binding(6) var<storage, read_write> ac: array<f32>;
@group(0) @binding(7) var<storage, read_write> af: array<f32>;
@group(0) @binding(8) var<storage, read_write> afp: array<f32>;
@group(0) @binding(9) var<uniform> p: Params;
