//! The schema's per-provider extensions (PROV-2..13): fallback ports, a required redirect, the
//! device client, IP-literal redirects, issuer aliases, error hints and `[resources]`.

use super::*;

impl Validator {
    /// PROV-6: each port 1..=65535, and only with a fixed-port `redirect_uri` to fall back from.
    pub(super) fn fallback_ports(&mut self, layer: &Layer, redirect: Option<&Url>) -> Vec<u16> {
        let Some(list) = &layer.redirect_fallback_ports else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for p in &list.value {
            match u16::try_from(p.value) {
                Ok(port) if port > 0 => out.push(port),
                _ => self.problems.push(p.origin.error(
                    format!("redirect_fallback_ports: {} is not a port", p.value),
                    "use port numbers from 1 to 65535, e.g. redirect_fallback_ports = [1457]",
                )),
            }
        }
        let fixed = redirect.and_then(Url::port).is_some_and(|p| p != 0);
        if !out.is_empty() && layer.redirect_uri.is_some() && !fixed {
            self.problems.push(list.origin.error(
                "redirect_fallback_ports needs a redirect_uri with a fixed port",
                "set redirect_uri = \"http://127.0.0.1:PORT/PATH\" with the first port to try",
            ));
        }
        out
    }

    /// PROV-7: a template that says `require_redirect_uri = true` makes a fixed `redirect_uri`
    /// (with a port) mandatory in every account that extends it.
    pub(super) fn check_required_redirect(
        &mut self,
        layer: &Layer,
        redirect: Option<&Url>,
        start: &Origin,
        template: Option<&str>,
    ) {
        if !layer.require_redirect_uri.as_ref().is_some_and(|b| b.value) {
            return;
        }
        let who = template.map_or_else(
            || "this provider".to_owned(),
            |t| format!("the `{t}` template"),
        );
        let hint = "add redirect_uri = \"http://127.0.0.1:8123/callback\" (any free port) and register exactly that URI with the provider (docs/providers.md)";
        match (&layer.redirect_uri, redirect) {
            (None, _) => self.problems.push(start.error(
                format!("missing redirect_uri: {who} needs the exact redirect URI registered with the provider"),
                hint,
            )),
            (Some(at), Some(url)) if url.port().is_none_or(|p| p == 0) => {
                self.problems.push(at.origin.error(
                    format!("redirect_uri needs a fixed port: {who} compares it exactly with the registered one"),
                    hint,
                ));
            }
            _ => {}
        }
    }

    /// PROV-10: the device client's secret, from `device_client_secret_env` (never inline).
    pub(super) fn device_secret(&mut self, layer: &Layer, mode: Mode) -> Option<ClientSecret> {
        let env = layer.device_client_secret_env.as_ref()?;
        if env.value.is_empty() || env.value.contains(['=', '\0']) {
            self.problems.push(env.origin.error(
                format!(
                    "device_client_secret_env {:?} is not a valid environment variable name",
                    env.value
                ),
                "name the variable that holds the device client's secret",
            ));
            return None;
        }
        if layer.device_client_id.is_none() {
            self.problems.push(env.origin.error(
                "device_client_secret_env is set but device_client_id is not",
                "add device_client_id = \"...\" for the device client",
            ));
            return None;
        }
        if mode == Mode::Template {
            return None;
        }
        match std::env::var(&env.value) {
            Ok(value) if !value.is_empty() => Some(ClientSecret::new(value)),
            _ => {
                self.problems.push(env.origin.warning(
                    format!("environment variable {} is not set", env.value),
                    "export it before a device login",
                ));
                None
            }
        }
    }

    /// PROV-13: a template that says `require_ip_literal_redirect = true` refuses a
    /// `localhost` redirect (Spotify accepts loopback IP literals only).
    pub(super) fn check_ip_literal_redirect(
        &mut self,
        layer: &Layer,
        redirect: Option<&Url>,
        template: Option<&str>,
    ) {
        if !layer
            .require_ip_literal_redirect
            .as_ref()
            .is_some_and(|b| b.value)
        {
            return;
        }
        let (Some(at), Some(url)) = (&layer.redirect_uri, redirect) else {
            return;
        };
        if matches!(url.host(), Some(url::Host::Domain(_))) {
            let who = template.map_or_else(
                || "this provider".to_owned(),
                |t| format!("the `{t}` template's provider"),
            );
            self.problems.push(at.origin.error(
                format!("redirect_uri uses `{}`, which {who} refuses: loopback redirects must be IP literals", host_of(url)),
                "use http://127.0.0.1:PORT/PATH or http://[::1]:PORT/PATH (and register it so)",
            ));
        }
    }

    pub(super) fn issuer_aliases(&mut self, layer: &Layer) -> Vec<String> {
        let Some(list) = &layer.issuer_aliases else {
            return Vec::new();
        };
        for a in &list.value {
            if a.value.trim().is_empty() || a.value.chars().any(char::is_whitespace) {
                self.problems.push(a.origin.error(
                    format!("invalid issuer alias {:?}", a.value),
                    "an alias is the exact `iss` value, e.g. \"accounts.google.com\"",
                ));
            }
        }
        list.value.iter().map(|a| a.value.clone()).collect()
    }

    pub(super) fn check_error_hints(&mut self, layer: &Layer) {
        for (key, at) in &layer.error_hints {
            let ok = key.split_once('.').is_some_and(|(stage, code)| {
                matches!(stage, "login" | "device" | "refresh" | "revoke")
                    && !code.is_empty()
                    && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            });
            if !ok {
                self.problems.push(at.origin.error(
                    format!("error_hints key `{key}` is not STAGE.ERROR_CODE"),
                    "STAGE is login, device, refresh or revoke, e.g. \"refresh.invalid_grant\" = \"...\"",
                ));
            }
        }
    }

    pub(super) fn resources(&mut self, layer: &Layer) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for (name, list) in &layer.resources {
            let name_ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !name_ok || list.value.is_empty() {
                self.problems.push(list.origin.error(
                    format!("resource `{name}` needs a name of letters, digits, `-`, `_`, `.` and at least one scope"),
                    "e.g. [resources] then graph = [\"https://graph.microsoft.com/.default\"]",
                ));
                continue;
            }
            for s in &list.value {
                if !is_scope_token(&s.value) {
                    self.problems.push(s.origin.error(
                        format!("invalid scope {:?} in resource `{name}`", s.value),
                        "one scope per list entry, without spaces, quotes or backslashes",
                    ));
                }
            }
            out.insert(
                name.clone(),
                list.value.iter().map(|s| s.value.clone()).collect(),
            );
        }
        out
    }
}
