//! Where tensors live. Every command takes its device from [`select`]: `cpu` (burn's flex
//! backend, or ndarray in a build without flex), `gpu` (burn's wgpu backend: Vulkan, Metal,
//! DX12 or OpenGL, whichever this machine has), `cuda` (burn's CUDA backend, in a build with the
//! `cuda` feature), or `auto`: CUDA where it is built in and an NVIDIA GPU starts, else the first
//! real GPU adapter, else the CPU, with the reason on one line.

use anyhow::Result;
use burn::tensor::{Device, Tensor};

use serde::{Deserialize, Serialize};

use crate::bail_input;

#[cfg(not(any(
    feature = "flex",
    feature = "ndarray",
    feature = "wgpu",
    feature = "cuda"
)))]
compile_error!(
    "anomaly needs a backend: enable `flex` or `ndarray` (CPU), `wgpu` or `cuda` (GPU), or both"
);

/// Lets `--device gpu` and `auto` use a software adapter (lavapipe, llvmpipe), e.g. to test
/// the GPU code path on a machine without a GPU.
pub const ALLOW_SOFTWARE_ENV: &str = "ANOMALY_ALLOW_SOFTWARE_GPU";

/// `device.backend`: where tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// The first GPU adapter, else the CPU.
    Auto,
    Cpu,
    /// burn's wgpu backend (Vulkan, Metal, DX12, OpenGL).
    Gpu,
    /// burn's CUDA backend (a build with the `cuda` feature).
    Cuda,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceConfig {
    pub backend: Backend,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Auto,
        }
    }
}

/// A device with the sentence that says why it was chosen.
pub struct Selected {
    pub device: Device,
    pub note: String,
    pub is_gpu: bool,
}

/// The CPU backend this build computes on.
pub const CPU_BACKEND: &str = if cfg!(feature = "flex") {
    "burn flex backend"
} else {
    "burn ndarray backend"
};

/// The CPU device: burn's flex backend (faster than ndarray here for both training and
/// inference; see the README's Benchmarks), or ndarray in a build without flex.
#[cfg(feature = "flex")]
pub fn cpu() -> Device {
    Device::flex()
}

#[cfg(all(feature = "ndarray", not(feature = "flex")))]
pub fn cpu() -> Device {
    // Deprecated in burn 0.22 in favour of flex; kept as the alternative CPU backend.
    #[allow(deprecated)]
    Device::ndarray()
}

/// Whether `device` is this build's CPU device.
pub fn is_cpu(device: &Device) -> bool {
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    return *device == cpu();
    #[cfg(not(any(feature = "flex", feature = "ndarray")))]
    {
        let _ = device;
        false
    }
}

fn cpu_selected(why: String) -> Result<Selected> {
    #[cfg(any(feature = "flex", feature = "ndarray"))]
    return Ok(Selected {
        device: cpu(),
        note: format!("cpu ({CPU_BACKEND}): {why}"),
        is_gpu: false,
    });
    #[cfg(not(any(feature = "flex", feature = "ndarray")))]
    bail_input!(
        "{why}, and this anomaly was built without a CPU backend (the flex or ndarray feature)"
    );
}

/// The device the config (or `--device`) asks for.
pub fn select(cfg: &DeviceConfig) -> Result<Selected> {
    match cfg.backend {
        Backend::Cpu => cpu_selected("as requested".into()),
        Backend::Gpu => gpu::select(true),
        Backend::Cuda => cuda::select(true),
        Backend::Auto => cuda::select(false).or_else(|_| gpu::select(false)),
    }
}

thread_local! {
    static HOST_READS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A tensor's values on the host. A read waits for everything queued before it on the device,
/// so the paths that must not wait often (the trainer's step loop, scoring) read through here,
/// and [`host_reads`] counts them.
pub fn read_floats<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    HOST_READS.with(|n| n.set(n.get() + 1));
    t.try_to_vec_as::<f32>()
        .map_err(|e| anyhow::anyhow!("reading values from the device: {e:?}"))
}

/// How many [`read_floats`] this thread has made: a test checks that a training pass waits
/// for the device once, not once per step.
pub fn host_reads() -> u64 {
    HOST_READS.with(|n| n.get())
}

/// Runs one tiny operation, so a device that cannot start fails here, as an error, rather
/// than as a panic in the middle of training.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn works(device: &Device) -> std::result::Result<(), String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(|| {
        Tensor::<1>::from_floats([1.0, 2.0], device)
            .sum()
            .into_scalar::<f32>()
    });
    std::panic::set_hook(hook);
    match outcome {
        Ok(3.0) => Ok(()),
        Ok(v) => Err(format!("a test sum gave {v} instead of 3")),
        Err(p) => Err(p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "it failed to start".into())),
    }
}

pub fn software_allowed() -> bool {
    std::env::var(ALLOW_SOFTWARE_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

#[cfg(feature = "wgpu")]
pub mod gpu {
    use super::*;
    use burn::tensor::DeviceKind;

    /// One adapter wgpu reports.
    #[derive(Debug, Clone)]
    pub struct Adapter {
        pub name: String,
        pub kind: wgpu::DeviceType,
        pub api: wgpu::Backend,
        /// Its position among adapters of its kind on its API (what burn's `DeviceKind` counts).
        pub index: usize,
    }

    impl std::fmt::Display for Adapter {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{} ({:?}, {:?})", self.name, self.kind, self.api)
        }
    }

    /// The graphics APIs burn's wgpu runtime tries, best first.
    const APIS: [wgpu::Backend; 4] = [
        wgpu::Backend::Vulkan,
        wgpu::Backend::Metal,
        wgpu::Backend::Dx12,
        wgpu::Backend::Gl,
    ];

    /// Runs `f` with file descriptor 2 pointed at /dev/null. Vulkan and EGL drivers print to
    /// stderr while adapters are listed and devices start (lavapipe complains when there is no
    /// display); `anomaly` promises one line on stderr per error, and reports failures itself.
    fn quietly<T>(f: impl FnOnce() -> T) -> T {
        // SAFETY: plain descriptor juggling on this process's own stderr; the saved
        // descriptor is restored and closed before returning, whatever `f` does.
        unsafe {
            let saved = libc::dup(2);
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            if saved < 0 || null < 0 {
                return f();
            }
            libc::dup2(null, 2);
            libc::close(null);
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            libc::dup2(saved, 2);
            libc::close(saved);
            out.unwrap_or_else(|p| std::panic::resume_unwind(p))
        }
    }

    fn probe(api: wgpu::Backend) -> Vec<Adapter> {
        quietly(|| probe_loudly(api))
    }

    fn probe_loudly(api: wgpu::Backend) -> Vec<Adapter> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: api.into(),
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let mut seen: Vec<wgpu::DeviceType> = Vec::new();
        futures_lite::future::block_on(instance.enumerate_adapters(api.into()))
            .iter()
            .map(|a| {
                let info = a.get_info();
                let index = seen.iter().filter(|k| **k == info.device_type).count();
                seen.push(info.device_type);
                Adapter {
                    name: info.name,
                    kind: info.device_type,
                    api,
                    index,
                }
            })
            .collect()
    }

    /// Every adapter of every API, for `anomaly info` and error messages.
    pub fn adapters() -> Vec<Adapter> {
        APIS.iter().flat_map(|&api| probe(api)).collect()
    }

    /// The API burn's runtime settles on (the first with a real GPU, else the first with any
    /// adapter) and its adapters; choosing among these keeps our index and burn's the same.
    fn settled() -> Vec<Adapter> {
        let mut software = Vec::new();
        for api in APIS {
            let found = probe(api);
            if found.iter().any(|a| a.kind != wgpu::DeviceType::Cpu) {
                return found;
            }
            if software.is_empty() {
                software = found;
            }
        }
        software
    }

    fn kind_of(a: &Adapter) -> DeviceKind {
        match a.kind {
            wgpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu(a.index),
            wgpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu(a.index),
            wgpu::DeviceType::VirtualGpu => DeviceKind::VirtualGpu(a.index),
            wgpu::DeviceType::Cpu | wgpu::DeviceType::Other => DeviceKind::Cpu,
        }
    }

    pub fn select(required: bool) -> Result<Selected> {
        pick(required, software_allowed())
    }

    /// The best adapter burn's runtime can use, software ones only when `allow_software`.
    pub fn pick(required: bool, allow_software: bool) -> Result<Selected> {
        let candidates = settled();
        let usable = |a: &&Adapter| a.kind != wgpu::DeviceType::Cpu || allow_software;
        // Discrete before integrated before virtual before software.
        let rank = |a: &Adapter| match a.kind {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            _ => 3,
        };
        let mut usable_list: Vec<&Adapter> = candidates.iter().filter(usable).collect();
        usable_list.sort_by_key(|a| rank(a));
        let listed = || {
            let all = adapters();
            if all.is_empty() {
                "none".to_string()
            } else {
                all.iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        };
        let Some(chosen) = usable_list.first() else {
            let why = format!(
                "no usable GPU adapter (adapters found: {}; software ones count only with {ALLOW_SOFTWARE_ENV}=1)",
                listed()
            );
            if required {
                bail_input!("--device gpu: {why}");
            }
            return cpu_selected(why);
        };
        let device = Device::wgpu(kind_of(chosen));
        if let Err(e) = quietly(|| works(&device)) {
            if required {
                anyhow::bail!("--device gpu: the adapter {chosen} failed to start: {e}");
            }
            return cpu_selected(format!("the adapter {chosen} failed to start ({e})"));
        }
        let why = if chosen.kind == wgpu::DeviceType::Cpu {
            format!("software adapter allowed by {ALLOW_SOFTWARE_ENV}")
        } else if required {
            "as requested".into()
        } else {
            "the first GPU adapter".into()
        };
        Ok(Selected {
            device,
            note: format!("gpu {chosen} (burn wgpu backend): {why}"),
            is_gpu: true,
        })
    }
}

#[cfg(not(feature = "wgpu"))]
pub mod gpu {
    use super::*;

    pub fn select(required: bool) -> Result<Selected> {
        if required {
            bail_input!(
                "--device gpu: this anomaly was built without GPU support (the wgpu feature)"
            );
        }
        cpu_selected("built without GPU support".into())
    }
}

#[cfg(feature = "cuda")]
pub mod cuda {
    use super::*;

    /// The first CUDA device, if the driver loads and it runs a test sum. An `auto` that finds
    /// none falls through to wgpu, so the error says only why CUDA was not used.
    pub fn select(required: bool) -> Result<Selected> {
        let device = Device::cuda(0usize);
        if let Err(e) = works(&device) {
            if required {
                bail_input!("--device cuda: CUDA device 0 failed to start: {e}");
            }
            anyhow::bail!("CUDA device 0 failed to start: {e}");
        }
        Ok(Selected {
            device,
            note: "cuda device 0 (burn CUDA backend): ".to_string()
                + if required {
                    "as requested"
                } else {
                    "CUDA is built in"
                },
            is_gpu: true,
        })
    }
}

#[cfg(not(feature = "cuda"))]
pub mod cuda {
    use super::*;

    pub fn select(required: bool) -> Result<Selected> {
        if required {
            bail_input!(
                "--device cuda: this anomaly was built without CUDA support (build it with \
                 `cargo build --release --features cuda`)"
            );
        }
        anyhow::bail!("built without CUDA support")
    }
}

/// This machine's name, as TensorBoard's own writers put it in event file names (and syslog
/// in its HOSTNAME field).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..len]).replace(['/', '\\'], "_");
    if ok && !name.is_empty() {
        name
    } else {
        "localhost".into()
    }
}

/// burn's CPU backend keeps one global RNG: unit tests that seed it or draw from it (weight
/// init included) hold this lock, or a parallel test could draw in between.
#[cfg(test)]
pub static TEST_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
