//! CPC grids: raster order, tiling, overlap, centring, padding and jitter.

mod views_common;

use medssl_data::Sample;
use medssl_data::rng::stream;
use medssl_data::spatial::region::extract;
use medssl_data::views::CpcGrid;
use ndarray::{Array4, s};
use rand::RngExt;
use views_common::{assert_is_box, encoded};

#[test]
fn touching_cells_tile_the_volume_in_raster_order() {
    let shape = [12, 15, 9];
    let sample = encoded(shape, 2);
    let grid = CpcGrid {
        grid: 3,
        cell: [4, 5, 3],
        overlap: 0,
        jitter: 0,
        fill: 0.0,
    };
    let cells = grid.cells(&sample.image, &mut stream(0, &[])).unwrap();
    assert_eq!(cells.len(), 27);
    let mut rebuilt = Array4::from_elem((2, 12, 15, 9), f32::NAN);
    for (n, cell) in cells.iter().enumerate() {
        assert_eq!(cell.position, [n / 9, n / 3 % 3, n % 3]);
        let start = [0, 1, 2].map(|a| cell.position[a] * grid.cell[a]);
        assert_eq!(cell.start, start.map(|x| x as isize));
        rebuilt
            .slice_mut(s![
                ..,
                start[0]..start[0] + 4,
                start[1]..start[1] + 5,
                start[2]..start[2] + 3
            ])
            .assign(cell.volume.data());
    }
    assert_eq!(&rebuilt, sample.image.data());
}

#[test]
fn overlapping_cells_are_centred_boxes_of_the_source() {
    // Cells of 8 with overlap 4: stride 4, span 2·4 + 8 = 16 in a 20-voxel axis -> origin 2;
    // 16 voxels in an 18-voxel axis -> origin 1; in a 13-voxel axis -> origin −2 (padded,
    // floor((13 − 16) / 2)).
    let shape = [20, 18, 13];
    let sample = encoded(shape, 1);
    let grid = CpcGrid {
        grid: 3,
        cell: [8, 8, 8],
        overlap: 4,
        jitter: 0,
        fill: -1.0,
    };
    let cells = grid.cells(&sample.image, &mut stream(0, &[])).unwrap();
    for cell in &cells {
        let expected: [isize; 3] =
            std::array::from_fn(|a| [2, 1, -2][a] + 4 * cell.position[a] as isize);
        assert_eq!(cell.start, expected);
        let view = Sample::unlabelled(&sample.id, cell.volume.clone());
        assert_is_box(&view, shape, cell.start, -1.0);
    }
}

#[test]
fn jitter_shifts_each_cell_within_bounds_and_deterministically() {
    let sample = encoded([24, 24, 24], 1);
    let grid = CpcGrid {
        grid: 2,
        cell: [8, 8, 8],
        overlap: 0,
        jitter: 2,
        fill: 0.0,
    };
    let mut shifts_seen = std::collections::HashSet::new();
    for seed in 0..50 {
        let cells = grid.cells(&sample.image, &mut stream(seed, &[])).unwrap();
        let again = grid.cells(&sample.image, &mut stream(seed, &[])).unwrap();
        assert_eq!(cells, again);
        for cell in &cells {
            for a in 0..3 {
                // Unjittered origin (24 − 16) / 2 = 4, stride 8.
                let shift = cell.start[a] - (4 + 8 * cell.position[a] as isize);
                assert!((-2..=2).contains(&shift));
                shifts_seen.insert(shift);
            }
            assert_eq!(
                cell.volume.data(),
                extract(&sample.image, cell.start, [8, 8, 8], 0.0).data()
            );
        }
    }
    assert_eq!(shifts_seen.len(), 5, "every shift in [−2, 2] occurs");
    // Without jitter the grid draws nothing from the stream.
    let still = CpcGrid { jitter: 0, ..grid };
    let mut rng = stream(1, &[]);
    still.cells(&sample.image, &mut rng).unwrap();
    assert_eq!(rng.random::<u64>(), stream(1, &[]).random::<u64>());
}

#[test]
fn bad_grids_are_errors() {
    let volume = encoded([8, 8, 8], 1).image;
    for bad in [
        CpcGrid {
            overlap: 32,
            ..CpcGrid::default()
        },
        CpcGrid {
            grid: 0,
            ..CpcGrid::default()
        },
        CpcGrid {
            cell: [4, 0, 4],
            ..CpcGrid::default()
        },
    ] {
        let err = bad
            .cells(&volume, &mut stream(0, &[]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("CPC grid"), "{err}");
    }
}

/// `views` places the whole grid at a random position: every cell is the source voxels
/// at its recorded start (the volume is larger than the span, so nothing is padded),
/// cells are contiguous in raster order, and the position varies with the stream.
#[test]
fn grid_views_are_cells_of_a_randomly_placed_grid() {
    let sample = encoded([20, 18, 16], 1);
    let grid = CpcGrid {
        grid: 2,
        cell: [4, 5, 3],
        overlap: 1,
        jitter: 0,
        fill: -1.0,
    };
    assert_eq!(grid.span(), [7, 9, 5]);
    let mut origins = Vec::new();
    for seed in 0..8 {
        let views = grid
            .views(&sample, &Default::default(), &mut stream(seed, &[]))
            .unwrap();
        assert_eq!(views.len(), 8);
        let origin = views[0].start;
        for (n, view) in views.iter().enumerate() {
            let position = [n / 4, n / 2 % 2, n % 2];
            let expected_start: [isize; 3] =
                std::array::from_fn(|a| origin[a] + (position[a] * (grid.cell[a] - 1)) as isize);
            assert_eq!(view.start, expected_start, "cell {n}");
            assert_eq!(view.size, grid.cell);
            let source = extract(&sample.image, view.start, grid.cell, f32::NAN);
            assert_eq!(view.sample.image.data(), source.data(), "cell {n}");
            assert!(view.sample.label.is_none());
        }
        assert!(
            (0..3).all(|a| origin[a] >= 0 && origin[a] as usize + grid.span()[a] <= 20 - 2 * a)
        );
        origins.push(origin);
    }
    assert!(origins.iter().any(|o| *o != origins[0]), "{origins:?}");
}
