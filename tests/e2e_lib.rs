//! The end-to-end tests' library: the shared test kit ([`distarch_testkit`]), under
//! the name the e2e tests import it by.
pub use distarch_testkit::*;
