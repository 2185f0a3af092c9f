//! Strata: an embedded LSM key-value storage engine.

pub mod coding;
pub mod error;
pub mod filenames;
pub mod fs;
pub mod iter;
pub mod key;
pub mod options;
// modules added below by each component

pub use error::{Error, Result};
pub use options::{Durability, Options, WriteOptions};
