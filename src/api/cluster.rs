//! DescribeCluster: the live brokers and the controller (in a cluster, a live
//! broker: clients cannot reach the controllers, as in Kafka),
//! UnregisterBroker and UnregisterController.

use super::{RequestContext, AUTHORIZED_OPERATIONS_OMITTED};
use crate::auth::acl::operation;
use crate::broker::Broker;
use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::describe_cluster_response::{DescribeClusterBroker, DescribeClusterResponse};
use kafka_protocol::messages::unregister_broker_request::UnregisterBrokerRequest;
use kafka_protocol::messages::unregister_broker_response::UnregisterBrokerResponse;
use kafka_protocol::messages::unregister_controller_request::UnregisterControllerRequest;
use kafka_protocol::messages::unregister_controller_response::UnregisterControllerResponse;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const ENDPOINT_BROKERS: i8 = 1;

pub async fn handle_describe_cluster(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    if !broker.authorize_cluster(ctx, operation::DESCRIBE) {
        return DescribeClusterResponse::default()
            .with_endpoint_type(req.endpoint_type)
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(StrBytes::from_static_str("Cluster authorization failed.")))
            .with_controller_id(BrokerId(-1))
            .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
    }
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.as_str().to_string()))
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
    // Brokers are not controllers' clients here: only broker endpoints are served.
    if ctx.api_version >= 1 && req.endpoint_type != ENDPOINT_BROKERS {
        return response
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER",
            )))
            .with_controller_id(BrokerId(-1));
    }
    let image = broker.image();
    let brokers: Vec<DescribeClusterBroker> = super::metadata::live_brokers(broker, &image, &ctx.listener)
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(b.node_id)
                .with_host(b.host)
                .with_port(b.port)
                .with_rack(b.rack)
        })
        .collect();
    response
        .with_controller_id(BrokerId(controller_id(broker, &image)))
        .with_brokers(brokers)
}

/// The controller id clients are given (Metadata, DescribeCluster). In a
/// cluster clients never reach the controllers: as Kafka's brokers do, name
/// a live broker — this one, which forwards what needs the active controller
/// and is reachable whoever leads the quorum at the moment.
pub fn controller_id(broker: &Broker, image: &crate::metadata::MetadataImage) -> i32 {
    if !broker.controller.is_clustered() {
        return broker.node_id();
    }
    let live = |id: i32| image.brokers.get(&id).is_some_and(|b| !b.fenced);
    if live(broker.node_id()) {
        return broker.node_id();
    }
    image
        .brokers
        .values()
        .find(|b| !b.fenced)
        .map_or(broker.node_id(), |b| b.broker_id)
}

/// UnregisterBroker (`kafka-cluster unregister`): removes a broker's
/// registration. Forwarded to the active controller in a cluster.
pub async fn handle_unregister_broker(
    broker: &Broker,
    ctx: &RequestContext,
    req: UnregisterBrokerRequest,
) -> UnregisterBrokerResponse {
    if !broker.authorize_cluster(ctx, operation::ALTER) {
        return UnregisterBrokerResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(StrBytes::from_static_str("Cluster authorization failed.")));
    }
    match broker.controller.unregister_broker(req.broker_id.0).await {
        Ok(()) => UnregisterBrokerResponse::default(),
        Err(e) => UnregisterBrokerResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(StrBytes::from_string(e.to_string()))),
    }
}

/// UnregisterController (`kafka-cluster unregister-controller`, KIP-1312):
/// removes a controller's registration once it has left the quorum.
/// Forwarded to the active controller in a cluster.
pub async fn handle_unregister_controller(
    broker: &Broker,
    ctx: &RequestContext,
    req: UnregisterControllerRequest,
) -> UnregisterControllerResponse {
    if !broker.authorize_cluster(ctx, operation::ALTER) {
        return UnregisterControllerResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(StrBytes::from_static_str("Cluster authorization failed.")));
    }
    match broker.controller.unregister_controller(req.controller_id).await {
        Ok(()) => UnregisterControllerResponse::default(),
        Err(e) => UnregisterControllerResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(StrBytes::from_string(e.to_string()))),
    }
}
