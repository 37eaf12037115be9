//! PyTorch checkpoints as real training code saves them (written by
//! `benches/parity/make_pt_checkpoints.py` with torch): wrappers, prefixes, encoder-only
//! layouts and the legacy format all read to the same MONAI-named tensors.

use std::path::PathBuf;

use medssl_model::foreign::{Checkpoint, infer_architecture};
use medssl_test_support::test_crate_dir;

fn data(name: &str) -> PathBuf {
    test_crate_dir().join("tests/data").join(name)
}

#[test]
fn wrapped_and_prefixed_state_dicts_read_like_safetensors() {
    let reference = Checkpoint::read(&data("plain.safetensors")).unwrap();
    assert_eq!(reference.tensors.len(), 8);
    for (file, wrapper) in [
        ("plain.pt", None),
        ("state_dict_module.pt", Some("state_dict")),
        ("smit_student_teacher.pth", Some("student")),
    ] {
        let checkpoint = Checkpoint::read(&data(file)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(checkpoint.wrapper.as_deref(), wrapper, "{file}");
        assert_eq!(checkpoint.tensors, reference.tensors, "{file}");
        let arch = infer_architecture(&checkpoint.shapes()).unwrap();
        assert_eq!(arch.feature_size, 12);
        assert_eq!(arch.depths, [1, 2, 1, 1]);
        assert_eq!(arch.num_heads, [1, 2, 3, 4]);
        assert_eq!(arch.window_size, 2);
        assert_eq!(arch.out_channels, Some(2));
    }
}

#[test]
fn encoder_only_legacy_checkpoint_maps_under_swin_vit() {
    let checkpoint = Checkpoint::read(&data("model_swinvit_legacy.pt")).unwrap();
    assert_eq!(
        checkpoint.dropped,
        vec!["module.rotation_head.weight".to_string()]
    );
    let reference = Checkpoint::read(&data("plain.safetensors")).unwrap();
    for (name, tensor) in &checkpoint.tensors {
        assert!(name.starts_with("swinViT."), "{name}");
        assert_eq!(&reference.tensors[name], tensor, "{name}");
    }
    assert_eq!(checkpoint.tensors.len(), 6);
    let arch = infer_architecture(&checkpoint.shapes()).unwrap();
    assert_eq!(arch.out_channels, None);
}

#[test]
fn a_pickle_that_is_not_a_state_dict_is_refused() {
    let err = Checkpoint::read(&data("list.pt")).unwrap_err().to_string();
    assert!(
        err.contains("list.pt") && err.contains("not a PyTorch state dict"),
        "{err}"
    );
}
