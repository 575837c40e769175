//! Listener specs: `NAME://host:port`, as in Kafka's `listeners` and
//! `advertised.listeners`.

use super::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    pub name: String,
    /// Empty means every interface.
    pub host: String,
    pub port: u16,
}

impl ListenerSpec {
    pub fn url(&self) -> String {
        if self.host.contains(':') {
            format!("{}://[{}]:{}", self.name, self.host, self.port)
        } else {
            format!("{}://{}:{}", self.name, self.host, self.port)
        }
    }
}

/// Parses a comma-separated listener list.
pub fn parse_listeners(key: &str, value: &str) -> Result<Vec<ListenerSpec>, ConfigError> {
    let bad = |reason: &str| ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let mut out: Vec<ListenerSpec> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, rest) = item.split_once("://").ok_or_else(|| bad("expected NAME://host:port"))?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(bad("listener names are letters, digits, '_' and '-'"));
        }
        let (host, port) = if let Some(stripped) = rest.strip_prefix('[') {
            let (h, p) = stripped.split_once("]:").ok_or_else(|| bad("bad IPv6 address"))?;
            (h.to_string(), p)
        } else {
            let (h, p) = rest.rsplit_once(':').ok_or_else(|| bad("expected host:port"))?;
            (h.to_string(), p)
        };
        let port: u16 = port.parse().map_err(|_| bad("port is not a number in 0-65535"))?;
        let name = name.to_ascii_uppercase();
        if out.iter().any(|l| l.name == name) {
            return Err(bad("each listener name may appear once"));
        }
        out.push(ListenerSpec { name, host, port });
    }
    if out.is_empty() {
        return Err(bad("no listener given"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_listener_lists() {
        let l = parse_listeners(
            "listeners",
            "PLAINTEXT://localhost:9092, INTERNAL://:9093,EXT://[::1]:0",
        )
        .unwrap();
        assert_eq!(
            l[0],
            ListenerSpec {
                name: "PLAINTEXT".into(),
                host: "localhost".into(),
                port: 9092
            }
        );
        assert_eq!(l[1].host, "");
        assert_eq!(l[2].host, "::1");
        assert!(parse_listeners("listeners", "localhost:9092").is_err());
        assert!(parse_listeners("listeners", "PLAINTEXT://h:99999").is_err());
        assert!(parse_listeners("listeners", "A://h:1,A://h:2").is_err());
    }
}
