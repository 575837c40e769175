//! Listeners: bind each configured `NAME://host:port`, and accept connections
//! until shutdown, each with its listener's security (TLS, SASL).

use super::connection;
use super::connection_limits::Refused;
use super::tls;
use crate::auth::gssapi::{self, Acceptor, Kerberos};
use crate::auth::kerberos_rules::KerberosShortNamer;
use crate::auth::oauthbearer::validator::TokenValidator;
use crate::auth::principal_mapping::PrincipalMapper;
use crate::auth::sasl::Credentials;
use crate::auth::scram::ScramMechanism;
use crate::broker::Broker;
use crate::config::listener::ListenerSpec;
use crate::config::security::ListenerSecurity;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

pub struct BoundListener {
    pub name: String,
    pub sockets: Vec<TcpListener>,
    pub port: u16,
}

/// What every connection on one listener shares.
pub struct ListenerContext {
    pub name: String,
    pub security: ListenerSecurity,
    pub tls: Option<TlsAcceptor>,
    pub principal_mapper: Option<PrincipalMapper>,
    pub credentials: Arc<dyn Credentials>,
    /// One of `controller.listener.names`: the quorum's frames are served here.
    pub is_controller: bool,
}

/// SASL credentials: SCRAM from the cluster's store, PLAIN from the
/// listener's JAAS configuration.
struct ListenerCredentials {
    broker: Arc<Broker>,
    plain: HashMap<String, String>,
    bearer: Option<Arc<TokenValidator>>,
    kerberos: Option<Arc<Kerberos>>,
}

impl Credentials for ListenerCredentials {
    fn scram(&self, user: &str, mechanism: ScramMechanism) -> Option<crate::auth::scram::ScramCredential> {
        self.broker.image().scram_credential(user, mechanism).cloned()
    }
    fn plain_password(&self, user: &str) -> Option<String> {
        self.plain.get(user).cloned()
    }
    fn bearer(&self) -> Option<Arc<TokenValidator>> {
        self.bearer.clone()
    }
    fn kerberos(&self) -> Option<Arc<Kerberos>> {
        self.kerberos.clone()
    }
    fn token(&self, token_id: &str, mechanism: ScramMechanism) -> Option<crate::auth::sasl::TokenLogin> {
        let secret = self.broker.config.security.delegation_tokens.secret_key.as_deref()?;
        let image = self.broker.image();
        let token = image.delegation_tokens.get(token_id)?;
        // Kafka sweeps expired tokens; one not swept yet is no login either.
        if token.expired(crate::storage::now_ms()) {
            return None;
        }
        Some(crate::auth::sasl::TokenLogin {
            owner: token.owner.clone(),
            credential: crate::auth::delegation_token::token_credential(secret, token_id, mechanism),
        })
    }
}

impl ListenerContext {
    /// Builds a listener's TLS acceptor and SASL credentials (starting its
    /// OAUTHBEARER validator, which may fetch keys); errors name what is wrong.
    pub async fn start(
        name: &str,
        security: &ListenerSecurity,
        broker: Arc<Broker>,
    ) -> Result<ListenerContext, String> {
        let bearer = match security.sasl.as_ref().and_then(|s| s.oauthbearer.as_ref()) {
            Some(settings) => Some(Arc::new(
                TokenValidator::start(settings, broker.shutdown.clone())
                    .await
                    .map_err(|e| format!("listener {name}: {e}"))?,
            )),
            None => None,
        };
        let kerberos = match security.sasl.as_ref().and_then(|s| s.gssapi.as_ref()) {
            Some(settings) => Some(Arc::new(
                kerberos(settings).map_err(|e| format!("listener {name}: {e}"))?,
            )),
            None => None,
        };
        Self::new(name, security, broker, bearer, kerberos)
    }

    fn new(
        name: &str,
        security: &ListenerSecurity,
        broker: Arc<Broker>,
        bearer: Option<Arc<TokenValidator>>,
        kerberos: Option<Arc<Kerberos>>,
    ) -> Result<ListenerContext, String> {
        let tls = match &security.tls {
            Some(settings) => Some(tls::acceptor(settings).map_err(|e| format!("listener {name}: {e}"))?),
            None => None,
        };
        let principal_mapper = match &security.tls {
            Some(settings) => Some(PrincipalMapper::parse(&settings.principal_mapping_rules)?),
            None => None,
        };
        let plain = security
            .sasl
            .as_ref()
            .map(|s| s.plain_users.clone())
            .unwrap_or_default();
        let is_controller = broker
            .config
            .cluster
            .controller_listener_names
            .iter()
            .any(|n| n == name);
        Ok(ListenerContext {
            is_controller,
            name: name.to_string(),
            security: security.clone(),
            tls,
            principal_mapper,
            credentials: Arc::new(ListenerCredentials {
                broker,
                plain,
                bearer,
                kerberos,
            }),
        })
    }
}

/// The broker's Kerberos key (from its keytab) and the principal rules; the
/// default realm is krb5.conf's, else the broker's own principal's.
fn kerberos(settings: &crate::config::security::GssapiSettings) -> Result<Kerberos, String> {
    let own_realm = crate::auth::kerberos_rules::parse_name(&settings.principal)?
        .realm
        .map(str::to_string);
    let realm = gssapi::default_realm().or(own_realm).unwrap_or_default();
    Ok(Kerberos {
        acceptor: Acceptor::new(&settings.keytab, &settings.principal)?,
        namer: KerberosShortNamer::parse(&realm, &settings.principal_to_local_rules)?,
    })
}

/// Binds every address the host resolves to (all interfaces when the host is
/// empty). Port 0 takes a free port, shared by all addresses of the listener.
pub async fn bind(spec: &ListenerSpec) -> io::Result<BoundListener> {
    let host = if spec.host.is_empty() {
        "0.0.0.0"
    } else {
        spec.host.as_str()
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, spec.port)).await?.collect();
    let mut sockets = Vec::new();
    let mut port = spec.port;
    let mut first_error = None;
    for mut addr in addrs {
        if port != 0 {
            addr.set_port(port);
        }
        match TcpListener::bind(addr).await {
            Ok(l) => {
                port = l.local_addr()?.port();
                sockets.push(l);
            }
            Err(e) => {
                debug!(%addr, error = %e, "could not bind one address of a listener");
                first_error.get_or_insert(e);
            }
        }
    }
    if sockets.is_empty() {
        return Err(first_error.unwrap_or_else(|| io::Error::other(format!("{} resolves to no address", spec.host))));
    }
    Ok(BoundListener {
        name: spec.name.clone(),
        sockets,
        port,
    })
}

/// Kafka's protected listener: the inter-broker one, when there are others,
/// is not held back by `max.connections`.
fn is_protected(name: &str, config: &crate::config::BrokerConfig) -> bool {
    let inter_broker = config
        .cluster
        .inter_broker_listener_name
        .as_deref()
        .unwrap_or("PLAINTEXT");
    let controllers = &config.cluster.controller_listener_names;
    let clients = config
        .listeners
        .iter()
        .filter(|l| !controllers.contains(&l.name))
        .count();
    name == inter_broker && clients > 1
}

/// Accepts connections on one socket until the broker shuts down.
pub async fn accept_loop(
    socket: TcpListener,
    listener: Arc<ListenerContext>,
    broker: Arc<Broker>,
    connections: TaskTracker,
) {
    let protected = is_protected(&listener.name, &broker.config);
    loop {
        let accepted = tokio::select! {
            _ = broker.shutdown.cancelled() => break,
            accepted = socket.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) if listener.is_controller => {
                connections.spawn(connection::serve(stream, peer, listener.clone(), broker.clone(), None));
            }
            Ok((stream, peer)) => {
                // Kafka's acceptor blocks here while the listener or the
                // broker is full: further clients wait in the backlog.
                let admitted = tokio::select! {
                    _ = broker.shutdown.cancelled() => break,
                    admitted = broker.connections.admit(&listener.name, peer.ip(), protected, || broker.connection_limits()) => admitted,
                };
                match admitted {
                    Ok(slot) => {
                        connections.spawn(connection::serve(
                            stream,
                            peer,
                            listener.clone(),
                            broker.clone(),
                            Some(slot),
                        ));
                    }
                    Err(Refused::TooManyFromAddress { max }) => {
                        info!(
                            listener = %listener.name,
                            "Rejected connection from {}, address already has the configured maximum of {max} connections.",
                            peer.ip()
                        );
                        metrics::counter!("sluice_connections_rejected_total", "listener" => listener.name.clone(), "reason" => "per_ip")
                            .increment(1);
                        drop(stream);
                    }
                    Err(Refused::Throttled { ms }) => {
                        debug!(listener = %listener.name, "Throttling {} for {ms} ms", peer.ip());
                        metrics::counter!("sluice_connections_rejected_total", "listener" => listener.name.clone(), "reason" => "ip_rate")
                            .increment(1);
                        // Closed once the wait is over, as Kafka does, so the
                        // client does not reconnect at once; the acceptor goes on.
                        tokio::spawn(async move {
                            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                            drop(stream);
                        });
                    }
                }
            }
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                warn!(listener = %listener.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
