//! SASL GSSAPI (Kerberos V5, RFC 4752) on the server side, as Java's
//! GssKrb5Server runs it for Kafka: GSS context tokens until the context is
//! established, then the offer of security layers (only "none": Kafka
//! authenticates and does not wrap traffic), the client's wrapped choice, and
//! the authenticated Kerberos principal, which
//! `sasl.kerberos.principal.to.local.rules` turn into a short name.

mod context;
pub mod ffi;

use super::kerberos_rules::KerberosShortNamer;
pub use context::Acceptor;
use context::SecurityContext;

/// RFC 4752: the security layers a server offers; bit 1 is "no security layer".
const NO_SECURITY_LAYER: u8 = 0x01;
/// The largest message the server would take with a layer (Java's default).
const MAX_BUFFER: u32 = 65536;

/// The listener's Kerberos identity and how principals map to users.
pub struct Kerberos {
    pub acceptor: Acceptor,
    pub namer: KerberosShortNamer,
}

enum State {
    Accepting,
    /// The context is up; the client's next (empty) token asks for the layers.
    Established {
        peer: String,
    },
    OfferedLayers {
        peer: String,
    },
    Over,
}

pub struct GssapiExchange {
    context: SecurityContext,
    state: State,
}

/// One step: a token to send back, or done as this short name.
pub enum GssStep {
    Continue(Vec<u8>),
    Done { short_name: String, peer: String },
}

impl GssapiExchange {
    pub fn start() -> GssapiExchange {
        GssapiExchange {
            context: SecurityContext::new(),
            state: State::Accepting,
        }
    }

    /// Why a step failed is for the log only: the client hears Kafka's generic words.
    pub fn step(&mut self, kerberos: &Kerberos, token: &[u8]) -> Result<GssStep, String> {
        match std::mem::replace(&mut self.state, State::Over) {
            State::Accepting => {
                let accepted = self.context.accept(&kerberos.acceptor, token)?;
                if let Some(peer) = accepted.peer {
                    self.state = State::Established { peer };
                } else {
                    self.state = State::Accepting;
                }
                Ok(GssStep::Continue(accepted.token))
            }
            State::Established { peer } => {
                let [_, a, b, c] = MAX_BUFFER.to_be_bytes();
                let offer = self.context.wrap(&[NO_SECURITY_LAYER, a, b, c])?;
                self.state = State::OfferedLayers { peer };
                Ok(GssStep::Continue(offer))
            }
            State::OfferedLayers { peer } => {
                let choice = self.context.unwrap(token)?;
                if choice.len() < 4 {
                    return Err("the client's security layer choice is too short".into());
                }
                if choice[0] & NO_SECURITY_LAYER == 0 {
                    return Err(format!(
                        "the client chose a security layer not offered ({:#04x})",
                        choice[0]
                    ));
                }
                // Kafka authorizes the authenticated name whatever authzid the client names.
                let short_name = kerberos.namer.short_name(&peer)?;
                Ok(GssStep::Done { short_name, peer })
            }
            State::Over => Err("the GSSAPI exchange is over".into()),
        }
    }
}

/// `default_realm` of a krb5.conf (`KRB5_CONFIG`, else /etc/krb5.conf), as
/// Kafka's KerberosName takes it from the JVM's Kerberos configuration.
pub fn default_realm() -> Option<String> {
    let path = std::env::var("KRB5_CONFIG")
        .ok()
        .and_then(|p| p.split(':').next().map(str::to_string))
        .unwrap_or_else(|| "/etc/krb5.conf".to_string());
    let text = std::fs::read_to_string(path).ok()?;
    let mut in_libdefaults = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_libdefaults = line == "[libdefaults]";
        } else if in_libdefaults {
            if let Some((key, value)) = line.split_once('=') {
                if key.trim() == "default_realm" {
                    return Some(value.trim().to_string());
                }
            }
        }
    }
    None
}
