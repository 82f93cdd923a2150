//! Panic containment: one request, one event or one peer may fail, never the gateway.
//!
//! A panic is always our bug (or a library's), but it must cost no more than the one
//! request or peer that met it: the Janus core answers that request with an error, the
//! media engine closes that peer, and everything else goes on. Locks shared by the
//! control side recover from poisoning instead of spreading the panic to every later
//! request ([`lock`]).

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Runs `f`; a panic becomes `Err` with the panic's message.
///
/// `AssertUnwindSafe`: callers hold state that a panic may leave half-updated; each
/// caller says why that state stays usable (a refused request, a peer dropped).
pub(crate) fn contain<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(p.as_ref()).to_owned())
}

/// The text a panic carried (`panic!("..")` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// Locks `m`, taking the data even if a thread panicked while holding it: every
/// user of these locks contains its own panics, so the data is never left mid-update
/// by more than the one failed request.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_message() {
        assert_eq!(contain(|| 7), Ok(7));
        let e = contain(|| -> u8 { panic!("boom {}", 1) }).unwrap_err();
        assert_eq!(e, "boom 1");
        let e = contain(|| "é"[..1].len()).unwrap_err();
        assert!(e.contains("char boundary"), "{e}");
    }

    #[test]
    fn a_poisoned_lock_still_opens() {
        let m = Mutex::new(1);
        let _ = contain(|| {
            let _g = m.lock().unwrap();
            panic!("while holding");
        });
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }
}
