//! DescribeCluster: this node is the whole cluster and its controller.

use super::{RequestContext, AUTHORIZED_OPERATIONS_OMITTED};
use crate::auth::acl::operation;
use crate::broker::Broker;
use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::describe_cluster_response::{DescribeClusterBroker, DescribeClusterResponse};
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
    let endpoint = broker.endpoint_for(&ctx.listener);
    let node = BrokerId(broker.node_id());
    response
        .with_controller_id(node)
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(node)
            .with_host(StrBytes::from_string(endpoint.host.clone()))
            .with_port(endpoint.port as i32)
            .with_rack(None)])
}
