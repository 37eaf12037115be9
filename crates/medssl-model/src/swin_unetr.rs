//! SwinUNETR: the Swin encoder with a convolutional U-Net decoder (MONAI's `SwinUNETR`).

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::config::{ConfigError, SwinUnetrConfig};
use crate::swin::SwinTransformer;
use crate::unetr::{OutBlock, UnetrBasicBlock, UnetrUpBlock};

/// The network, with fields named as MONAI's state-dict keys (`swin_vit` stands for
/// `swinViT`; [`crate::weights`] maps the names).
#[derive(Module, Debug)]
pub struct SwinUnetr {
    pub swin_vit: SwinTransformer,
    pub encoder1: UnetrBasicBlock,
    pub encoder2: UnetrBasicBlock,
    pub encoder3: UnetrBasicBlock,
    pub encoder4: UnetrBasicBlock,
    pub encoder10: UnetrBasicBlock,
    pub decoder5: UnetrUpBlock,
    pub decoder4: UnetrUpBlock,
    pub decoder3: UnetrUpBlock,
    pub decoder2: UnetrUpBlock,
    pub decoder1: UnetrUpBlock,
    pub out: OutBlock,
    #[module(skip)]
    config: SwinUnetrConfig,
}

/// Logits and the encoder's five stage outputs of one forward pass.
#[derive(Debug, Clone)]
pub struct SwinUnetrOutput {
    /// `[B, out_channels, D, H, W]`.
    pub logits: Tensor<5>,
    /// The encoder outputs (`swinViT(x, normalize)`), for SSL heads and CKA.
    pub hidden: [Tensor<5>; 5],
}

impl SwinUnetr {
    /// A randomly initialised network for a validated `config`.
    pub fn new(config: &SwinUnetrConfig, device: &Device) -> Result<SwinUnetr, ConfigError> {
        config.validate()?;
        let fs = config.feature_size;
        Ok(SwinUnetr {
            swin_vit: SwinTransformer::new(config, device),
            encoder1: UnetrBasicBlock::new(config.in_channels, fs, device),
            encoder2: UnetrBasicBlock::new(fs, fs, device),
            encoder3: UnetrBasicBlock::new(2 * fs, 2 * fs, device),
            encoder4: UnetrBasicBlock::new(4 * fs, 4 * fs, device),
            encoder10: UnetrBasicBlock::new(16 * fs, 16 * fs, device),
            decoder5: UnetrUpBlock::new(16 * fs, 8 * fs, device),
            decoder4: UnetrUpBlock::new(8 * fs, 4 * fs, device),
            decoder3: UnetrUpBlock::new(4 * fs, 2 * fs, device),
            decoder2: UnetrUpBlock::new(2 * fs, fs, device),
            decoder1: UnetrUpBlock::new(fs, fs, device),
            out: OutBlock::new(fs, config.out_channels, device),
            config: config.clone(),
        })
    }

    /// The architecture.
    pub fn config(&self) -> &SwinUnetrConfig {
        &self.config
    }

    /// Logits and stage outputs for `x`: `[B, in_channels, D, H, W]`, sizes multiples of 32.
    pub fn forward_all(&self, x: Tensor<5>) -> Result<SwinUnetrOutput, ConfigError> {
        self.config.check_input(x.dims())?;
        let hidden = self.swin_vit.forward(x.clone());
        let enc0 = self.encoder1.forward(x);
        let enc1 = self.encoder2.forward(hidden[0].clone());
        let enc2 = self.encoder3.forward(hidden[1].clone());
        let enc3 = self.encoder4.forward(hidden[2].clone());
        let dec4 = self.encoder10.forward(hidden[4].clone());
        let dec3 = self.decoder5.forward(dec4, hidden[3].clone());
        let dec2 = self.decoder4.forward(dec3, enc3);
        let dec1 = self.decoder3.forward(dec2, enc2);
        let dec0 = self.decoder2.forward(dec1, enc1);
        let out = self.decoder1.forward(dec0, enc0);
        Ok(SwinUnetrOutput {
            logits: self.out.forward(out),
            hidden,
        })
    }

    /// The class logits for `x`.
    pub fn forward(&self, x: Tensor<5>) -> Result<Tensor<5>, ConfigError> {
        Ok(self.forward_all(x)?.logits)
    }

    /// The encoder alone: the five stage outputs.
    pub fn encode(&self, x: Tensor<5>) -> Result<[Tensor<5>; 5], ConfigError> {
        self.config.check_input(x.dims())?;
        Ok(self.swin_vit.forward(x))
    }
}
