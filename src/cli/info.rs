use anyhow::Result;
use clap::Args;

use crate::checkpoint::{BURN_VERSION, FORMAT_VERSION};
use crate::device;
use crate::device::{Backend, DeviceConfig};

#[derive(Args, Debug)]
pub struct InfoArgs {}

/// What this binary can do here: versions, compiled backends, the adapters wgpu sees, and
/// what `--device auto` picks (and why).
pub fn run(_args: InfoArgs) -> Result<()> {
    println!(
        "anomaly {} (burn {BURN_VERSION}, checkpoint format {FORMAT_VERSION})",
        env!("CARGO_PKG_VERSION")
    );
    let features: Vec<&str> = [
        ("flex", cfg!(feature = "flex")),
        ("ndarray", cfg!(feature = "ndarray")),
        ("wgpu", cfg!(feature = "wgpu")),
        ("cuda", cfg!(feature = "cuda")),
    ]
    .iter()
    .filter(|f| f.1)
    .map(|f| f.0)
    .collect();
    println!("backends compiled in: {}", features.join(", "));
    #[cfg(feature = "wgpu")]
    {
        let adapters = device::gpu::adapters();
        println!(
            "wgpu adapters: {}",
            if adapters.is_empty() { "none" } else { "" }
        );
        for a in adapters {
            let software = if a.kind == wgpu::DeviceType::Cpu {
                "  [software]"
            } else {
                ""
            };
            println!("  - {a}{software}");
        }
    }
    let auto = device::select(&DeviceConfig {
        backend: Backend::Auto,
    });
    match auto {
        Ok(s) => println!("--device auto uses: {}", s.note),
        Err(e) => println!("--device auto: {}", crate::error::one_line(&e)),
    }
    println!(
        "software adapters: {} ({}=1 allows them)",
        if std::env::var(device::ALLOW_SOFTWARE_ENV).is_ok_and(|v| !v.is_empty() && v != "0") {
            "allowed"
        } else {
            "not used"
        },
        device::ALLOW_SOFTWARE_ENV
    );
    Ok(())
}
