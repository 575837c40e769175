//! `MetadataCache`: the image this broker serves from. Handlers load it
//! without locking; the publisher swaps in each new image whole, after the
//! broker has acted on it (logs created, coordinators loaded).

use super::delta::MetadataChanges;
use super::image::MetadataImage;
use arc_swap::ArcSwap;
use std::sync::Arc;
use tokio::sync::watch;

/// A new image for the broker, and what changed since the previous one.
pub struct Publication {
    pub image: Arc<MetadataImage>,
    pub changes: MetadataChanges,
}

pub struct MetadataCache {
    image: ArcSwap<MetadataImage>,
    published: watch::Sender<i64>,
}

impl MetadataCache {
    pub fn new(image: Arc<MetadataImage>) -> MetadataCache {
        let offset = image.offset;
        MetadataCache {
            image: ArcSwap::new(image),
            published: watch::Sender::new(offset),
        }
    }

    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.load_full()
    }

    /// Makes `image` the one served, and tells whoever waits for its offset.
    pub fn publish(&self, image: Arc<MetadataImage>) {
        let offset = image.offset;
        self.image.store(image);
        self.published.send_replace(offset);
    }

    /// Watches the offset of the image served.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.published.subscribe()
    }
}
