//! fleetload's wire contract, generated from `fleetload.proto` at build time.
//!
//! Only the coordinator's and the worker's edges use these types; they convert to the
//! domain types of `fleetload-common` at once (its `wire` module), with a typed error
//! for every field that is out of bounds.
#![allow(clippy::all, missing_docs)]

/// Version of the control protocol. A coordinator refuses workers of another version
/// with a message naming both. 2: session outages and stalls travel as one kind of
/// message, `WorkerEvent`.
pub const PROTOCOL_VERSION: u32 = 2;

/// Generated messages and the `Fleet` service.
pub mod v1 {
    tonic::include_proto!("fleetload.v1");
}
