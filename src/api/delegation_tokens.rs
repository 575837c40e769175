//! Delegation tokens over the protocol (KIP-48, `kafka-delegation-tokens`):
//! CreateDelegationToken, RenewDelegationToken and ExpireDelegationToken run
//! on the active controller (forwarded like other metadata changes);
//! DescribeDelegationToken reads this node's image. Checked as Kafka's
//! KafkaApis checks them before anything else: only a client that proved
//! who it is, not through a token, may manage tokens.

use super::RequestContext;
use crate::auth::acl::{operation, resource};
use crate::auth::delegation_token::{token_hmac, DelegationToken};
use crate::broker::Broker;
use bytes::Bytes;
use kafka_protocol::messages::describe_delegation_token_response::{
    DescribedDelegationToken, DescribedDelegationTokenRenewer,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;

/// ("User", "alice") from "User:alice".
fn split_principal(principal: &str) -> (&str, &str) {
    principal.split_once(':').unwrap_or(("User", principal))
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub async fn handle_create_delegation_token(
    broker: &Broker,
    ctx: &RequestContext,
    req: CreateDelegationTokenRequest,
) -> CreateDelegationTokenResponse {
    let requester = ctx.principal.to_string();
    let owner = match req.owner_principal_name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => format!("{}:{name}", req.owner_principal_type.as_deref().unwrap_or("User")),
        None => requester.clone(),
    };
    let (owner_type, owner_name) = split_principal(&owner);
    let (requester_type, requester_name) = split_principal(&requester);
    let response = CreateDelegationTokenResponse::default()
        .with_principal_type(text(owner_type))
        .with_principal_name(text(owner_name))
        .with_token_requester_principal_type(text(requester_type))
        .with_token_requester_principal_name(text(requester_name));
    let refused = |code: i16| {
        response
            .clone()
            .with_error_code(code)
            .with_issue_timestamp_ms(-1)
            .with_expiry_timestamp_ms(-1)
            .with_max_timestamp_ms(-1)
    };
    if !ctx.token_requests_allowed {
        return refused(E::DelegationTokenRequestNotAllowed.code());
    }
    // KIP-373: a token for someone else needs CreateTokens on that user.
    if owner != requester && !broker.authorize(ctx, operation::CREATE_TOKENS, resource::USER, &owner) {
        return refused(E::DelegationTokenAuthorizationFailed.code());
    }
    let renewers = req
        .renewers
        .iter()
        .map(|r| (r.principal_type.to_string(), r.principal_name.to_string()))
        .collect();
    let now = crate::storage::now_ms();
    match broker
        .controller
        .create_delegation_token(owner.clone(), requester.clone(), renewers, req.max_lifetime_ms, now)
        .await
    {
        Ok(Ok((token, hmac))) => response
            .with_issue_timestamp_ms(token.issue_ms)
            .with_expiry_timestamp_ms(token.expiry_ms)
            .with_max_timestamp_ms(token.max_ms)
            .with_token_id(text(&token.token_id))
            .with_hmac(Bytes::from(hmac)),
        Ok(Err(code)) => response.with_error_code(code),
        Err(e) => response.with_error_code(e.code()),
    }
}

pub async fn handle_renew_delegation_token(
    broker: &Broker,
    ctx: &RequestContext,
    req: RenewDelegationTokenRequest,
) -> RenewDelegationTokenResponse {
    let response = RenewDelegationTokenResponse::default();
    if !ctx.token_requests_allowed {
        return response
            .with_error_code(E::DelegationTokenRequestNotAllowed.code())
            .with_expiry_timestamp_ms(-1);
    }
    let now = crate::storage::now_ms();
    let renewed = broker
        .controller
        .renew_delegation_token(req.hmac.to_vec(), ctx.principal.to_string(), req.renew_period_ms, now)
        .await;
    match renewed {
        Ok(Ok(expiry)) => response.with_expiry_timestamp_ms(expiry),
        Ok(Err(code)) => response.with_error_code(code),
        Err(e) => response.with_error_code(e.code()),
    }
}

pub async fn handle_expire_delegation_token(
    broker: &Broker,
    ctx: &RequestContext,
    req: ExpireDelegationTokenRequest,
) -> ExpireDelegationTokenResponse {
    let response = ExpireDelegationTokenResponse::default();
    if !ctx.token_requests_allowed {
        return response
            .with_error_code(E::DelegationTokenRequestNotAllowed.code())
            .with_expiry_timestamp_ms(-1);
    }
    let now = crate::storage::now_ms();
    let expired = broker
        .controller
        .expire_delegation_token(
            req.hmac.to_vec(),
            ctx.principal.to_string(),
            req.expiry_time_period_ms,
            now,
        )
        .await;
    match expired {
        Ok(Ok(expiry)) => response.with_expiry_timestamp_ms(expiry),
        Ok(Err(code)) => response.with_error_code(code),
        Err(e) => response.with_error_code(e.code()),
    }
}

/// Kafka's DelegationTokenManager.filterToken: tokens of the owners asked
/// for, that the requester owns, renews or asked for, or may describe.
fn visible(broker: &Broker, ctx: &RequestContext, owners: Option<&[String]>, token: &DelegationToken) -> bool {
    if owners.is_some_and(|o| !o.iter().any(|owner| token.owner_or_renewer(owner))) {
        return false;
    }
    token.owner_or_renewer(&ctx.principal)
        || broker.authorize(ctx, operation::DESCRIBE, resource::DELEGATION_TOKEN, &token.token_id)
        || broker.authorize(ctx, operation::DESCRIBE_TOKENS, resource::USER, &token.owner)
}

fn described(token: &DelegationToken, secret: &str) -> DescribedDelegationToken {
    let (owner_type, owner_name) = split_principal(&token.owner);
    let (requester_type, requester_name) = split_principal(&token.requester);
    DescribedDelegationToken::default()
        .with_principal_type(text(owner_type))
        .with_principal_name(text(owner_name))
        .with_token_requester_principal_type(text(requester_type))
        .with_token_requester_principal_name(text(requester_name))
        .with_issue_timestamp(token.issue_ms)
        .with_expiry_timestamp(token.expiry_ms)
        .with_max_timestamp(token.max_ms)
        .with_token_id(text(&token.token_id))
        .with_hmac(Bytes::from(token_hmac(secret, &token.token_id)))
        .with_renewers(
            token
                .renewers
                .iter()
                .map(|r| {
                    let (kind, name) = split_principal(r);
                    DescribedDelegationTokenRenewer::default()
                        .with_principal_type(text(kind))
                        .with_principal_name(text(name))
                })
                .collect(),
        )
}

pub async fn handle_describe_delegation_token(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeDelegationTokenRequest,
) -> DescribeDelegationTokenResponse {
    let response = DescribeDelegationTokenResponse::default();
    if !ctx.token_requests_allowed {
        return response.with_error_code(E::DelegationTokenRequestNotAllowed.code());
    }
    let Some(secret) = broker.config.security.delegation_tokens.secret_key.as_deref() else {
        return response.with_error_code(E::DelegationTokenAuthDisabled.code());
    };
    let owners: Option<Vec<String>> = req.owners.as_ref().map(|owners| {
        owners
            .iter()
            .map(|o| format!("{}:{}", o.principal_type.as_str(), o.principal_name.as_str()))
            .collect()
    });
    if owners.as_ref().is_some_and(Vec::is_empty) {
        return response;
    }
    let image = broker.image();
    let tokens = image
        .delegation_tokens
        .values()
        .filter(|t| visible(broker, ctx, owners.as_deref(), t))
        .map(|t| described(t, secret))
        .collect();
    response.with_tokens(tokens)
}
