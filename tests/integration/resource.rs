//! What the loopback resource servers of the integration tests share: the check a resource
//! server makes of a bearer token (the devserver's `/userinfo` answers 200 only for an access
//! token it issued and still honours). The servers themselves — git smart HTTP (`git_http`),
//! the fake Kubernetes API over HTTPS (`kube_api`) — are the suite's one HTTP stub
//! ([`crate::support::BackgroundStub`]) with a handler each.

use std::time::Duration;

/// Whether the devserver at `userinfo` honours `token` as a live access token.
pub fn token_is_live(userinfo: &str, token: &str) -> bool {
    reqwest::blocking::Client::new()
        .get(userinfo)
        .bearer_auth(token)
        .timeout(Duration::from_secs(5))
        .send()
        .is_ok_and(|r| r.status().is_success())
}
