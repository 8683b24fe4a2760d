//! Access profiles: directory groups mapped to the product's permissions, and what a caller
//! may do once their groups are known.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Which calls a user may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CallAccess {
    /// No call at all.
    None,
    /// Calls where the user is a recorded (target) user.
    Own,
    /// Own calls and those of the members of the profile's `callAccessGroups`.
    OwnAndGroups,
    /// Every call.
    All,
}

/// The permissions of an access profile, as the product defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Permission {
    /// Play a recording (inline media).
    Play,
    /// Download a recording (attachment).
    Download,
    /// Set tags on calls.
    Tag,
    /// Add notes (and delete one's own).
    AddNotes,
    /// Delete other users' notes.
    DeleteOthersNotes,
    /// Request deletion of calls.
    DeleteCalls,
    /// Create/modify recording profiles.
    ManageRecordingProfiles,
    /// Create/modify access profiles.
    ManageAccessProfiles,
    /// Create/modify tags.
    ManageTags,
    /// Configure the system (directory import, users, legal hold).
    ConfigureSystem,
    /// Read and export the audit trail.
    AuditTrail,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 11] = [
        Permission::Play,
        Permission::Download,
        Permission::Tag,
        Permission::AddNotes,
        Permission::DeleteOthersNotes,
        Permission::DeleteCalls,
        Permission::ManageRecordingProfiles,
        Permission::ManageAccessProfiles,
        Permission::ManageTags,
        Permission::ConfigureSystem,
        Permission::AuditTrail,
    ];
}

/// An access profile as stored and exchanged over the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessProfile {
    /// Id (assigned by the store; ignored on create).
    #[serde(default)]
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Directory group ids whose members get this profile.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Which calls.
    pub call_access: CallAccess,
    /// For `ownAndGroups`: the groups whose members' calls are visible.
    #[serde(default)]
    pub call_access_groups: Vec<String>,
    /// Granted permissions.
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// Everything, everywhere.
    #[serde(default)]
    pub global_admin: bool,
}

/// What a caller may do: the union of their profiles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Effective {
    /// The widest call access of any profile (`None` without one).
    pub call_access: Option<CallAccess>,
    /// Groups whose members' calls are visible (ownAndGroups).
    pub call_access_groups: BTreeSet<String>,
    /// Granted permissions.
    pub permissions: BTreeSet<Permission>,
    /// Global administrator.
    pub global_admin: bool,
}

impl Effective {
    /// Unites the profiles that apply to a member of `groups`; `admin` (from the
    /// configuration's bootstrap list) makes a global administrator regardless.
    pub fn resolve(profiles: &[AccessProfile], groups: &BTreeSet<String>, admin: bool) -> Self {
        let mut e = Effective {
            global_admin: admin,
            ..Default::default()
        };
        for p in profiles {
            if !p.groups.iter().any(|g| groups.contains(g)) {
                continue;
            }
            e.global_admin |= p.global_admin;
            e.call_access = e.call_access.max(Some(p.call_access));
            if p.call_access == CallAccess::OwnAndGroups {
                e.call_access_groups
                    .extend(p.call_access_groups.iter().cloned());
            }
            e.permissions.extend(p.permissions.iter().copied());
        }
        if e.global_admin {
            e.call_access = Some(CallAccess::All);
            e.permissions.extend(Permission::ALL);
        }
        e
    }

    /// Has `p`.
    pub fn can(&self, p: Permission) -> bool {
        self.global_admin || self.permissions.contains(&p)
    }

    /// The call access that applies (none without a profile).
    pub fn access(&self) -> CallAccess {
        self.call_access.unwrap_or(CallAccess::None)
    }
}

/// Which interactions a query may touch, resolved against the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every interaction.
    All,
    /// Interactions where one of the targets is one of these users (object id or UPN,
    /// compared case-insensitively).
    Users {
        /// Object ids.
        oids: BTreeSet<String>,
        /// UPNs, lower case.
        upns: BTreeSet<String>,
    },
    /// Nothing.
    Nothing,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(groups: &[&str], access: CallAccess, perms: &[Permission]) -> AccessProfile {
        AccessProfile {
            id: 0,
            name: "p".into(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            call_access: access,
            call_access_groups: vec!["team".into()],
            permissions: perms.to_vec(),
            global_admin: false,
        }
    }

    #[test]
    fn profiles_unite_and_unmatched_ones_do_not_apply() {
        let ps = vec![
            profile(&["a"], CallAccess::Own, &[Permission::Play]),
            profile(&["b"], CallAccess::OwnAndGroups, &[Permission::Tag]),
            profile(&["c"], CallAccess::All, &[Permission::AuditTrail]),
        ];
        let groups: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
        let e = Effective::resolve(&ps, &groups, false);
        assert_eq!(e.access(), CallAccess::OwnAndGroups);
        assert!(e.can(Permission::Play) && e.can(Permission::Tag));
        assert!(!e.can(Permission::AuditTrail));
        assert_eq!(e.call_access_groups.len(), 1);
        let none = Effective::resolve(&ps, &BTreeSet::new(), false);
        assert_eq!(none.access(), CallAccess::None);
        let admin = Effective::resolve(&ps, &BTreeSet::new(), true);
        assert_eq!(admin.access(), CallAccess::All);
        assert!(Permission::ALL.iter().all(|p| admin.can(*p)));
    }
}
