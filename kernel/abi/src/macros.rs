//! `code_enum!`: a `#[repr(u64)]` enum with stable numbers, a complete `ALL` list, a `name()`
//! and a checked `TryFrom<u64>`.
//!
//! Written as a macro so that the list of variants exists exactly once: `ALL`, `name()` and the
//! decoder cannot drift from the enum (the tests iterate `ALL`, and the documentation test checks
//! `name()` against the docs).

macro_rules! code_enum {
    (
        $(#[$meta:meta])*
        pub enum $ty:ident : invalid = |$raw:ident| -> $err_ty:ty { $err:expr } {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $num:literal => $name:literal,
            )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u64)]
        pub enum $ty {
            $(
                $(#[$vmeta])*
                $variant = $num,
            )+
        }

        impl $ty {
            /// Every variant, in numeric order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The stable number of this variant (what crosses the user/kernel boundary).
            pub const fn raw(self) -> u64 {
                self as u64
            }

            /// The name used for this variant in the documentation and in logs.
            pub const fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }

        impl TryFrom<u64> for $ty {
            type Error = $err_ty;

            fn try_from($raw: u64) -> Result<Self, Self::Error> {
                match $raw {
                    $($num => Ok($ty::$variant),)+
                    _ => Err($err),
                }
            }
        }

        impl From<$ty> for u64 {
            fn from(v: $ty) -> u64 {
                v.raw()
            }
        }
    };
}
