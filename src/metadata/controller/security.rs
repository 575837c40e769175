//! SCRAM credentials and ACLs as records.

use super::{Controller, ControllerError, ControllerResult};
use crate::auth::acl::{AclBinding, AclFilter};
use crate::auth::scram::{ScramCredential, ScramMechanism};
use crate::metadata::records::MetadataRecord;
use std::collections::HashSet;

impl Controller {
    /// Adds, replaces and removes SCRAM credentials in one change. Returns,
    /// per deletion, whether the credential existed.
    pub async fn alter_scram(
        &self,
        upserts: Vec<(String, ScramMechanism, ScramCredential)>,
        deletions: Vec<(String, ScramMechanism)>,
    ) -> Result<Vec<bool>, ControllerError> {
        self.write(move |image, _| {
            let mut records = Vec::with_capacity(upserts.len() + deletions.len());
            let mut found = Vec::with_capacity(deletions.len());
            for (name, mechanism) in deletions {
                let exists = image.scram_credential(&name, mechanism).is_some();
                if exists {
                    records.push(MetadataRecord::RemoveUserScramCredential { name, mechanism });
                }
                found.push(exists);
            }
            for (name, mechanism, credential) in upserts {
                records.push(MetadataRecord::UserScramCredential {
                    name,
                    mechanism,
                    credential,
                });
            }
            ControllerResult::of(records, found)
        })
        .await
    }

    /// Stores new ACLs (one already stored is not stored twice).
    pub async fn create_acls(&self, bindings: Vec<AclBinding>) -> Result<(), ControllerError> {
        self.write(move |image, _| {
            let stored: HashSet<&AclBinding> = image.acls.iter().collect();
            let mut seen = HashSet::new();
            let records = bindings
                .into_iter()
                .filter(|b| !stored.contains(b) && seen.insert(b.clone()))
                .map(MetadataRecord::Acl)
                .collect();
            ControllerResult::of(records, ())
        })
        .await
    }

    /// Removes the ACLs each filter matches; returns them per filter.
    pub async fn delete_acls(&self, filters: Vec<AclFilter>) -> Result<Vec<Vec<AclBinding>>, ControllerError> {
        self.write(move |image, _| {
            let matched: Vec<Vec<AclBinding>> = filters
                .iter()
                .map(|f| image.acls.iter().filter(|a| f.matches(a)).cloned().collect())
                .collect();
            let records = image
                .acls
                .iter()
                .filter(|a| filters.iter().any(|f| f.matches(a)))
                .cloned()
                .map(MetadataRecord::RemoveAcl)
                .collect();
            ControllerResult::of(records, matched)
        })
        .await
    }
}
