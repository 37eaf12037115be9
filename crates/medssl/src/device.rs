//! The `--device` option every training and evaluation command takes: `cpu`, `cuda[:N]`
//! in a build with the cuda feature, `wgpu` in a build with the wgpu feature.

use anyhow::{Result, anyhow, bail};
use burn::tensor::Device;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
use burn::tensor::Tensor;

/// A `--device` value, read but not opened: every kind is known whatever the build, so a
/// binary without a backend can still say which feature it lacks, and the Slurm scripts
/// can be checked on a login node without a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceName {
    /// Burn's flex backend, with medssl's own kernels.
    Cpu,
    /// The CUDA GPU with this index.
    Cuda(usize),
    /// The adapter wgpu picks (Vulkan, Metal, DX12; a software Vulkan such as Mesa's
    /// lavapipe where there is no GPU).
    Wgpu,
}

impl DeviceName {
    /// Reads `cpu`, `cuda`, `cuda:N` or `wgpu`.
    pub fn parse(text: &str) -> Result<DeviceName> {
        match text {
            "cpu" => Ok(DeviceName::Cpu),
            "wgpu" => Ok(DeviceName::Wgpu),
            cuda if cuda.starts_with("cuda") => match &cuda[4..] {
                "" => Ok(DeviceName::Cuda(0)),
                rest => rest
                    .strip_prefix(':')
                    .and_then(|n| n.parse().ok())
                    .map(DeviceName::Cuda)
                    .ok_or_else(|| anyhow!("bad device {cuda}: use cuda or cuda:N")),
            },
            other => bail!("unknown device {other}: use {}", compiled_devices()),
        }
    }

    /// The cargo feature that builds this device's backend (`None` for the CPU).
    pub fn feature(self) -> Option<&'static str> {
        match self {
            DeviceName::Cpu => None,
            DeviceName::Cuda(_) => Some("cuda"),
            DeviceName::Wgpu => Some("wgpu"),
        }
    }

    /// Whether this binary has the backend, or else the error that says how to build one
    /// that has.
    pub fn check_compiled(self) -> Result<()> {
        let compiled = match self {
            DeviceName::Cpu => true,
            DeviceName::Cuda(_) => cfg!(feature = "cuda"),
            DeviceName::Wgpu => cfg!(feature = "wgpu"),
        };
        match self.feature() {
            Some(feature) if !compiled => bail!(
                "--device {feature}: this medssl was built without the `{feature}` feature; \
                 rebuild with `cargo build --release -p medssl --features {feature}`, or use \
                 --device {}",
                compiled_devices()
            ),
            _ => Ok(()),
        }
    }
}

/// The devices this binary can open, as `--device` takes them.
fn compiled_devices() -> String {
    let mut names = vec!["cpu"];
    if cfg!(feature = "cuda") {
        names.push("cuda[:N]");
    }
    if cfg!(feature = "wgpu") {
        names.push("wgpu");
    }
    names.join(", ")
}

/// The Burn device for a `--device` value, opened: a device that is not there (no GPU,
/// no driver) is an error now, before any command writes its run directory.
pub fn parse_device(text: &str) -> Result<Device> {
    let name = DeviceName::parse(text)?;
    name.check_compiled()?;
    match name {
        DeviceName::Cpu => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        DeviceName::Cuda(index) => {
            let device = Device::cuda(index);
            round_trip(&device).map_err(|()| {
                anyhow!(
                    "{text}: no usable CUDA device (needs an NVIDIA GPU, its driver and NVRTC; \
                     see the error above)"
                )
            })?;
            check_numerics(text, &device).map_err(|e| anyhow!(e))?;
            Ok(device)
        }
        #[cfg(feature = "wgpu")]
        DeviceName::Wgpu => {
            // Burn's wgpu runtime initialises once per process: the first answer is kept.
            static WGPU: std::sync::OnceLock<std::result::Result<Device, String>> =
                std::sync::OnceLock::new();
            let device = WGPU.get_or_init(|| {
                let device = Device::wgpu_options().init().map_err(|e| {
                    format!(
                        "wgpu: no usable graphics adapter ({e}); it needs a Vulkan, Metal or \
                         DX12 driver (without a GPU on Linux, Mesa's software Vulkan: `apt \
                         install mesa-vulkan-drivers libvulkan1`)"
                    )
                })?;
                round_trip(&device)
                    .map_err(|()| "wgpu: the adapter failed its first operation".to_string())?;
                check_numerics("wgpu", &device)?;
                Ok(device)
            });
            device.clone().map_err(|e| anyhow!(e))
        }
        #[allow(unreachable_patterns)] // backends left out of this build: refused above
        _ => unreachable!("check_compiled refuses devices this binary lacks"),
    }
}

/// A one-element round trip: CubeCL panics (in its server thread) when a GPU, its driver
/// or its compiler is missing, and this turns that into an error here.
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn round_trip(device: &Device) -> std::result::Result<(), ()> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Tensor::<1>::zeros([1], device).into_data();
    }))
    .map_err(drop)
}

/// Refuses a GPU device that fails [`DeviceCheck`]: a device that drops terms from long
/// sums trains without an error and without learning, so it is named and refused before
/// any command writes its run directory.
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn check_numerics(text: &str, device: &Device) -> std::result::Result<(), String> {
    use medssl_model::device_check::DeviceCheck;
    // A backend that fails hard panics in its server thread instead of returning.
    let check = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        DeviceCheck::run(device).failure()
    }));
    let failure = match check {
        Ok(None) => return Ok(()),
        Ok(Some(failure)) => failure,
        Err(_) => "the check itself failed on it (see the error above)".to_string(),
    };
    Err(format!(
        "--device {text} ({}) computes wrong values: {failure}. Runs on it would train and \
         evaluate wrongly without an error, so it is refused; use --device cpu or another \
         GPU or driver (Mesa's software Vulkan, lavapipe, fails this with Burn 0.22: \
         README, GPUs)",
        device_model(text, device)
    ))
}

/// What runs a parsed `--device`, for run records and reports: the processor's name for
/// `cpu` (`/proc/cpuinfo`), the GPU's own name otherwise; `unknown` where the system does
/// not say.
pub fn device_model(name: &str, device: &Device) -> String {
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    if name != "cpu" {
        return device
            .identity()
            .map_or_else(|| "unknown".to_string(), |identity| identity.name);
    }
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    let _ = (name, device); // without a GPU feature only `cpu` opens
    medssl_bench::report::cpu_model().unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_whatever_the_build() {
        assert_eq!(DeviceName::parse("cpu").unwrap(), DeviceName::Cpu);
        assert_eq!(DeviceName::parse("cuda").unwrap(), DeviceName::Cuda(0));
        assert_eq!(DeviceName::parse("cuda:3").unwrap(), DeviceName::Cuda(3));
        assert_eq!(DeviceName::parse("wgpu").unwrap(), DeviceName::Wgpu);
        for bad in ["cuda:", "cuda:x", "cuda3"] {
            let err = DeviceName::parse(bad).unwrap_err().to_string();
            assert!(err.contains("use cuda or cuda:N"), "{bad}: {err}");
        }
        let err = DeviceName::parse("tpu").unwrap_err().to_string();
        assert!(err.starts_with("unknown device tpu: use cpu"), "{err}");
    }

    #[test]
    fn a_backend_left_out_of_the_build_names_its_feature() {
        assert!(DeviceName::Cpu.check_compiled().is_ok());
        for (name, feature, compiled) in [
            (DeviceName::Cuda(1), "cuda", cfg!(feature = "cuda")),
            (DeviceName::Wgpu, "wgpu", cfg!(feature = "wgpu")),
        ] {
            match name.check_compiled() {
                Ok(()) => assert!(compiled),
                Err(e) => {
                    assert!(!compiled);
                    let e = e.to_string();
                    assert!(e.contains(&format!("--features {feature}")), "{e}");
                }
            }
        }
    }
}
