//! The pretraining methods, one file each, and the list `medssl methods` prints.

mod checks;
#[cfg(test)]
mod test_support;

use crate::error::SslError;
use crate::pretext::{Method, MethodInfo};

/// The registry: declares each method's module, re-exports its [`Method`] type, and
/// generates [`METHODS`] and [`visit`] from the one list, so that a method is added by
/// its file plus one line here.
macro_rules! register {
    ($($module:ident :: $method:ident),+ $(,)?) => {
        $(
            pub mod $module;
            pub use $module::$method;
        )+

        /// Every registered method, in the order of the study's tables.
        pub const METHODS: &[MethodInfo] = &[$($method::INFO),+];

        /// Runs `visitor` with the method called `name`, or says which names exist.
        pub fn visit<V: MethodVisitor>(name: &str, visitor: V) -> Result<V::Output, SslError> {
            $(
                if name == $method::INFO.name {
                    return Ok(visitor.visit::<$method>());
                }
            )+
            Err(unknown(name))
        }
    };
}

register! {
    simclr::SimClrMethod,
    mocov3::MocoV3Method,
    cpc::CpcMethod,
    rotnet::RotNetMethod,
    swinunetr_ssl::SwinUnetrSslMethod,
    simmim::SimMimMethod,
    smit::SmitMethod,
    dino::DinoMethod,
    ibot::IbotMethod,
}

/// Something to do with a method chosen by name at run time (the command line's
/// `--method`): [`visit`] calls `visit::<M>()` with the method's type.
pub trait MethodVisitor {
    /// What the visit returns.
    type Output;
    /// Does the work with method `M`.
    fn visit<M: Method>(self) -> Self::Output;
}

/// The method called `name`, or an error listing the known names.
pub fn find(name: &str) -> Result<MethodInfo, SslError> {
    METHODS
        .iter()
        .copied()
        .find(|m| m.name == name)
        .ok_or_else(|| unknown(name))
}

/// The error for a name no registered method has, listing the names that exist.
fn unknown(name: &str) -> SslError {
    SslError::UnknownMethod {
        name: name.to_string(),
        known: METHODS.iter().map(|m| m.name).collect(),
    }
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
            assert_eq!(visit(info.name, Name).unwrap(), info.name);
        }
        let err = visit("simclrr", Name).unwrap_err();
        assert!(
            matches!(&err, SslError::UnknownMethod { name, .. } if name == "simclrr"),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("unknown method `simclrr`; known methods: simclr, ")
                && text.contains("simmim"),
            "{text}"
        );
    }
}
