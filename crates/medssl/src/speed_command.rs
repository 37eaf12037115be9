//! `medssl speed`: how fast SwinUNETR runs on this machine (forward, one training step,
//! sliding-window inference), so users can size hardware and we can track speed.

use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use clap::Args;
use medssl_eval::sliding_window::{Blend, SlidingWindow};
use medssl_model::{SwinUnetr, SwinUnetrConfig};
use ndarray::Array5;

use crate::device::parse_device;
use serde_json::json;

/// Arguments of `medssl speed`.
#[derive(Debug, Args)]
pub struct SpeedArgs {
    /// SwinUNETR feature size (a multiple of 12).
    #[arg(long, default_value_t = 24)]
    pub feature_size: usize,
    /// Cubic window (ROI) size for the forward pass and the training step.
    #[arg(long, default_value_t = 64)]
    pub roi: usize,
    /// Volume for sliding-window inference, D,H,W.
    #[arg(long, default_value = "128,128,96", value_delimiter = ',')]
    pub volume: Vec<usize>,
    /// Timed repetitions of each measurement (after one warm-up).
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// Output classes of the network.
    #[arg(long, default_value_t = 3)]
    pub classes: usize,
    /// cpu (Burn's flex backend), or cuda[:N] or wgpu (binaries built with the `cuda` or
    /// `wgpu` feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn median_ms(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Times `f` once to warm up, then `iters` times; returns the median in ms.
fn time_ms(device: &Device, iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = Instant::now();
        f()?;
        device
            .sync()
            .map_err(|e| anyhow!("device sync failed: {e:?}"))?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median_ms(times))
}

/// Peak resident memory of this process in MB (Linux `VmHWM`), if known.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// `medssl speed`.
pub fn speed(args: &SpeedArgs) -> Result<()> {
    if args.iters == 0 {
        bail!("--iters must be at least 1");
    }
    let device = parse_device(&args.device)?;
    let config = SwinUnetrConfig::new(1, args.classes).with_feature_size(args.feature_size);
    let roi = [args.roi; 3];
    config.check_input([1, 1, roi[0], roi[1], roi[2]])?;
    let model = SwinUnetr::new(&config, &device)?;

    let input = Tensor::<5>::random(
        [1, 1, args.roi, args.roi, args.roi],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let forward_ms = time_ms(&device, args.iters, || {
        model.forward(input.clone())?;
        Ok(())
    })?;

    let train_device = device.clone().autodiff();
    let mut train_model = SwinUnetr::new(&config, &train_device)?;
    let mut optimizer = AdamWConfig::new().with_weight_decay(1e-5).init();
    let loss_fn = CrossEntropyLossConfig::new().init(&train_device);
    let voxels = args.roi.pow(3);
    let labels: Vec<i64> = (0..voxels).map(|i| (i % args.classes) as i64).collect();
    let target = Tensor::<1, Int>::from_data(TensorData::new(labels, [voxels]), &train_device);
    let train_input = input.clone().to_device(&train_device);
    let train_step_ms = time_ms(&device, args.iters, || {
        let logits = train_model.forward(train_input.clone())?;
        let flat = logits
            .permute([0, 2, 3, 4, 1])
            .reshape([voxels, args.classes]);
        let loss = loss_fn.forward(flat, target.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &train_model);
        train_model = optimizer.step(1e-4, train_model.clone(), grads);
        Ok(())
    })?;

    let [d, h, w]: [usize; 3] = args
        .volume
        .clone()
        .try_into()
        .map_err(|_| anyhow!("--volume needs three sizes"))?;
    let volume = Array5::from_shape_fn((1, 1, d, h, w), |(_, _, i, j, k)| {
        ((i * 7 + j * 3 + k) % 11) as f32 / 11.0
    });
    let window = SlidingWindow {
        roi,
        overlap: 0.5,
        batch: 1,
        blend: Blend::Gaussian { sigma_scale: 0.125 },
        cval: 0.0,
    };
    let sliding_window_ms = time_ms(&device, args.iters, || {
        window.run(volume.view(), |batch| model.predict_array(batch, &device))?;
        Ok(())
    })?;

    let report = json!({
        "backend": if args.device == "cpu" { "flex".to_string() } else { args.device.clone() },
        "device": args.device,
        "threads": rayon::current_num_threads(),
        "feature_size": args.feature_size,
        "roi": args.roi,
        "volume": [d, h, w],
        "iters": args.iters,
        "forward_ms": forward_ms,
        "train_step_ms": train_step_ms,
        "sliding_window_ms": sliding_window_ms,
        "peak_rss_mb": peak_rss_mb(),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "SwinUNETR fs{} on {} ({} threads)\n  forward {}^3:            {:>9.1} ms\n  train step {}^3:         {:>9.1} ms\n  sliding window {:?}: {:>9.1} ms\n  peak RSS:               {:>9.0} MB",
            args.feature_size,
            report["backend"].as_str().unwrap_or("?"),
            rayon::current_num_threads(),
            args.roi,
            forward_ms,
            args.roi,
            train_step_ms,
            [d, h, w],
            sliding_window_ms,
            peak_rss_mb().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}
