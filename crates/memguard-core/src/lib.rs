//! memguard's V8-free half: configuration, bundle files, the manifest and the
//! background writer thread. Nothing here links against Node or V8, so all of
//! it is tested with plain `cargo test`.

pub mod afford;
pub mod bundle;
pub mod config;
pub mod crashes;
pub mod dirfd;
pub mod disk;
pub mod gzmember;
pub mod heaplimit;
pub mod heapprofile;
pub mod history;
pub mod lastaffordable;
pub mod leak;
pub mod log;
pub mod manifest;
pub mod metrics;
pub mod printable;
pub mod procmem;
pub mod recorder;
pub mod segments;
pub mod selfcost;
pub mod sourcemaps;
pub mod upload;
pub mod watchdog;
pub mod writer;
