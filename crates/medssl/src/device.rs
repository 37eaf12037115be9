//! The `--device` option every training and evaluation command takes: `cpu`, or
//! `cuda[:N]` in a build with the cuda feature.

use anyhow::{Result, bail};
use burn::tensor::Device;
#[cfg(feature = "cuda")]
use {anyhow::anyhow, burn::tensor::Tensor};

/// The Burn device for a `--device` value.
pub fn parse_device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        cuda if cuda.starts_with("cuda") => {
            let index = cuda
                .strip_prefix("cuda")
                .and_then(|s| s.strip_prefix(':'))
                .map_or(Ok(0), str::parse::<usize>)
                .map_err(|_| anyhow!("bad device {cuda}: use cuda or cuda:N"))?;
            let device = Device::cuda(index);
            // CubeCL panics (in its server thread) when no GPU, driver or NVRTC is there;
            // a one-element round trip turns that into an error here.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Tensor::<1>::zeros([1], &device).into_data();
            }))
            .map_err(|_| {
                anyhow!(
                    "{cuda}: no usable CUDA device (needs an NVIDIA GPU, its driver and NVRTC; \
                     see the error above)"
                )
            })?;
            Ok(device)
        }
        other => bail!(
            "unknown device {other}: use cpu{}",
            if cfg!(feature = "cuda") {
                " or cuda[:N]"
            } else {
                " (this binary was built without the cuda feature)"
            }
        ),
    }
}

/// What runs a parsed `--device`, for run records and reports: the processor's name for
/// `cpu` (`/proc/cpuinfo`), the GPU's own name for `cuda[:N]`; `unknown` where the system
/// does not say.
pub fn device_model(name: &str, device: &Device) -> String {
    #[cfg(feature = "cuda")]
    if name != "cpu" {
        return device
            .identity()
            .map_or_else(|| "unknown".to_string(), |identity| identity.name);
    }
    #[cfg(not(feature = "cuda"))]
    let _ = (name, device); // without the cuda feature only `cpu` parses
    medssl_bench::report::cpu_model().unwrap_or_else(|| "unknown".into())
}
