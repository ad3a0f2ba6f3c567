//! Revocation: RFC 7009 `POST /revoke`, and the OpenAI and GitHub variants (PROV-3).

use super::*;

/// `POST /revoke` (RFC 7009): unknown tokens are fine; the hint is only a hint.
pub(super) fn revoke(state: &mut State, req: &Incoming) -> Reply {
    let client_id = match authenticate(state, req) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    state.stats.revocations += 1;
    let Some(token) = req.form("token") else {
        return Reply::error(400, "invalid_request", "token is missing");
    };
    let key = digest(token);
    // A token of another client is left alone, and the answer is still 200 (§2.1).
    if state
        .access
        .get(&key)
        .is_some_and(|g| g.client_id == client_id)
    {
        state.access.remove(&key);
    }
    if state
        .refresh
        .get(&key)
        .is_some_and(|g| g.client_id == client_id)
    {
        state.refresh.remove(&key);
    }
    Reply::text(200, "")
}

/// OpenAI's revocation (PROV-3): a JSON body `{"token", "token_type_hint", "client_id"?}`, no
/// client authentication; a form body is refused.
pub(super) fn revoke_json(state: &mut State, req: &Incoming) -> Reply {
    if !req.json_body {
        return Reply::error(400, "invalid_request", "expected a JSON body");
    }
    let Some(token) = req.form("token") else {
        return Reply::error(400, "invalid_request", "token is missing");
    };
    state.stats.revocations += 1;
    let key = digest(token);
    state.access.remove(&key);
    state.refresh.remove(&key);
    Reply::json(200, &json!({}))
}

/// GitHub's `DELETE /applications/{client_id}/token` (PROV-3): HTTP Basic with the client id
/// and secret (the path's client must be the authenticated one), JSON `{"access_token"}`,
/// 204. Revoking the access token ends its grant: the refresh tokens of that login go too.
pub(super) fn revoke_github(state: &mut State, req: &Incoming, p: &Personality) -> Reply {
    let Some(path_client) = p.client_id_in_path(&req.path) else {
        return Reply::text(404, "not found");
    };
    let authenticated = req
        .authorization
        .as_deref()
        .and_then(basic_credentials)
        .filter(|(id, secret)| {
            id == path_client
                && state.client(id).is_some_and(|c| {
                    c.secret
                        .as_deref()
                        .is_some_and(|s| ct_eq(s.as_bytes(), secret.as_bytes()))
                })
        });
    let Some((client_id, _)) = authenticated else {
        return Reply::json(401, &json!({"message": "Bad credentials"}));
    };
    let Some(token) = req.form("access_token").filter(|_| req.json_body) else {
        return Reply::json(422, &json!({"message": "Validation Failed"}));
    };
    state.stats.revocations += 1;
    let key = digest(token);
    let Some(grant) = state.access.remove(&key) else {
        return Reply::json(404, &json!({"message": "Not Found"}));
    };
    if grant.client_id != client_id {
        state.access.insert(key, grant);
        return Reply::json(404, &json!({"message": "Not Found"}));
    }
    // The grant's refresh tokens die with it (same login: same birth instant).
    state
        .refresh
        .retain(|_, g| !(g.client_id == client_id && g.lineage.born == grant.lineage.born));
    Reply {
        status: 204,
        content_type: "application/json",
        body: String::new(),
        headers: Vec::new(),
    }
}
