//! SCRAM credentials over the protocol: AlterUserScramCredentials (what
//! `kafka-configs --entity-type users --alter --add-config 'SCRAM-SHA-512=[...]'`
//! sends: the client salts and iterates the password itself) and
//! DescribeUserScramCredentials (mechanisms and iteration counts only).

use super::RequestContext;
use crate::auth::acl::operation;
use crate::auth::scram::{ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::broker::Broker;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;
use std::collections::{BTreeMap, HashSet};

fn msg(text: String) -> Option<StrBytes> {
    Some(StrBytes::from_string(text))
}

pub async fn handle_alter_user_scram_credentials(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let users: Vec<String> = {
        let mut seen = Vec::new();
        for name in req
            .deletions
            .iter()
            .map(|d| &d.name)
            .chain(req.upsertions.iter().map(|u| &u.name))
        {
            if !seen.contains(&name.to_string()) {
                seen.push(name.to_string());
            }
        }
        seen
    };
    // The first problem found for each user; a user with any problem changes nothing.
    let mut errors: BTreeMap<String, (i16, String)> = BTreeMap::new();
    if !broker.authorize_cluster(ctx, operation::ALTER) {
        for u in &users {
            errors.insert(
                u.clone(),
                (
                    E::ClusterAuthorizationFailed.code(),
                    "Cluster authorization failed.".into(),
                ),
            );
        }
    }
    let mut pairs = HashSet::new();
    let mut check = |user: &str, mechanism: i8| -> Result<ScramMechanism, (i16, String)> {
        if user.is_empty() {
            return Err((E::UnacceptableCredential.code(), "Username must not be empty".into()));
        }
        let m = ScramMechanism::from_code(mechanism).ok_or((
            E::UnsupportedSaslMechanism.code(),
            format!("Unknown SCRAM mechanism {mechanism}"),
        ))?;
        // As Kafka: one change per user per request, whatever the mechanism.
        if !pairs.insert(user.to_string()) {
            return Err((
                E::DuplicateResource.code(),
                "A user credential cannot be altered twice in the same request".into(),
            ));
        }
        Ok(m)
    };
    let mut deletions = Vec::new();
    for d in &req.deletions {
        match check(&d.name, d.mechanism) {
            Ok(m) => deletions.push((d.name.to_string(), m)),
            Err(e) => {
                errors.entry(d.name.to_string()).or_insert(e);
            }
        }
    }
    let mut upserts = Vec::new();
    for u in &req.upsertions {
        let result = check(&u.name, u.mechanism).and_then(|m| {
            if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&u.iterations) {
                return Err((
                    E::UnacceptableCredential.code(),
                    format!(
                        "Iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}, not {}",
                        u.iterations
                    ),
                ));
            }
            Ok(m)
        });
        match result {
            Ok(m) => upserts.push((
                u.name.to_string(),
                m,
                ScramCredential::from_salted_password(m, u.salt.to_vec(), &u.salted_password, u.iterations),
            )),
            Err(e) => {
                errors.entry(u.name.to_string()).or_insert(e);
            }
        }
    }
    deletions.retain(|(user, _)| !errors.contains_key(user));
    upserts.retain(|(user, _, _)| !errors.contains_key(user));
    // Deleting what does not exist is an error for that user, and stops its changes.
    let image = broker.image();
    let existing: HashSet<(String, ScramMechanism)> = image
        .scram
        .iter()
        .flat_map(|(u, ms)| ms.keys().map(move |m| (u.clone(), *m)))
        .collect();
    for (user, m) in &deletions {
        if !existing.contains(&(user.clone(), *m)) {
            errors.entry(user.clone()).or_insert((
                E::ResourceNotFound.code(),
                "Attempt to delete a user credential that does not exist".to_string(),
            ));
        }
    }
    deletions.retain(|(user, _)| !errors.contains_key(user));
    upserts.retain(|(user, _, _)| !errors.contains_key(user));
    if let Err(e) = broker.controller.alter_scram(upserts, deletions).await {
        for u in &users {
            errors.entry(u.clone()).or_insert((e.code(), e.to_string()));
        }
    }
    let results = users
        .into_iter()
        .map(|u| {
            let (code, message) = errors.remove(&u).map_or((0, None), |(c, m)| (c, msg(m)));
            AlterUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(u))
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

pub async fn handle_describe_user_scram_credentials(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !broker.authorize_cluster(ctx, operation::DESCRIBE) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(E::ClusterAuthorizationFailed.code())
            .with_error_message(msg("Cluster authorization failed.".into()));
    }
    let image = broker.image();
    let all: BTreeMap<String, Vec<(ScramMechanism, i32)>> = image
        .scram
        .iter()
        .map(|(user, m)| (user.clone(), m.iter().map(|(k, c)| (*k, c.iterations)).collect()))
        .collect();
    let info = |list: &Vec<(ScramMechanism, i32)>| {
        list.iter()
            .map(|(m, i)| CredentialInfo::default().with_mechanism(m.code()).with_iterations(*i))
            .collect()
    };
    // Null or empty: every user (the Java admin client sends an empty list).
    let results = match req.users.filter(|u| !u.is_empty()) {
        None => all
            .iter()
            .map(|(u, list)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(u.clone()))
                    .with_credential_infos(info(list))
            })
            .collect(),
        Some(users) => {
            let names: Vec<String> = users.iter().map(|u| u.name.to_string()).collect();
            names
                .iter()
                .map(|u| {
                    let answer =
                        DescribeUserScramCredentialsResult::default().with_user(StrBytes::from_string(u.clone()));
                    if names.iter().filter(|n| *n == u).count() > 1 {
                        return answer
                            .with_error_code(E::DuplicateResource.code())
                            .with_error_message(msg(format!(
                                "Cannot describe SCRAM credentials for the same user twice in a single request: {u}"
                            )));
                    }
                    match all.get(u) {
                        Some(list) => answer.with_credential_infos(info(list)),
                        None => answer
                            .with_error_code(E::ResourceNotFound.code())
                            .with_error_message(msg(format!(
                                "Attempt to describe a user credential that does not exist: {u}"
                            ))),
                    }
                })
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
