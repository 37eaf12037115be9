//! The Swin encoder's shape as settings: stage depths, attention heads, window edge and
//! qkv bias. Fine-tuning (`model.*`) and pretraining (`encoder.*`) both offer them, so an
//! encoder pretrained at one shape (SMIT's 2-2-4-2 with 4³ windows, or a small test
//! encoder) is fine-tuned at the same one; each default is MONAI's.

use medssl_model::SwinUnetrConfig;

/// MONAI's stage depths, 2-2-2-2.
pub(crate) fn default_depths() -> [usize; 4] {
    SwinUnetrConfig::new(1, 1).depths
}

/// MONAI's attention heads per stage, 3-6-12-24.
pub(crate) fn default_heads() -> [usize; 4] {
    SwinUnetrConfig::new(1, 1).num_heads
}

/// MONAI's window edge, 7.
pub(crate) fn default_window() -> usize {
    SwinUnetrConfig::new(1, 1).window_size[0]
}

/// MONAI's qkv bias (on).
pub(crate) fn default_qkv_bias() -> bool {
    SwinUnetrConfig::new(1, 1).qkv_bias
}

/// The Swin shape of a configuration, as its settings hold it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SwinShape {
    pub depths: [usize; 4],
    pub num_heads: [usize; 4],
    pub window_size: usize,
    pub qkv_bias: bool,
}

impl SwinShape {
    /// `network` with this shape (cubic windows).
    pub fn apply(self, mut network: SwinUnetrConfig) -> SwinUnetrConfig {
        network.depths = self.depths;
        network.num_heads = self.num_heads;
        network.window_size = [self.window_size; 3];
        network.qkv_bias = self.qkv_bias;
        network
    }

    /// MONAI's shape.
    pub fn monai() -> SwinShape {
        SwinShape {
            depths: default_depths(),
            num_heads: default_heads(),
            window_size: default_window(),
            qkv_bias: default_qkv_bias(),
        }
    }
}
