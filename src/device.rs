//! Where tensors live. Every command takes its device from here.

use burn::tensor::Device;

use crate::config::{Backend, DeviceConfig};

/// The CPU device (burn's ndarray backend, threaded with rayon).
pub fn cpu() -> Device {
    // ndarray is marked deprecated in burn 0.22 in favour of flex; it is still the faster
    // backend for inference here, and the one this release is measured and tested on.
    #[allow(deprecated)]
    Device::ndarray()
}

/// The device the config asks for, with a one-line description for the user.
pub fn select(cfg: &DeviceConfig) -> (Device, String) {
    match cfg.backend {
        Backend::Cpu => (cpu(), "cpu (burn ndarray backend)".to_string()),
    }
}
