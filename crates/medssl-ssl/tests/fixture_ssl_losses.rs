//! Every case of `$MEDSSL_FIXTURES/ssl_losses/cases.json` reproduced from the stored
//! tensors: the loss against the exact float64 value, and the centres after the step.

use burn::tensor::{Device, Int, Tensor, TensorData};
use medssl_ssl::losses::contrastive::{Similarity, infonce, mocov3, ntxent};
use medssl_ssl::losses::cross_entropy;
use medssl_ssl::losses::distillation::Distill;
use medssl_ssl::losses::reconstruction::masked_l1;
use medssl_ssl::losses::smit::{SmitBatch, SmitLoss};
use medssl_test_support::{fixtures_dir, le_f32, le_i64};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

/// float32 against the float64 value: the fixture's float32 references stay within
/// 2.7e-7 of it; 2e-6 relative catches any wrong term, pair or normalisation.
const RELATIVE: f64 = 2e-6;

struct Case<'a> {
    spec: &'a Value,
    tensors: &'a SafeTensors<'a>,
    device: Device,
}

impl Case<'_> {
    fn name(&self) -> &str {
        self.spec["name"].as_str().unwrap()
    }

    fn param(&self, key: &str) -> f64 {
        self.spec["params"][key].as_f64().unwrap()
    }

    /// A stored tensor as f32 (U8 masks become 0/1) with its shape.
    fn floats(&self, tensor: &str) -> (Vec<f32>, Vec<usize>) {
        let key = self.spec["tensors"][tensor]["key"].as_str().unwrap();
        let view = self.tensors.tensor(key).unwrap();
        let values = match view.dtype() {
            Dtype::F32 => le_f32(view.data()),
            Dtype::U8 => view.data().iter().map(|&b| f32::from(b)).collect(),
            other => panic!("{}: {tensor} has dtype {other:?}", self.name()),
        };
        (values, view.shape().to_vec())
    }

    fn tensor<const D: usize>(&self, name: &str) -> Tensor<D> {
        let (values, shape) = self.floats(name);
        Tensor::from_data(TensorData::new(values, shape), &self.device)
    }

    fn labels(&self, name: &str) -> Tensor<1, Int> {
        let key = self.spec["tensors"][name]["key"].as_str().unwrap();
        let view = self.tensors.tensor(key).unwrap();
        assert_eq!(view.dtype(), Dtype::I64);
        let values = le_i64(view.data());
        let n = values.len();
        Tensor::from_data(TensorData::new(values, [n]), &self.device)
    }

    /// Slices `[n, ...]` into its `n` leading entries.
    fn split<const D: usize, const E: usize>(&self, name: &str) -> Vec<Tensor<E>> {
        let all = self.tensor::<D>(name);
        let n = all.dims()[0];
        (0..n)
            .map(|i| all.clone().narrow(0, i, 1).squeeze_dim::<E>(0))
            .collect()
    }

    fn expect_value(&self, got: Tensor<1>, key: &str) {
        let got = f64::from(got.into_scalar::<f32>());
        let want = self.spec[key].as_f64().unwrap();
        assert!(
            (got - want).abs() <= RELATIVE * want.abs().max(1.0),
            "{}: {key} {want}, got {got}",
            self.name()
        );
    }

    fn expect_values(&self, got: Tensor<1>, key: &str) {
        let got: Vec<f32> = got.into_data().try_to_vec().unwrap();
        let want: Vec<f64> = serde_json::from_value(self.spec[key].clone()).unwrap();
        assert_eq!(got.len(), want.len(), "{}: {key}", self.name());
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (f64::from(*g) - w).abs() <= RELATIVE * w.abs().max(1.0),
                "{}: {key} {want:?}, got {got:?}",
                self.name()
            );
        }
    }

    fn distill(&self, teacher_temp: f64) -> Distill {
        Distill {
            teacher_temp,
            student_temp: self.param("student_temp"),
            center_momentum: self.param("center_momentum"),
        }
    }

    fn check(&self) {
        let loss = self.spec["loss"].as_str().unwrap();
        match loss {
            "ntxent" => self.expect_value(
                ntxent(
                    self.tensor("z1"),
                    self.tensor("z2"),
                    self.param("temperature"),
                ),
                "value_f64",
            ),
            "mocov3" => self.expect_value(
                mocov3(
                    self.tensor("q1"),
                    self.tensor("q2"),
                    self.tensor("k1"),
                    self.tensor("k2"),
                    self.param("T"),
                ),
                "value_f64",
            ),
            "dino" => {
                let (value, center) = self.distill(self.param("teacher_temp")).dino(
                    &self.split::<3, 2>("teacher"),
                    &self.split::<3, 2>("student"),
                    self.tensor("center"),
                    None,
                );
                self.expect_value(value, "value_f64");
                self.expect_values(center, "center_after_f64");
            }
            "ibot_patch" => {
                let (value, center) = self.distill(self.param("teacher_temp")).ibot_patch(
                    self.tensor("teacher"),
                    self.tensor("student"),
                    self.tensor("mask"),
                    self.tensor("center"),
                );
                self.expect_value(value, "value_f64");
                self.expect_values(center, "center_after_official_ibot_f64");
            }
            "simmim_l1" => self.expect_value(
                masked_l1(
                    self.tensor("pred"),
                    self.tensor("target"),
                    self.tensor("mask"),
                    true,
                ),
                "value_f64",
            ),
            "smit_total" => self.check_smit(),
            "cpc_infonce" => {
                let similarity = match self.spec["params"]["similarity"].as_str().unwrap() {
                    "dot" => Similarity::Dot,
                    "cos" => Similarity::Cosine {
                        temperature: self.param("temperature"),
                    },
                    other => panic!("{}: similarity {other}", self.name()),
                };
                self.expect_value(
                    infonce(self.tensor("pred"), self.tensor("target"), similarity),
                    "value_f64",
                );
            }
            "rotation_ce" => self.expect_value(
                cross_entropy(self.tensor("logits"), self.labels("labels")),
                "value_f64",
            ),
            other => panic!("{}: no implementation for loss {other}", self.name()),
        }
    }

    fn check_smit(&self) {
        let loss = SmitLoss {
            patch_weight: self.param("w_patch"),
            cls_weight: self.param("w_cls"),
            recon_weight: self.param("w_rec"),
            student_temp: self.param("student_temp"),
            teacher_temp_cls: self.param("teacher_temp_cls"),
            teacher_temp_patch: self.param("teacher_temp_patch"),
            center_momentum: self.param("center_momentum"),
        };
        let token_mask = self.tensor::<4>("token_mask");
        let [rows, d, h, w] = token_mask.dims();
        let out = loss.forward(
            SmitBatch {
                teacher_cls: self.tensor("teacher_cls"),
                student_cls: self.tensor("student_cls"),
                teacher_patch: self.tensor("teacher_patch"),
                student_patch: self.tensor("student_patch"),
                token_mask: token_mask.reshape([rows, d * h * w]),
                reconstruction: self.tensor("x_rec"),
                image: self.tensor("img"),
                voxel_mask: self.tensor("mask"),
            },
            self.tensor("center_cls"),
            self.tensor("center_patch"),
        );
        let terms = &self.spec["terms_f64"];
        for (term, value) in [("patch", out.patch), ("cls", out.cls), ("recon", out.recon)] {
            let want = terms[term].as_f64().unwrap();
            let got = f64::from(value.into_scalar::<f32>());
            assert!(
                (got - want).abs() <= RELATIVE * want.abs().max(1.0),
                "{}: {term} {want}, got {got}",
                self.name()
            );
        }
        self.expect_value(out.total, "value_f64");
        self.expect_values(out.center_cls, "center_cls_after_f64");
        self.expect_values(out.center_patch, "center_patch_after_f64");
    }
}

#[test]
fn every_fixture_ssl_loss_case_matches_the_reference() {
    let dir = fixtures_dir().join("ssl_losses");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join("cases.safetensors")).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let cases = json["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for spec in cases {
        Case {
            spec,
            tensors: &tensors,
            device: Device::flex(),
        }
        .check();
    }
}
