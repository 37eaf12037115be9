//! Parameter identities across a restart. Burn's optimiser keeps its per-parameter
//! state (Adam moments) under each parameter's `ParamId`, which a freshly built network
//! draws anew; a resumed run must give the restored network the ids the optimiser
//! state was saved under, matched by module path.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

use crate::error::StateError;

/// Each float parameter's module path (`swin_vit.layers1.0.blocks.0.attn.qkv.weight`)
/// and id.
pub fn param_ids<M: Module>(model: &M) -> BTreeMap<String, u64> {
    let mut visitor = Collect::default();
    model.visit(&mut visitor);
    visitor.ids
}

/// `model` with the ids of `ids` (by path); fails naming a path `ids` lacks.
pub fn with_param_ids<M: Module>(model: M, ids: &BTreeMap<String, u64>) -> Result<M, StateError> {
    let mut mapper = Assign {
        ids,
        path: Vec::new(),
        missing: None,
    };
    let model = model.map(&mut mapper);
    match mapper.missing {
        Some(path) => Err(StateError::MissingParamId { path }),
        None => Ok(model),
    }
}

#[derive(Default)]
struct Collect {
    ids: BTreeMap<String, u64>,
    path: Vec<String>,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.ids.insert(self.path.join("."), param.id.val());
    }
}

struct Assign<'a> {
    ids: &'a BTreeMap<String, u64>,
    path: Vec<String>,
    missing: Option<String>,
}

impl ModuleMapper for Assign<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, mut param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let path = self.path.join(".");
        match self.ids.get(&path) {
            Some(&id) => param.id = ParamId::from(id),
            None => {
                self.missing.get_or_insert(path);
            }
        }
        param
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use medssl_model::{SwinUnetr, SwinUnetrConfig};

    #[test]
    fn ids_move_to_a_fresh_network_by_path() {
        let config = SwinUnetrConfig::new(1, 2).with_feature_size(12);
        let original = SwinUnetr::new(&config, &Device::flex()).unwrap();
        let ids = param_ids(&original);
        struct Count(usize);
        impl ModuleVisitor for Count {
            fn visit_float<const D: usize>(&mut self, _: &Param<Tensor<D>>) {
                self.0 += 1;
            }
        }
        let mut count = Count(0);
        original.visit(&mut count);
        assert_eq!(ids.len(), count.0, "one path per parameter");
        assert!(
            ids.contains_key("swin_vit.patch_embed.proj.weight"),
            "{:?}",
            ids.keys().next()
        );
        let fresh = SwinUnetr::new(&config, &Device::flex()).unwrap();
        assert_ne!(param_ids(&fresh), ids);
        let fresh = with_param_ids(fresh, &ids).unwrap();
        assert_eq!(param_ids(&fresh), ids);
        let mut partial = ids.clone();
        partial.remove("out.conv.conv.bias");
        let err = with_param_ids(fresh, &partial).err().unwrap();
        assert!(
            matches!(&err, StateError::MissingParamId { path } if path == "out.conv.conv.bias"),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "no saved parameter id for out.conv.conv.bias"
        );
    }
}
