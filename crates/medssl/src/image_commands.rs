//! `medssl info` and `medssl convert`: looking at and converting image files.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use medssl_io::geometry::{affine_rows, orientation_codes, spacing};
use medssl_io::nifti::{OutputType, write_volume};
use medssl_io::{Image, ReadOptions, read_image};
use serde_json::json;

/// Arguments of `medssl info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// NIfTI file, DICOM file or directory holding a DICOM series.
    pub path: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// SeriesInstanceUID to read from a directory holding several series.
    #[arg(long)]
    pub series: Option<String>,
}

/// Sample type of the written file.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DtypeArg {
    /// The smallest of uint8, int16, float32 that holds every voxel exactly.
    Auto,
    Float32,
    Int16,
    Uint8,
}

/// Arguments of `medssl convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// NIfTI file, DICOM file or directory holding a DICOM series.
    pub input: PathBuf,
    /// Output file, ending in .nii or .nii.gz.
    pub output: PathBuf,
    /// Reorient to the closest canonical RAS orientation (permute/flip, no resampling).
    #[arg(long)]
    pub canonical: bool,
    /// SeriesInstanceUID to read from a directory holding several series.
    #[arg(long)]
    pub series: Option<String>,
    /// Sample type of the output.
    #[arg(long, value_enum, default_value_t = DtypeArg::Auto)]
    pub dtype: DtypeArg,
}

/// The JSON object `medssl info --json` prints.
pub fn info_json(image: &Image) -> serde_json::Value {
    let stats = image.stats();
    let mut value = json!({
        "format": image.format.name(),
        "shape": image.shape,
        "dtype": image.stored_type.name(),
        "spacing": image.affine.as_ref().map(spacing),
        "affine": image.affine.as_ref().map(affine_rows),
        "orientation": image.affine.as_ref().map(orientation_codes),
        "stats": {
            "min": stats.min,
            "max": stats.max,
            "mean": stats.mean,
            "sum": stats.sum,
            "count": stats.count,
            "non_finite": stats.non_finite,
        },
    });
    if let Some((_, others)) = image.details.iter().find(|(k, _)| k == "other series") {
        value["other_series"] = json!(others);
    }
    value
}

/// `medssl info`.
pub fn info(args: &InfoArgs) -> Result<()> {
    let options = ReadOptions {
        series: args.series.clone(),
    };
    let image = read_image(&args.path, &options)?;
    if args.json {
        println!("{}", serde_json::to_string(&info_json(&image))?);
        return Ok(());
    }
    let stats = image.stats();
    println!("{}", image.path.display());
    let mut rows: Vec<(String, String)> = vec![
        ("format".into(), image.format.name().into()),
        ("shape".into(), format!("{:?}", image.shape)),
        ("dtype".into(), image.stored_type.name().into()),
    ];
    match &image.affine {
        Some(affine) => {
            rows.push(("spacing (mm)".into(), format!("{:.6?}", spacing(affine))));
            rows.push(("orientation".into(), orientation_codes(affine)));
            for (r, row) in affine_rows(affine).iter().enumerate() {
                let label = if r == 0 { "affine" } else { "" };
                rows.push((label.into(), format!("{row:>12.6?}")));
            }
        }
        None => {
            let mut text = "none in the file".to_string();
            if let Some(assumed) = &image.assumed_geometry {
                text = format!(
                    "none in the file (no {}); convert assumes spacing {:.6?} mm",
                    assumed.missing.join(", "),
                    spacing(&assumed.affine)
                );
            }
            rows.push(("geometry".into(), text));
        }
    }
    rows.push((
        "values".into(),
        format!(
            "min {} max {} mean {:.6} sum {} ({} voxels{})",
            stats.min,
            stats.max,
            stats.mean,
            stats.sum,
            stats.count,
            if stats.non_finite > 0 {
                format!(", {} NaN/inf left out", stats.non_finite)
            } else {
                String::new()
            }
        ),
    ));
    rows.extend(image.details.iter().cloned());
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("  {k:<width$}  {v}");
    }
    Ok(())
}

/// `medssl convert`.
pub fn convert(args: &ConvertArgs) -> Result<()> {
    let options = ReadOptions {
        series: args.series.clone(),
    };
    let image = read_image(&args.input, &options)?;
    let (mut volume, assumed) = image.to_volume_or_assumed()?;
    if let Some(assumed) = assumed {
        let s = spacing(&assumed.affine);
        eprintln!(
            "warning: {}: no geometry in the file (no {}); writing it as dcm2niix does: \
             voxel spacing [{}, {}, {}] mm (PixelSpacing, SpacingBetweenSlices or \
             SliceThickness, 1 mm where absent), identity direction (LPS) without an \
             orientation, origin 0 without a position; its place in the world is not real",
            args.input.display(),
            assumed.missing.join(", "),
            s[0],
            s[1],
            s[2]
        );
    }
    if args.canonical {
        volume = volume.to_canonical().with_context(|| {
            format!(
                "{}: the affine is degenerate, no canonical orientation exists",
                args.input.display()
            )
        })?;
    }
    let ty = match args.dtype {
        DtypeArg::Auto => OutputType::smallest_exact(&volume),
        DtypeArg::Float32 => OutputType::Float32,
        DtypeArg::Int16 => OutputType::Int16,
        DtypeArg::Uint8 => OutputType::UInt8,
    };
    write_volume(&args.output, &volume, ty)?;
    println!(
        "wrote {} ({:?} x {} channel(s), {}, {})",
        args.output.display(),
        volume.spatial_shape(),
        volume.channels(),
        ty.name(),
        volume.orientation()
    );
    Ok(())
}
