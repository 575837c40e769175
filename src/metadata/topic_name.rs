//! Kafka's rules for topic names.

pub const MAX_NAME_LENGTH: usize = 249;

/// Why a name is not a legal topic name, in Kafka's words.
pub fn validate(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_NAME_LENGTH {
        return Err(format!(
            "Topic name is illegal, it can't be longer than {MAX_NAME_LENGTH} characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// '.' and '_' collide in metric names, so Kafka refuses names that differ only there.
pub fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

pub fn is_internal(name: &str) -> bool {
    name == "__consumer_offsets" || name == "__transaction_state" || name == "__share_group_state"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_rules() {
        assert!(validate("orders.v1_x-y").is_ok());
        assert!(validate("").is_err());
        assert!(validate("..").is_err());
        assert!(validate("bad/name").is_err());
        assert!(validate("with space").is_err());
        assert!(validate(&"a".repeat(250)).is_err());
        assert!(validate(&"a".repeat(249)).is_ok());
        assert_eq!(collision_key("a.b"), collision_key("a_b"));
    }
}
