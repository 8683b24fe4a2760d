//! The recorder's storage side as a library: the metadata store and its HTTP API, the
//! uploader and storage backends, the merge of Pro legs, retention, the reconciler, alarms.
//! The `recorder-daemon` binary (src/main.rs) is its command line; the integration tests and
//! the fuzz targets link this library.

pub mod alarms;
pub mod api;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod bench_azure;
pub mod config;
pub mod media;
pub mod merge;
pub mod model;
pub mod rbac;
pub mod reconcile;
pub mod retention;
pub mod storage;
pub mod store;
pub mod upload;
pub mod verify;
