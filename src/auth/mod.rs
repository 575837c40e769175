//! Who a client is and what it may do: SASL exchanges (PLAIN, SCRAM), SCRAM
//! credentials, TLS client-certificate principals, and the ACL authorizer.

pub mod acl;
pub mod delegation_token;
pub mod gssapi;
pub mod kerberos_rules;
pub mod oauthbearer;
pub mod principal_mapping;
pub mod sasl;
pub mod scram;
pub mod scram_server;

/// The principal of a client that has not authenticated.
pub const ANONYMOUS: &str = "User:ANONYMOUS";
