//! The pretraining methods, one file each, and the list `medssl methods` prints.

mod checks;
pub mod cpc;
pub mod dino;
pub mod ibot;
pub mod mocov3;
pub mod rotnet;
pub mod simclr;
pub mod simmim;
pub mod smit;
pub mod swinunetr_ssl;
#[cfg(test)]
mod test_support;

pub use cpc::{Cpc, CpcMethod, CpcSettings};
pub use dino::{Dino, DinoMethod, DinoSettings};
pub use ibot::{Ibot, IbotMethod, IbotSettings};
pub use mocov3::{MocoV3, MocoV3Method, MocoV3Settings};
pub use rotnet::{RotNet, RotNetMethod, RotNetSettings};
pub use simclr::{SimClr, SimClrMethod, SimClrSettings};
pub use simmim::{SimMim, SimMimMethod, SimMimSettings};
pub use smit::{Smit, SmitMethod, SmitSettings};
pub use swinunetr_ssl::{SwinUnetrSsl, SwinUnetrSslMethod, SwinUnetrSslSettings};

use crate::pretext::{Method, MethodInfo};

/// Every method, in the order of the study's tables.
pub const METHODS: [MethodInfo; 9] = [
    SimClrMethod::INFO,
    MocoV3Method::INFO,
    CpcMethod::INFO,
    RotNetMethod::INFO,
    SwinUnetrSslMethod::INFO,
    SimMimMethod::INFO,
    SmitMethod::INFO,
    DinoMethod::INFO,
    IbotMethod::INFO,
];

/// Something to do with a method chosen by name at run time (the command line's
/// `--method`): [`visit`] calls `visit::<M>()` with the method's type.
pub trait MethodVisitor {
    /// What the visit returns.
    type Output;
    /// Does the work with method `M`.
    fn visit<M: Method>(self) -> Self::Output;
}

/// Runs `visitor` with the method called `name`, or says which names exist.
pub fn visit<V: MethodVisitor>(name: &str, visitor: V) -> Result<V::Output, String> {
    match name {
        "simclr" => Ok(visitor.visit::<SimClrMethod>()),
        "mocov3" => Ok(visitor.visit::<MocoV3Method>()),
        "cpc" => Ok(visitor.visit::<CpcMethod>()),
        "rotnet" => Ok(visitor.visit::<RotNetMethod>()),
        "swinunetr-ssl" => Ok(visitor.visit::<SwinUnetrSslMethod>()),
        "simmim" => Ok(visitor.visit::<SimMimMethod>()),
        "smit" => Ok(visitor.visit::<SmitMethod>()),
        "dino" => Ok(visitor.visit::<DinoMethod>()),
        "ibot" => Ok(visitor.visit::<IbotMethod>()),
        other => Err(find(other).err().unwrap_or_else(|| {
            format!("method `{other}` is listed but cannot be run by this build")
        })),
    }
}

/// The method called `name`, or an error listing the known names.
pub fn find(name: &str) -> Result<MethodInfo, String> {
    METHODS
        .iter()
        .copied()
        .find(|m| m.name == name)
        .ok_or_else(|| {
            format!(
                "unknown method `{name}`; known methods: {}",
                METHODS
                    .iter()
                    .map(|m| m.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Name;

    impl MethodVisitor for Name {
        type Output = &'static str;
        fn visit<M: Method>(self) -> &'static str {
            M::INFO.name
        }
    }

    #[test]
    fn every_listed_method_can_be_run_by_name() {
        for info in METHODS {
            assert_eq!(visit(info.name, Name), Ok(info.name));
        }
        let err = visit("simclrr", Name).unwrap_err();
        assert!(err.contains("simclrr") && err.contains("simmim"), "{err}");
    }
}
