//! The bundled templates, compiled into the binary so `cargo install` needs no repository.

/// Names of the bundled templates, in listing order.
pub const TEMPLATE_NAMES: &[&str] = &[
    "google",
    "microsoft",
    "github",
    "gitlab",
    "dexcom",
    "dexcom-sandbox",
    "openai",
    "spotify",
    "oidc",
];

/// The TOML text of a bundled template.
pub fn text(name: &str) -> Option<&'static str> {
    Some(match name {
        "google" => include_str!("../../providers/google.toml"),
        "microsoft" => include_str!("../../providers/microsoft.toml"),
        "github" => include_str!("../../providers/github.toml"),
        "gitlab" => include_str!("../../providers/gitlab.toml"),
        "dexcom" => include_str!("../../providers/dexcom.toml"),
        "dexcom-sandbox" => include_str!("../../providers/dexcom-sandbox.toml"),
        "openai" => include_str!("../../providers/openai.toml"),
        "spotify" => include_str!("../../providers/spotify.toml"),
        "oidc" => include_str!("../../providers/oidc.toml"),
        _ => return None,
    })
}

/// How problems name a bundled template.
pub fn label(name: &str) -> String {
    format!("<bundled>/{name}.toml")
}
