//! `diffsim gpu-info`: opens the wgpu device the GPU backend would use and prints the adapter and
//! the limits that bound simulation sizes. Exits 2 when no device can be opened.

use std::process::ExitCode;

use diffsim_engine::Gpu;

pub fn run() -> ExitCode {
    let gpu = match Gpu::new() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: cannot open a GPU device: {e}");
            return ExitCode::from(2);
        }
    };
    let info = &gpu.adapter_info;
    let l = gpu.limits();
    println!("adapter:      {}", gpu.adapter_name());
    println!("backend:      {:?}", info.backend);
    println!("device type:  {:?}", info.device_type);
    println!("driver:       {} {}", info.driver, info.driver_info);
    println!(
        "f32 atomics:  {}",
        if gpu.has_f32_atomics() { "native (SHADER_FLOAT32_ATOMIC)" } else { "compare-exchange on u32 bits" }
    );
    println!("limits:");
    let rows: [(&str, u64); 8] = [
        ("max_buffer_size", l.max_buffer_size),
        ("max_storage_buffer_binding_size", l.max_storage_buffer_binding_size),
        ("max_uniform_buffer_binding_size", l.max_uniform_buffer_binding_size),
        ("max_storage_buffers_per_shader_stage", l.max_storage_buffers_per_shader_stage.into()),
        ("max_bind_groups", l.max_bind_groups.into()),
        ("max_compute_workgroup_size_x", l.max_compute_workgroup_size_x.into()),
        ("max_compute_invocations_per_workgroup", l.max_compute_invocations_per_workgroup.into()),
        ("max_compute_workgroups_per_dimension", l.max_compute_workgroups_per_dimension.into()),
    ];
    for (name, v) in rows {
        println!("  {name:<40} {v}");
    }
    ExitCode::SUCCESS
}
