//! The error codes a response carries, wherever they sit in it, for the
//! per-API error counters (each API's are declared in the protocol registry).

pub trait ErrorCodes {
    /// Every non-zero error code in the response.
    fn error_codes(&self) -> Vec<i16>;
}

/// Kafka's name for an error code, e.g. UNKNOWN_TOPIC_OR_PARTITION.
pub fn error_name(code: i16) -> String {
    let Some(e) = kafka_protocol::ResponseError::try_from_code(code) else {
        return "NONE".into();
    };
    let camel = format!("{e:?}");
    if camel.starts_with("Unknown(") {
        return format!("CODE_{code}");
    }
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_error_names() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(29), "TOPIC_AUTHORIZATION_FAILED");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(30000), "CODE_30000");
    }
}
