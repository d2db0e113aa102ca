//! The events probe: do the S3 event notifications of the canaries' writes and deletes reach
//! the application's pipeline (an SQS queue), exactly once, and how late.
//!
//! Every bucket change of a target with the probe goes through its [`Ledger`] (the bucket
//! tells it before sending and once answered, see [`crate::s3::ChangeObserver`]); one
//! [`consumer`] per queue receives the notifications, hands each to the ledger of the target
//! whose key space it is about, deletes what it read and leaves every other message on the
//! queue. No S3 request is added.

pub mod consumer;
pub mod ledger;
pub mod message;

pub use consumer::Consumer;
pub use ledger::{Ledger, Received};
