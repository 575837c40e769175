//! Glue over the `kafka-protocol` crate: request header parsing, the table of
//! served API versions, response framing, and the dispatch of a request to
//! its handler.

pub mod dispatch;
pub mod error_response;
pub mod registry;
pub mod request;
pub mod response;
pub mod stand_in;
pub mod versions;

pub use dispatch::dispatch;
pub use request::{parse_request, ParsedRequest, RequestError};
pub use response::ResponseFrame;
