//! SwinUNETR architecture settings, with MONAI's defaults.

/// What can be wrong with a configuration or an input shape.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("feature_size must be a positive multiple of 12, got {0}")]
    FeatureSize(usize),
    #[error("depths and num_heads need one entry per stage (4), got {depths} and {heads}")]
    Stages { depths: usize, heads: usize },
    #[error("stage {stage}: {dim} channels are not divisible by {heads} heads")]
    Heads {
        stage: usize,
        dim: usize,
        heads: usize,
    },
    #[error("{what} must be in [0, 1), got {value}")]
    Rate { what: &'static str, value: f64 },
    #[error("{what} must be at least 1")]
    Zero { what: &'static str },
    #[error(
        "input spatial size {size:?} is not divisible by {multiple} (patch size {patch}^5) on every axis"
    )]
    InputSize {
        size: [usize; 3],
        multiple: usize,
        patch: usize,
    },
    #[error("input has {got} channels, the network expects {expected}")]
    Channels { got: usize, expected: usize },
}

/// The architecture of a SwinUNETR (MONAI `SwinUNETR` arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct SwinUnetrConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    /// Channels of the first stage; a multiple of 12 (MONAI's requirement).
    pub feature_size: usize,
    pub depths: [usize; 4],
    pub num_heads: [usize; 4],
    pub window_size: [usize; 3],
    pub patch_size: usize,
    pub mlp_ratio: f64,
    pub qkv_bias: bool,
    pub drop_rate: f64,
    pub attn_drop_rate: f64,
    /// Largest stochastic-depth rate; rates grow linearly over all blocks from 0.
    pub dropout_path_rate: f64,
    /// MONAI's `use_v2`: a residual conv block before each Swin stage.
    pub use_v2: bool,
    /// Parameter-free LayerNorm on each stage output (MONAI `normalize=True`).
    pub normalize: bool,
}

impl SwinUnetrConfig {
    /// MONAI's defaults (feature size 24, depths 2-2-2-2, heads 3-6-12-24, window 7).
    pub fn new(in_channels: usize, out_channels: usize) -> SwinUnetrConfig {
        SwinUnetrConfig {
            in_channels,
            out_channels,
            feature_size: 24,
            depths: [2, 2, 2, 2],
            num_heads: [3, 6, 12, 24],
            window_size: [7, 7, 7],
            patch_size: 2,
            mlp_ratio: 4.0,
            qkv_bias: true,
            drop_rate: 0.0,
            attn_drop_rate: 0.0,
            dropout_path_rate: 0.0,
            use_v2: false,
            normalize: true,
        }
    }

    /// The same with another feature size.
    pub fn with_feature_size(mut self, feature_size: usize) -> SwinUnetrConfig {
        self.feature_size = feature_size;
        self
    }

    /// Checks the settings before a network is built.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.feature_size == 0 || self.feature_size % 12 != 0 {
            return Err(ConfigError::FeatureSize(self.feature_size));
        }
        for (what, value) in [
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("patch_size", self.patch_size),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { what });
            }
        }
        if self.window_size.contains(&0) {
            return Err(ConfigError::Zero {
                what: "window_size",
            });
        }
        for (stage, &heads) in self.num_heads.iter().enumerate() {
            let dim = self.feature_size << stage;
            if heads == 0 || dim % heads != 0 {
                return Err(ConfigError::Heads { stage, dim, heads });
            }
        }
        for (what, value) in [
            ("drop_rate", self.drop_rate),
            ("attn_drop_rate", self.attn_drop_rate),
            ("dropout_path_rate", self.dropout_path_rate),
        ] {
            if !(0.0..1.0).contains(&value) {
                return Err(ConfigError::Rate { what, value });
            }
        }
        Ok(())
    }

    /// Checks an input `[B, C, D, H, W]`: channels, and spatial sizes divisible by
    /// `patch_size^5` (five halvings), as MONAI requires.
    pub fn check_input(&self, dims: [usize; 5]) -> Result<(), ConfigError> {
        if dims[1] != self.in_channels {
            return Err(ConfigError::Channels {
                got: dims[1],
                expected: self.in_channels,
            });
        }
        let multiple = self.patch_size.pow(5);
        let size = [dims[2], dims[3], dims[4]];
        if size.iter().any(|s| s % multiple != 0 || *s == 0) {
            return Err(ConfigError::InputSize {
                size,
                multiple,
                patch: self.patch_size,
            });
        }
        Ok(())
    }
}
