//! `--device cpu|gpu|auto` and `scratchnet devices`.

use anyhow::Result;
use clap::Args;
use scratchnet::ops::gpu::Gpu;
use scratchnet::tensor::Device;

use super::out::{errln, outln};

/// The help of `--device`, shared by the commands that take it.
pub const HELP: &str = "Where to compute: cpu (default), gpu (the best GPU adapter; an error if there is none), \
                        or auto (a real GPU if there is one, else the CPU)";

/// The device `--device` names; `None` means cpu.
pub fn pick(arg: Option<&str>) -> Result<Device> {
    match arg.unwrap_or("cpu") {
        "cpu" => Ok(Device::Cpu),
        "gpu" => {
            let gpu = Gpu::new()?;
            describe(&gpu);
            Ok(Device::Gpu(gpu))
        }
        _ => match Gpu::new() {
            Ok(gpu) if !gpu.summary().emulated => {
                describe(&gpu);
                Ok(Device::Gpu(gpu))
            }
            _ => Ok(Device::Cpu),
        },
    }
}

fn describe(gpu: &Gpu) {
    let s = gpu.summary();
    errln!("device: {} ({}, {})", s.name, s.backend, s.device_type);
    if s.emulated {
        errln!(
            "warning: {} emulates a GPU on the CPU: results are right but it is far slower than --device cpu; \
             it is for testing",
            s.name
        );
    }
}

#[derive(Args)]
pub struct DevicesArgs {
    /// One JSON object per adapter and line
    #[arg(long)]
    pub json: bool,
}

/// `scratchnet devices`: the GPU adapters the installed drivers offer, best first.
pub fn list(a: DevicesArgs) -> Result<()> {
    let adapters = Gpu::adapters();
    if a.json {
        for s in &adapters {
            outln!("{}", serde_json::to_string(s)?);
        }
        return Ok(());
    }
    use scratchnet::ops::internals::isa;
    let (level, best) = (isa::current(), isa::detected());
    let capped =
        if level < best { format!(", capped by {} (the CPU has {})", isa::ENV, best.name()) } else { String::new() };
    outln!(
        "cpu: {} threads, {} kernels{capped} (--device cpu)",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        level.name()
    );
    if adapters.is_empty() {
        outln!(
            "no GPU adapter: install the GPU vendor's Vulkan driver (or, for a CPU emulation to test with, Debian's \
             mesa-vulkan-drivers)"
        );
    }
    for (i, s) in adapters.iter().enumerate() {
        let pick = if i == 0 { "  (--device gpu)" } else { "" };
        outln!("gpu {i}: {}, {} {}, driver {}{pick}", s.name, s.backend, s.device_type, s.driver);
        outln!(
            "       max buffer {} MiB, max storage binding {} MiB, max workgroup size x {}{}",
            s.max_buffer_size >> 20,
            s.max_storage_buffer_binding_size >> 20,
            s.max_compute_workgroup_size_x,
            if s.emulated { ", CPU emulation: for testing only" } else { "" }
        );
    }
    Ok(())
}
