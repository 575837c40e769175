//! `Broker`: what every handler shares — config, the metadata image and
//! controller, the hosted partitions, the coordinators, advertised
//! endpoints, the shutdown signal. `start` brings one up (`RunningBroker`),
//! `publisher` keeps it in step with the metadata, `housekeeping` runs the
//! logs' background work.

mod cluster;
pub mod forwarding;
mod housekeeping;
mod publisher;
pub mod quorum_service;
mod ready_line;
mod replication;
mod share_departures;
mod start;
mod token_sweeper;

pub use start::RunningBroker;

use crate::api::RequestContext;
use crate::auth::acl;
use crate::config::BrokerConfig;
use crate::group::GroupCoordinator;
use crate::metadata::{Controller, MetadataCache, MetadataImage};
use crate::replication::ReplicaManager;
use crate::txn::producer_ids::ProducerIdManager;
use crate::txn::{MarkerTargets, TransactionCoordinator};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Where clients are told to connect for one listener.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub listener: String,
    pub host: String,
    pub port: u16,
}

pub struct Broker {
    pub config: BrokerConfig,
    pub cluster_id: String,
    /// The metadata image this broker serves from.
    pub metadata: Arc<MetadataCache>,
    /// Where metadata changes are made.
    pub controller: Arc<Controller>,
    pub replicas: Arc<ReplicaManager>,
    pub producer_ids: Arc<ProducerIdManager>,
    pub groups: GroupCoordinator,
    pub txns: TransactionCoordinator,
    /// Share groups' share-partitions and sessions (KIP-932).
    pub shares: Arc<crate::share::ShareManager>,
    /// The share coordinator: share-partitions' durable state.
    pub share_states: crate::share::state::ShareStateCoordinator,
    pub endpoints: Vec<Endpoint>,
    pub quotas: crate::quota::QuotaEnforcer,
    /// Incremental fetch sessions (KIP-227).
    pub fetch_sessions: crate::fetch_session::FetchSessions,
    /// Open client connections, counted against `max.connections` and the like.
    pub connections: Arc<crate::server::connection_limits::ConnectionCounter>,
    /// `queued.max.request.bytes`, when set.
    pub request_memory: Option<Arc<crate::server::request_memory::RequestMemory>>,
    pub shutdown: CancellationToken,
    /// This process, as the controller tells a restart from a re-registration.
    pub incarnation_id: uuid::Uuid,
}

impl Broker {
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.metadata.image()
    }

    /// Whether the cluster has finalized transaction version 2 (KIP-890):
    /// only then do new requests add partitions and bump epochs as version 2.
    pub fn transaction_v2(&self) -> bool {
        let image = self.image();
        crate::metadata::features::level(&image, crate::metadata::features::TRANSACTION_VERSION) >= 2
    }

    /// Whether a feature is finalized at `level` or above (the group
    /// protocols are off at level 0 of their feature, as in Kafka).
    pub fn feature_at_least(&self, name: &str, level: i16) -> bool {
        crate::metadata::features::level(&self.image(), name) >= level
    }

    /// Broker configs changed at run time: (this broker's, every broker's).
    pub fn dynamic_broker_configs(
        &self,
    ) -> (
        std::collections::BTreeMap<String, String>,
        std::collections::BTreeMap<String, String>,
    ) {
        use crate::metadata::records::ConfigResource;
        let image = self.image();
        (
            image.configs_of(&ConfigResource::Broker(Some(self.node_id()))).clone(),
            image.configs_of(&ConfigResource::Broker(None)).clone(),
        )
    }

    /// The connection limits now: the static keys with the dynamic broker
    /// configs over them (this broker's, then every broker's), as Kafka
    /// reconfigures its ConnectionQuotas. A dynamic value that does not parse
    /// leaves the static limits.
    pub fn connection_limits(&self) -> crate::config::connection_limits::ConnectionLimitSettings {
        use crate::config::connection_limits::{is_connection_limit_key, ConnectionLimitSettings};
        let (own, every) = self.dynamic_broker_configs();
        let ip_quotas = self.image().client_quotas.clone();
        if !own.keys().chain(every.keys()).any(|k| is_connection_limit_key(k)) {
            return self.config.connection_limits.clone().with_ip_quotas(&ip_quotas);
        }
        let get = |k: &str| {
            own.get(k)
                .or_else(|| every.get(k))
                .or_else(|| self.config.properties.get(k))
                .map(|v| v.trim().to_string())
        };
        let names: Vec<String> = self.config.listeners.iter().map(|l| l.name.clone()).collect();
        match ConnectionLimitSettings::parse(&get, &names) {
            Ok(limits) => limits.with_ip_quotas(&ip_quotas),
            Err(e) => {
                tracing::warn!(error = %e, "dynamic connection limits ignored");
                self.config.connection_limits.clone().with_ip_quotas(&ip_quotas)
            }
        }
    }

    /// Where a transaction's markers are written.
    pub fn marker_targets(&self) -> MarkerTargets<'_> {
        MarkerTargets {
            replicas: &self.replicas,
            groups: &self.groups,
            metadata: &self.metadata,
            node_id: self.node_id(),
            clustered: self.controller.is_clustered(),
        }
    }

    /// How share-partitions' state is read and written (here or remotely).
    pub fn persister(&self) -> crate::share::persister::Persister<'_> {
        crate::share::persister::Persister {
            states: &self.share_states,
            metadata: &self.metadata,
            replicas: &self.replicas,
            node_id: self.node_id(),
            clustered: self.controller.is_clustered(),
        }
    }

    /// Whether the request's principal may do `operation` on the resource.
    /// Always true without an authorizer (`authorizer.class.name` unset).
    pub fn authorize(&self, ctx: &RequestContext, operation: i8, resource_type: i8, name: &str) -> bool {
        let settings = &self.config.security.authorizer;
        if !settings.enabled {
            return true;
        }
        let acls = self.image().acls.clone();
        let host = ctx.peer.ip().to_string();
        acl::AclPolicy {
            acls: &acls,
            super_users: &settings.super_users,
            allow_everyone_if_no_acl_found: settings.allow_everyone_if_no_acl_found,
        }
        .authorize(&acl::AclCheck {
            principal: &ctx.principal,
            host: &host,
            operation,
            resource_type,
            name,
        })
    }

    pub fn authorize_cluster(&self, ctx: &RequestContext, operation: i8) -> bool {
        self.authorize(ctx, operation, acl::resource::CLUSTER, acl::CLUSTER_NAME)
    }

    /// Whether the principal may do `operation` on at least one resource of
    /// the type (Kafka's authorizeByResourceType, for idempotent producers).
    pub fn authorize_any(&self, ctx: &RequestContext, operation: i8, resource_type: i8) -> bool {
        let settings = &self.config.security.authorizer;
        if !settings.enabled || settings.super_users.iter().any(|s| **s == *ctx.principal) {
            return true;
        }
        let acls = self.image().acls.clone();
        let host = ctx.peer.ip().to_string();
        let policy = acl::AclPolicy {
            acls: &acls,
            super_users: &[],
            allow_everyone_if_no_acl_found: false,
        };
        acls.iter().filter(|a| a.resource_type == resource_type).any(|a| {
            policy.authorize(&acl::AclCheck {
                principal: &ctx.principal,
                host: &host,
                operation,
                resource_type,
                name: &a.resource_name,
            })
        })
    }

    /// The advertised endpoint of the listener a request came in on.
    pub fn endpoint_for(&self, listener: &str) -> &Endpoint {
        self.endpoints
            .iter()
            .find(|e| e.listener == listener)
            .unwrap_or(&self.endpoints[0])
    }
}
