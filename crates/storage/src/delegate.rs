//! `delegate!`: a storage trait implemented one line per method, for the implementations
//! that pass each call on (to the database in a transaction or not, to an inner storage).

/// Implements `$trait` for `$ty`: the items in the braces as they are (the methods with a body
/// of their own), then one method per line after them.
///
/// A line `how fn name(arg: T, ...) -> R => target;` (`=> target` optional) becomes
/// `async fn name(&self, arg: T, ...) -> Result<R>` whose body is
/// `$body!(self, how, name(arg, ...), target)`: the macro `$body` says what each `how` does.
macro_rules! delegate {
    (
        impl $trait:ident for $ty:ident by $body:ident {
            $($own:item)*
        }
        $($how:ident fn $name:ident($($arg:ident: $aty:ty),* $(,)?) -> $ret:ty $(=> $to:path)?;)*
    ) => {
        #[async_trait::async_trait]
        impl $trait for $ty {
            $($own)*

            $(
                async fn $name(&self, $($arg: $aty),*) -> Result<$ret> {
                    $body!(self, $how, $name($($arg),*) $(, $to)?)
                }
            )*
        }
    };
}

pub(crate) use delegate;
