//! Built-in role templates: the workspace guide's owner and contributor roles.

/// A template: name, permissions and domains; projects are filled in when it is used.
pub struct Template {
    pub name: &'static str,
    pub description: &'static str,
    pub permissions: &'static [&'static str],
    pub domains: &'static [&'static str],
}

pub const TEMPLATES: &[Template] = &[
    Template {
        name: "owner",
        description: "Workspace owner: everything in every domain, production included",
        permissions: &[
            "workflows:create",
            "workflows:read",
            "workflows:update",
            "workflows:delete",
            "workflows:execute",
            "workflows:terminate",
            "launchplans:create",
            "launchplans:read",
            "launchplans:update",
            "launchplans:delete",
            "executions:read",
            "executions:create",
            "executions:terminate",
            "data:read",
            "data:write",
        ],
        domains: &["development", "staging", "production"],
    },
    Template {
        name: "contributor",
        description: "Workspace contributor: build and run in development and staging",
        permissions: &[
            "workflows:create",
            "workflows:read",
            "workflows:execute",
            "launchplans:create",
            "launchplans:read",
            "executions:read",
            "executions:create",
            "data:read",
            "data:write",
        ],
        domains: &["development", "staging"],
    },
];

pub fn template(name: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn templates_parse() {
        for t in super::TEMPLATES {
            assert!(crate::PermSet::parse_all(t.permissions).is_ok(), "{}", t.name);
        }
    }
}
