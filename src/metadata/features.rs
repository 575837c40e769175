//! Feature levels (KIP-584): what this node supports and what the cluster
//! has finalized, kept in the metadata as FeatureLevel records. Only the
//! features whose levels Sluice honours are listed: `transaction.version`
//! (clients end transactions with a new epoch from level 2, KIP-890), and
//! `group.version`, `share.version` and `streams.version` (at level 0 the
//! consumer, share and streams group protocols are off). A cluster that never
//! changed a level has the default, as a fresh Kafka 4.4 cluster has it.

use super::image::MetadataImage;

pub const TRANSACTION_VERSION: &str = "transaction.version";
pub const GROUP_VERSION: &str = "group.version";
pub const SHARE_VERSION: &str = "share.version";
pub const STREAMS_VERSION: &str = "streams.version";

pub struct Feature {
    pub name: &'static str,
    pub min: i16,
    pub max: i16,
    /// The level of a cluster that never changed it.
    pub default: i16,
}

pub const SUPPORTED: &[Feature] = &[
    Feature {
        name: GROUP_VERSION,
        min: 0,
        max: 1,
        default: 1,
    },
    Feature {
        name: SHARE_VERSION,
        min: 0,
        max: 2,
        default: 2,
    },
    Feature {
        name: STREAMS_VERSION,
        min: 0,
        max: 1,
        default: 1,
    },
    Feature {
        name: TRANSACTION_VERSION,
        min: 0,
        max: 2,
        default: 2,
    },
];

fn supported(name: &str) -> Option<&'static Feature> {
    SUPPORTED.iter().find(|f| f.name == name)
}

/// The finalized level of a feature (0: off, or not a feature Sluice knows).
pub fn level(image: &MetadataImage, name: &str) -> i16 {
    match image.features.get(name) {
        Some(level) => *level,
        None => supported(name).map_or(0, |f| f.default),
    }
}

/// The finalized features, as ApiVersions lists them (level 0 is left out).
pub fn finalized(image: &MetadataImage) -> Vec<(&'static str, i16)> {
    SUPPORTED
        .iter()
        .map(|f| (f.name, level(image, f.name)))
        .filter(|(_, l)| *l > 0)
        .collect()
}

/// How UpdateFeatures may move a level (its UpgradeType; v0's
/// AllowDowngrade true is a safe downgrade).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeType {
    Upgrade,
    SafeDowngrade,
    UnsafeDowngrade,
}

impl UpgradeType {
    pub fn from_code(code: i8) -> Option<UpgradeType> {
        match code {
            1 => Some(UpgradeType::Upgrade),
            2 => Some(UpgradeType::SafeDowngrade),
            3 => Some(UpgradeType::UnsafeDowngrade),
            _ => None,
        }
    }
}

/// Whether `name` may go to `new_level`, with Kafka's message when not
/// (`node`: the controller answering).
pub fn check_update(
    image: &MetadataImage,
    node: i32,
    name: &str,
    new_level: i16,
    how: UpgradeType,
) -> Result<(), String> {
    let invalid = |why: &str| format!("Invalid update version {new_level} for feature {name}. {why}");
    if new_level < 0 {
        return Err(invalid("A feature version cannot be less than 0."));
    }
    let Some(feature) = supported(name) else {
        return Err(invalid(&format!(
            "Local controller {node} does not support this feature."
        )));
    };
    if new_level < feature.min || new_level > feature.max {
        return Err(invalid(&format!(
            "Local controller {node} only supports versions {}-{}",
            feature.min, feature.max
        )));
    }
    let current = level(image, name);
    if new_level < current && how == UpgradeType::Upgrade {
        return Err(invalid(
            "Can't downgrade the version of this feature without setting the upgrade type to either safe or unsafe downgrade.",
        ));
    }
    if new_level > current && how != UpgradeType::Upgrade {
        return Err(invalid("Can't downgrade to a newer version."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn levels_default_and_move_as_asked() {
        let mut image = MetadataImage::default();
        assert_eq!(level(&image, TRANSACTION_VERSION), 2);
        assert_eq!(
            finalized(&image),
            vec![
                (GROUP_VERSION, 1),
                (SHARE_VERSION, 2),
                (STREAMS_VERSION, 1),
                (TRANSACTION_VERSION, 2)
            ]
        );
        assert!(check_update(&image, 1, TRANSACTION_VERSION, 1, UpgradeType::Upgrade).is_err());
        assert!(check_update(&image, 1, TRANSACTION_VERSION, 1, UpgradeType::SafeDowngrade).is_ok());
        assert!(check_update(&image, 1, TRANSACTION_VERSION, 3, UpgradeType::Upgrade).is_err());
        assert!(check_update(&image, 1, "no.such.version", 1, UpgradeType::Upgrade).is_err());
        Arc::make_mut(&mut image.features).insert(TRANSACTION_VERSION.into(), 0);
        assert_eq!(level(&image, TRANSACTION_VERSION), 0);
        assert!(!finalized(&image).iter().any(|(name, _)| *name == TRANSACTION_VERSION));
        assert!(check_update(&image, 1, TRANSACTION_VERSION, 2, UpgradeType::Upgrade).is_ok());
    }
}
