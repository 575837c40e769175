//! Byte-level tests against the real `sluice` binary: golden request →
//! response pairs, and hostile input after which the broker still serves.

mod cli;
mod golden;
mod groups;
mod harness;
mod hostile;
mod idempotence;
mod serving;
mod transactions;
