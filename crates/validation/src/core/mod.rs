//! Rules of the core (`v1`) kinds.

pub mod defaults;
pub mod pod;
pub mod podspec;
pub mod resources;
pub mod service;
pub mod simple;
pub mod storage;
pub mod volumes;
