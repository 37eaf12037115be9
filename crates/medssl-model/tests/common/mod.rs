//! Helpers shared by the network fixture tests: reading a case and building the network
//! it describes.

use std::path::Path;

use burn::tensor::Device;
use medssl_model::SwinUnetrConfig;
use medssl_model::kernel_path::{KernelPath, taken};
use medssl_test_support::le_f32;
use safetensors::SafeTensors;
use serde_json::Value;

/// Largest difference from MONAI's float32 values that the network fixtures allow:
/// the README's claim. The float32-vs-float64 error of MONAI's own computation is
/// 2-3e-6 on these cases (`float64_vs_float32` in their JSON).
pub const TOLERANCE: f32 = 1e-5;

/// A device a parity test runs on (each held to [`TOLERANCE`]), with the kernel path its
/// decoder convolutions and attention softmax must take.
pub struct TestDevice {
    pub name: &'static str,
    pub device: Device,
    pub path: KernelPath,
}

impl TestDevice {
    /// Panics unless `path` took operations while `run` ran: a device whose test passes
    /// on the wrong path has not tested its own.
    pub fn on_its_path<T>(&self, what: &str, run: impl FnOnce() -> T) -> T {
        let (out, taken) = taken(self.path, run);
        assert!(
            taken > 0,
            "{what} on {}: no operation took the {:?} path",
            self.name,
            self.path
        );
        out
    }
}

/// flex (our CPU kernels), then wgpu in builds with the `wgpu` feature where an adapter
/// initialises (`medssl_test_support::wgpu_device`: required where
/// `MEDSSL_REQUIRE_WGPU` is set).
pub fn test_devices() -> Vec<TestDevice> {
    let flex = TestDevice {
        name: "flex",
        device: Device::flex(),
        path: KernelPath::Ours,
    };
    #[cfg(feature = "wgpu")]
    if let Some(device) = medssl_test_support::wgpu_device() {
        let wgpu = TestDevice {
            name: "wgpu",
            device,
            path: KernelPath::Burn,
        };
        return vec![flex, wgpu];
    }
    vec![flex]
}

/// A JSON file.
pub fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Float32 tensor `name` of a safetensors file, as (shape, values).
pub fn read_f32(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let view = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
    (view.shape().to_vec(), le_f32(view.data()))
}

/// Keys of a network case that describe the fixture, not the network.
const METADATA: [&str; 17] = [
    "case",
    "model",
    "input_shape",
    "output_shape",
    "hidden_shapes",
    "seeds",
    "weight_noise",
    "num_parameters",
    "num_parameter_tensors",
    "skipped_buffers",
    "skipped_buffers_reason",
    "stage_geometry",
    "output_stats",
    "float64_vs_float32",
    "versions",
    "torch_version",
    "monai_version",
];

/// The SwinUNETR a network case describes, from every argument of MONAI's `SwinUNETR`
/// its JSON states.
///
/// # Panics
/// Naming the case and the key: on an argument medssl does not implement (a norm other
/// than instance norm, another downsampling, patch norm, 2-D, a network in training
/// mode), on a malformed value, on a key that is neither an argument nor known
/// metadata, and on a configuration the network refuses.
pub fn network_config(case: &Value) -> SwinUnetrConfig {
    let name = case["case"].as_str().unwrap_or("<unnamed case>");
    let fields = case
        .as_object()
        .unwrap_or_else(|| panic!("{name}: not a JSON object"));
    let fail = |key: &str, why: &str| -> ! { panic!("{name}: {key} = {}: {why}", case[key]) };
    let count = |key: &str| -> usize {
        case[key]
            .as_u64()
            .unwrap_or_else(|| fail(key, "expected a non-negative integer")) as usize
    };
    let counts = |key: &str, value: &Value| -> Vec<usize> {
        let items = value
            .as_array()
            .unwrap_or_else(|| fail(key, "expected a list"));
        let items: Vec<usize> = items
            .iter()
            .map(|v| {
                v.as_u64()
                    .unwrap_or_else(|| fail(key, "expected non-negative integers"))
                    as usize
            })
            .collect();
        items
    };
    let four = |key: &str| -> [usize; 4] {
        counts(key, &case[key])
            .try_into()
            .unwrap_or_else(|_| fail(key, "expected one entry per stage (4)"))
    };
    let flag = |key: &str| -> bool {
        case[key]
            .as_bool()
            .unwrap_or_else(|| fail(key, "expected true or false"))
    };
    let number = |key: &str| -> f64 {
        case[key]
            .as_f64()
            .unwrap_or_else(|| fail(key, "expected a number"))
    };
    let require = |key: &str, supported: bool, what: &str| {
        if !supported {
            fail(key, &format!("medssl's SwinUNETR supports only {what}"));
        }
    };

    let mut config = SwinUnetrConfig::new(count("in_channels"), count("out_channels"));
    for (key, value) in fields {
        let key = key.as_str();
        match key {
            "in_channels" | "out_channels" => {}
            "feature_size" => config.feature_size = count(key),
            "depths" => config.depths = four(key),
            "num_heads" => config.num_heads = four(key),
            "window_size" => {
                config.window_size = match value.as_u64() {
                    Some(w) => [w as usize; 3],
                    None => counts(key, value)
                        .try_into()
                        .unwrap_or_else(|_| fail(key, "expected an integer or 3 integers")),
                }
            }
            "patch_size" => config.patch_size = count(key),
            "mlp_ratio" => config.mlp_ratio = number(key),
            "qkv_bias" => config.qkv_bias = flag(key),
            "drop_rate" => config.drop_rate = number(key),
            "attn_drop_rate" => config.attn_drop_rate = number(key),
            "dropout_path_rate" => config.dropout_path_rate = number(key),
            "use_v2" => config.use_v2 = flag(key),
            "normalize" => config.normalize = flag(key),
            "spatial_dims" => require(key, count(key) == 3, "3 spatial dimensions"),
            "norm_name" => require(key, value == "instance", "\"instance\""),
            "downsample" => require(key, value == "merging", "\"merging\" (v0.9 PatchMerging)"),
            "patch_norm" => require(key, !flag(key), "patch_norm = false"),
            // Fused or plain attention compute the same function.
            "use_flash_attention" => {
                flag(key);
            }
            "mode" => require(
                key,
                value.as_str().is_some_and(|m| m.starts_with("eval")),
                "a network in eval mode",
            ),
            _ if METADATA.contains(&key) => {}
            _ => panic!(
                "{name}: key {key:?} is neither a SwinUNETR argument this test applies nor \
                 known fixture metadata"
            ),
        }
    }
    config
        .validate()
        .unwrap_or_else(|e| panic!("{name}: the network refuses the configuration: {e}"));
    config
}
