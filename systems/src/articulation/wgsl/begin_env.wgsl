// The start of the fk and integrate kernels (forward and adjoint), which all bind jq, jqd and
// work: the env's first body and work row, and its joint coordinates and rates in the work row.
fn begin_env(e: u32) {
    env_body0 = e * p.nb;
    wi = e;
    for (var i = 0u; i < p.nq; i++) {
        work[wi].qv[i] = jq[e * p.nq + i];
    }
    for (var i = 0u; i < p.nd; i++) {
        work[wi].qdv[i] = jqd[e * p.nd + i];
    }
}
