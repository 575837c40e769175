//! ListConfigResources (KIP-1142): the resources that can carry configs, by
//! type. v0 was ListClientMetricsResources and lists client metrics
//! subscriptions only.

use super::RequestContext;
use crate::auth::acl::operation;
use crate::broker::Broker;
use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

// Config resource type codes (Kafka's ConfigResource.Type).
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;
const CLIENT_METRICS: i8 = 16;
const GROUP: i8 = 32;
const SUPPORTED: [i8; 5] = [TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP];

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: ListConfigResourcesRequest,
) -> ListConfigResourcesResponse {
    if !broker.authorize_cluster(ctx, operation::DESCRIBE_CONFIGS) {
        return ListConfigResourcesResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let types: Vec<i8> = if ctx.api_version == 0 {
        vec![CLIENT_METRICS]
    } else if req.resource_types.is_empty() {
        SUPPORTED.to_vec()
    } else {
        req.resource_types
    };
    if types.iter().any(|t| !SUPPORTED.contains(t)) {
        return ListConfigResourcesResponse::default().with_error_code(ResponseError::UnsupportedVersion.code());
    }
    let image = broker.image();
    let entry = |name: String, kind: i8| {
        ConfigResource::default()
            .with_resource_name(StrBytes::from_string(name))
            .with_resource_type(kind)
    };
    let mut out = Vec::new();
    // No client metrics subscriptions exist here yet.
    for kind in [BROKER_LOGGER, BROKER] {
        if types.contains(&kind) {
            out.extend(image.brokers.keys().map(|id| entry(id.to_string(), kind)));
        }
    }
    if types.contains(&TOPIC) {
        out.extend(image.topics.names().map(|n| entry(n.clone(), TOPIC)));
    }
    if types.contains(&GROUP) {
        // The groups that have configs, as Kafka lists them.
        out.extend(image.configs.keys().filter_map(|r| match r {
            crate::metadata::records::ConfigResource::Group(g) => Some(entry(g.clone(), GROUP)),
            _ => None,
        }));
    }
    ListConfigResourcesResponse::default().with_config_resources(out)
}
