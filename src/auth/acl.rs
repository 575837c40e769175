//! The ACL authorizer, as Kafka's StandardAuthorizer decides: super users may
//! do anything; otherwise an ACL must allow the operation on the resource
//! (by literal name, `*`, or a prefix) for the principal (or `User:*`) from
//! the host (or `*`), and no matching ACL may deny it. Deny wins. Read,
//! Write, Delete and Alter imply Describe; AlterConfigs implies
//! DescribeConfigs. A resource with no ACL at all is open only if
//! `allow.everyone.if.no.acl.found`.

use serde::{Deserialize, Serialize};

/// Kafka's resource type codes.
pub mod resource {
    pub const ANY: i8 = 1;
    pub const TOPIC: i8 = 2;
    pub const GROUP: i8 = 3;
    pub const CLUSTER: i8 = 4;
    pub const TRANSACTIONAL_ID: i8 = 5;
    pub const DELEGATION_TOKEN: i8 = 6;
    pub const USER: i8 = 7;
}

/// Kafka's pattern type codes.
pub mod pattern {
    pub const ANY: i8 = 1;
    pub const MATCH: i8 = 2;
    pub const LITERAL: i8 = 3;
    pub const PREFIXED: i8 = 4;
}

/// Kafka's ACL operation codes.
pub mod operation {
    pub const ANY: i8 = 1;
    pub const ALL: i8 = 2;
    pub const READ: i8 = 3;
    pub const WRITE: i8 = 4;
    pub const CREATE: i8 = 5;
    pub const DELETE: i8 = 6;
    pub const ALTER: i8 = 7;
    pub const DESCRIBE: i8 = 8;
    pub const CLUSTER_ACTION: i8 = 9;
    pub const DESCRIBE_CONFIGS: i8 = 10;
    pub const ALTER_CONFIGS: i8 = 11;
    pub const IDEMPOTENT_WRITE: i8 = 12;
    pub const CREATE_TOKENS: i8 = 13;
    pub const DESCRIBE_TOKENS: i8 = 14;
    pub const TWO_PHASE_COMMIT: i8 = 15;
}

/// Kafka's permission codes.
pub mod permission {
    pub const ANY: i8 = 1;
    pub const DENY: i8 = 2;
    pub const ALLOW: i8 = 3;
}

/// The name of the one cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

/// A filter as DescribeAcls and DeleteAcls send it (None matches anything).
#[derive(Debug, Clone)]
pub struct AclFilter {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl AclBinding {
    /// Why this binding cannot be created, if it cannot.
    pub fn invalid_reason(&self) -> Option<&'static str> {
        if !(resource::TOPIC..=resource::USER).contains(&self.resource_type) {
            return Some("Invalid resource type for an ACL");
        }
        if self.pattern_type != pattern::LITERAL && self.pattern_type != pattern::PREFIXED {
            return Some("Invalid pattern type for an ACL: must be LITERAL or PREFIXED");
        }
        if self.resource_name.is_empty() {
            return Some("Resource name must not be empty");
        }
        if self.resource_type == resource::CLUSTER && self.resource_name != CLUSTER_NAME {
            return Some("The only valid name for the CLUSTER resource is kafka-cluster");
        }
        if !(operation::ALL..=operation::TWO_PHASE_COMMIT).contains(&self.operation) {
            return Some("Invalid operation for an ACL");
        }
        if self.permission != permission::ALLOW && self.permission != permission::DENY {
            return Some("Invalid permission type for an ACL");
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => return Some("Principal must be of the form Type:name, e.g. User:alice"),
        }
        None
    }

    fn covers_resource(&self, resource_type: i8, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                pattern::LITERAL => self.resource_name == name || self.resource_name == "*",
                pattern::PREFIXED => name.starts_with(&self.resource_name),
                _ => false,
            }
    }

    fn covers_principal(&self, principal: &str) -> bool {
        self.principal == principal || self.principal == "User:*"
    }

    fn covers_host(&self, host: &str) -> bool {
        self.host == "*" || self.host == host
    }
}

impl AclFilter {
    pub fn matches(&self, b: &AclBinding) -> bool {
        let type_ok = self.resource_type == resource::ANY || self.resource_type == b.resource_type;
        let name_ok = match (&self.resource_name, self.pattern_type) {
            (None, _) => true,
            (Some(name), pattern::MATCH) => match b.pattern_type {
                pattern::LITERAL => b.resource_name == *name || b.resource_name == "*",
                pattern::PREFIXED => name.starts_with(&b.resource_name),
                _ => false,
            },
            (Some(name), _) => b.resource_name == *name,
        };
        let pattern_ok = match self.pattern_type {
            pattern::ANY | pattern::MATCH => true,
            p => p == b.pattern_type,
        };
        let principal_ok = self.principal.as_ref().is_none_or(|p| *p == b.principal);
        let host_ok = self.host.as_ref().is_none_or(|h| *h == b.host);
        let op_ok = self.operation == operation::ANY || self.operation == b.operation;
        let perm_ok = self.permission == permission::ANY || self.permission == b.permission;
        type_ok && name_ok && pattern_ok && principal_ok && host_ok && op_ok && perm_ok
    }
}

/// Operations an allowed `granted` operation also allows.
fn implies(granted: i8, wanted: i8) -> bool {
    if granted == wanted || granted == operation::ALL {
        return true;
    }
    match wanted {
        operation::DESCRIBE => matches!(
            granted,
            operation::READ | operation::WRITE | operation::DELETE | operation::ALTER
        ),
        operation::DESCRIBE_CONFIGS => granted == operation::ALTER_CONFIGS,
        _ => false,
    }
}

/// One question to the authorizer: may `principal` from `host` do
/// `operation` on the resource?
#[derive(Debug, Clone, Copy)]
pub struct AclCheck<'a> {
    pub principal: &'a str,
    pub host: &'a str,
    pub operation: i8,
    pub resource_type: i8,
    pub name: &'a str,
}

/// The rules that answer: the ACLs and the authorizer's settings.
#[derive(Debug, Clone, Copy)]
pub struct AclPolicy<'a> {
    pub acls: &'a [AclBinding],
    pub super_users: &'a [String],
    pub allow_everyone_if_no_acl_found: bool,
}

impl AclPolicy<'_> {
    pub fn authorize(&self, check: &AclCheck<'_>) -> bool {
        if self.super_users.iter().any(|s| s == check.principal) {
            return true;
        }
        let on_resource: Vec<&AclBinding> = self
            .acls
            .iter()
            .filter(|a| a.covers_resource(check.resource_type, check.name))
            .collect();
        if on_resource.is_empty() {
            return self.allow_everyone_if_no_acl_found;
        }
        let applicable = on_resource
            .iter()
            .filter(|a| a.covers_principal(check.principal) && a.covers_host(check.host));
        let mut allowed = false;
        for a in applicable {
            if a.permission == permission::DENY && (a.operation == check.operation || a.operation == operation::ALL) {
                return false;
            }
            if a.permission == permission::ALLOW && implies(a.operation, check.operation) {
                allowed = true;
            }
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(rt: i8, name: &str, pt: i8, principal: &str, op: i8, perm: i8) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission: perm,
        }
    }

    fn check<'a>(principal: &'a str, host: &'a str, operation: i8, resource_type: i8, name: &'a str) -> AclCheck<'a> {
        AclCheck {
            principal,
            host,
            operation,
            resource_type,
            name,
        }
    }

    #[test]
    fn literal_prefixed_deny_and_implications() {
        let acls = vec![
            acl(
                resource::TOPIC,
                "orders",
                pattern::LITERAL,
                "User:alice",
                operation::WRITE,
                permission::ALLOW,
            ),
            acl(
                resource::TOPIC,
                "logs-",
                pattern::PREFIXED,
                "User:alice",
                operation::READ,
                permission::ALLOW,
            ),
            acl(
                resource::TOPIC,
                "logs-secret",
                pattern::LITERAL,
                "User:alice",
                operation::READ,
                permission::DENY,
            ),
            acl(
                resource::GROUP,
                "*",
                pattern::LITERAL,
                "User:*",
                operation::READ,
                permission::ALLOW,
            ),
        ];
        let supers = vec!["User:admin".to_string()];
        let policy = AclPolicy {
            acls: &acls,
            super_users: &supers,
            allow_everyone_if_no_acl_found: false,
        };
        let may = |p, op, rt, name| policy.authorize(&check(p, "10.0.0.1", op, rt, name));
        assert!(may("User:alice", operation::WRITE, resource::TOPIC, "orders"));
        assert!(
            may("User:alice", operation::DESCRIBE, resource::TOPIC, "orders"),
            "Write implies Describe"
        );
        assert!(!may("User:alice", operation::READ, resource::TOPIC, "orders"));
        assert!(!may("User:bob", operation::WRITE, resource::TOPIC, "orders"));
        assert!(may("User:alice", operation::READ, resource::TOPIC, "logs-app"));
        assert!(
            !may("User:alice", operation::READ, resource::TOPIC, "logs-secret"),
            "deny wins"
        );
        assert!(
            may("User:alice", operation::DESCRIBE, resource::TOPIC, "logs-secret"),
            "a Read deny leaves Describe"
        );
        assert!(may("User:anyone", operation::READ, resource::GROUP, "g1"));
        assert!(
            may("User:admin", operation::DELETE, resource::TOPIC, "anything"),
            "super user"
        );
        assert!(
            !may("User:alice", operation::READ, resource::TOPIC, "unlisted"),
            "no ACL, closed by default"
        );
        let open = AclPolicy {
            allow_everyone_if_no_acl_found: true,
            ..policy
        };
        assert!(open.authorize(&check("User:x", "h", operation::READ, resource::TOPIC, "unlisted")));
        assert!(!open.authorize(&check("User:x", "h", operation::READ, resource::TOPIC, "orders")));
    }

    #[test]
    fn hosts_and_filters() {
        let mut a = acl(
            resource::TOPIC,
            "t",
            pattern::LITERAL,
            "User:a",
            operation::ALL,
            permission::ALLOW,
        );
        a.host = "10.0.0.1".into();
        let acls = vec![a.clone()];
        let policy = AclPolicy {
            acls: &acls,
            super_users: &[],
            allow_everyone_if_no_acl_found: false,
        };
        assert!(policy.authorize(&check("User:a", "10.0.0.1", operation::READ, resource::TOPIC, "t")));
        assert!(!policy.authorize(&check("User:a", "10.0.0.2", operation::READ, resource::TOPIC, "t")));
        let filter = AclFilter {
            resource_type: resource::ANY,
            resource_name: Some("t".into()),
            pattern_type: pattern::MATCH,
            principal: None,
            host: None,
            operation: operation::ANY,
            permission: permission::ANY,
        };
        assert!(filter.matches(&a));
        let prefixed = acl(
            resource::TOPIC,
            "t",
            pattern::PREFIXED,
            "User:a",
            operation::READ,
            permission::ALLOW,
        );
        assert!(filter.matches(&prefixed));
        let literal = AclFilter {
            pattern_type: pattern::LITERAL,
            ..filter
        };
        assert!(literal.matches(&a));
        assert!(!literal.matches(&prefixed));
        assert!(acl(
            resource::CLUSTER,
            "x",
            pattern::LITERAL,
            "User:a",
            operation::ALTER,
            permission::ALLOW
        )
        .invalid_reason()
        .is_some());
        assert!(acl(
            resource::TOPIC,
            "t",
            pattern::LITERAL,
            "alice",
            operation::READ,
            permission::ALLOW
        )
        .invalid_reason()
        .is_some());
    }
}
