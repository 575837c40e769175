//! `ProducerIdManager`: hands out producer ids from blocks the controller
//! reserves (Kafka's RPCProducerIdManager). A block is durable in the
//! metadata log before any id in it is used, so ids are never reused.

use crate::metadata::Controller;
use kafka_protocol::ResponseError as E;
use std::sync::Arc;
use tracing::warn;

pub struct ProducerIdManager {
    controller: Arc<Controller>,
    /// The current block: (next id, end).
    block: tokio::sync::Mutex<(i64, i64)>,
}

impl ProducerIdManager {
    pub fn new(controller: Arc<Controller>) -> ProducerIdManager {
        ProducerIdManager {
            controller,
            block: tokio::sync::Mutex::new((0, 0)),
        }
    }

    /// The next unused producer id.
    pub async fn next(&self) -> Result<i64, i16> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            let (first, count) = self.controller.allocate_producer_ids().await.map_err(|e| {
                warn!(error = %e, "could not reserve producer ids");
                E::KafkaStorageError.code()
            })?;
            *block = (first, first + count);
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }
}
