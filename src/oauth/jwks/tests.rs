use super::testkeys::{TestKey, jwks, mint};
use super::*;
use crate::oauth::testutil::{Reply, Stub, fast_client};
use serde_json::json;

fn claims() -> Value {
    json!({"iss": "https://as.example", "aud": "cid", "exp": 2_000_000_000, "sub": "u1"})
}

fn verify(token: &str, keys: &JwkSet) -> std::result::Result<Vec<u8>, JwsError> {
    Jws::parse(token)?.verify(keys).map(<[u8]>::to_vec)
}

#[test]
fn disc5_every_supported_algorithm_verifies() {
    let rsa = TestKey::rsa();
    for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
        let keys = jwks(&[rsa.jwk(Some("r1"))]);
        let t = mint(&rsa, &json!({"alg": alg, "kid": "r1"}), &claims());
        let payload = verify(&t, &keys).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(serde_json::from_slice::<Value>(&payload).unwrap(), claims());
    }
    for (alg, key) in [
        ("ES256", TestKey::es256()),
        ("ES384", TestKey::es384()),
        ("EdDSA", TestKey::ed25519()),
    ] {
        let keys = jwks(&[key.jwk(Some("k"))]);
        let t = mint(&key, &json!({"alg": alg, "kid": "k"}), &claims());
        verify(&t, &keys).unwrap_or_else(|e| panic!("{alg}: {e}"));
    }
}

#[test]
fn disc5_tampered_payload_and_signature_fail() {
    let key = TestKey::es256();
    let keys = jwks(&[key.jwk(Some("k"))]);
    let t = mint(&key, &json!({"alg": "ES256", "kid": "k"}), &claims());
    let parts: Vec<&str> = t.split('.').collect();
    let mut evil = claims();
    evil["sub"] = json!("admin");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(evil.to_string()),
        parts[2]
    );
    assert_eq!(verify(&forged, &keys), Err(JwsError::BadSignature));
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[5] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
    assert_eq!(verify(&flipped, &keys), Err(JwsError::BadSignature));
    // Another key under the same kid.
    let other = TestKey::es256();
    let keys = jwks(&[other.jwk(Some("k"))]);
    assert_eq!(verify(&t, &keys), Err(JwsError::BadSignature));
}

#[test]
fn disc5_alg_none_and_hmac_confusion_refused() {
    let key = TestKey::rsa();
    let keys = jwks(&[key.jwk(Some("k"))]);
    let head = |h: &Value| URL_SAFE_NO_PAD.encode(h.to_string());
    let body = URL_SAFE_NO_PAD.encode(claims().to_string());
    for none in ["none", "None", "NONE"] {
        let t = format!("{}.{body}.", head(&json!({"alg": none})));
        assert_eq!(verify(&t, &keys), Err(JwsError::AlgNone));
    }
    // HS256 "signed" with the issuer's public key as the secret (algorithm confusion).
    let secret = key.jwk(Some("k")).to_string();
    let input = format!("{}.{body}", head(&json!({"alg": "HS256", "kid": "k"})));
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()),
        input.as_bytes(),
    );
    let t = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
    assert_eq!(verify(&t, &keys), Err(JwsError::Hmac));
    // A symmetric key in the set is never used either.
    let set = JwkSet::parse(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"s"}]}"#).unwrap();
    assert!(set.keys().is_empty());
}

#[test]
fn disc5_alg_must_fit_the_key() {
    let ec = TestKey::es256();
    let rsa = TestKey::rsa();
    // The header claims RS256 but the kid is an EC key.
    let keys = jwks(&[ec.jwk(Some("k"))]);
    let t = mint(&rsa, &json!({"alg": "RS256", "kid": "k"}), &claims());
    assert_eq!(verify(&t, &keys), Err(JwsError::KeyAlgMismatch));
    // ES384 against a P-256 key.
    let t = mint(
        &TestKey::es384(),
        &json!({"alg": "ES384", "kid": "k"}),
        &claims(),
    );
    assert_eq!(verify(&t, &keys), Err(JwsError::KeyAlgMismatch));
    // A key pinned to PS256 refuses RS256.
    let mut pinned = rsa.jwk(Some("r"));
    pinned["alg"] = json!("PS256");
    let t = mint(&rsa, &json!({"alg": "RS256", "kid": "r"}), &claims());
    assert_eq!(verify(&t, &jwks(&[pinned])), Err(JwsError::KeyAlgMismatch));
    // An encryption key is no signing key.
    let mut enc = rsa.jwk(Some("r"));
    enc["use"] = json!("enc");
    assert!(jwks(&[enc]).keys().is_empty());
}

#[test]
fn disc5_key_selection_without_kid() {
    let ec = TestKey::es256();
    let rsa = TestKey::rsa();
    let t = mint(&ec, &json!({"alg": "ES256"}), &claims());
    // One EC key among RSA ones: chosen by type.
    verify(&t, &jwks(&[rsa.jwk(Some("r")), ec.jwk(Some("e"))])).unwrap();
    // Two EC keys: ambiguous.
    let two = jwks(&[ec.jwk(Some("a")), TestKey::es256().jwk(Some("b"))]);
    assert_eq!(verify(&t, &two), Err(JwsError::AmbiguousKey));
    assert_eq!(
        verify(&t, &jwks(&[rsa.jwk(None)])),
        Err(JwsError::NoMatchingKey)
    );
    // A kid absent from the set.
    let t = mint(&ec, &json!({"alg": "ES256", "kid": "new"}), &claims());
    assert_eq!(
        verify(&t, &jwks(&[ec.jwk(Some("old"))])),
        Err(JwsError::UnknownKeyId)
    );
}

#[test]
fn disc5_malformed_tokens_and_crit_refused_without_echo() {
    let key = TestKey::ed25519();
    let keys = jwks(&[key.jwk(Some("k"))]);
    let good = mint(&key, &json!({"alg": "EdDSA", "kid": "k"}), &claims());
    let crit = mint(
        &key,
        &json!({"alg": "EdDSA", "kid": "k", "crit": ["exp"], "exp": 1}),
        &claims(),
    );
    assert_eq!(verify(&crit, &keys), Err(JwsError::CriticalHeader));
    let padded = format!("{good}=");
    let five = format!("{good}.x.y");
    for bad in [
        "",
        "abc",
        "a.b",
        &five,
        &padded,
        "!!!.e30.c2ln",
        "e30.!!!.c2ln",
        "bm90IGpzb24.e30.c2ln",
        "W10.e30.c2ln",
        "e30.e30.c2ln",
        "eyJhbGciOjF9.e30.c2ln",
    ] {
        let e = verify(bad, &keys).unwrap_err();
        assert!(matches!(e, JwsError::Malformed(_)), "{bad}: {e:?}");
        let shown = OAuthError::from(e).to_string();
        assert!(shown.len() < 120 && !shown.contains('\n'), "{shown}");
    }
    verify(&good, &keys).unwrap();
}

#[test]
fn disc5_jwks_parsing_skips_unusable_keys() {
    assert!(JwkSet::parse(b"not json").is_err());
    assert!(JwkSet::parse(br#"{"nokeys":[]}"#).is_err());
    let ec = TestKey::es256();
    let mut short = ec.jwk(Some("short"));
    short["x"] = json!("AAAA");
    let set = jwks(&[
        short,
        json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
        json!({"kty": "OKP", "crv": "X25519", "x": "AA"}),
        json!({"kty": "RSA", "n": "!!", "e": "AQAB"}),
        json!("not an object"),
        ec.jwk(Some("good")),
    ]);
    assert_eq!(set.keys().len(), 1);
    assert_eq!(set.keys()[0].kid.as_deref(), Some("good"));
    assert!(!format!("{set:?}").contains(ec.jwk(None)["x"].as_str().unwrap()));
}

#[tokio::test]
async fn disc5_unknown_kid_refetches_once_then_caches() {
    let old = TestKey::es256();
    let new = TestKey::es256();
    let set_old = json!({"keys": [old.jwk(Some("old"))]}).to_string();
    let set_new = json!({"keys": [old.jwk(Some("old")), new.jwk(Some("new"))]}).to_string();
    let stub = Stub::start(vec![
        Reply::json(200, &set_old),
        Reply::json(200, &set_new),
        Reply::json(200, &set_new),
    ])
    .await;
    let uri = Url::parse(&format!("http://{}/jwks", stub.addr)).unwrap();
    let client = fast_client();
    let iss = "https://as.example";
    let t_old = mint(&old, &json!({"alg": "ES256", "kid": "old"}), &claims());
    let t_new = mint(&new, &json!({"alg": "ES256", "kid": "new"}), &claims());
    client.verify_jws(&t_old, iss, &uri).await.unwrap();
    client.verify_jws(&t_old, iss, &uri).await.unwrap();
    assert_eq!(stub.requests().len(), 1, "cached per issuer");
    // Rotation: the new kid is unknown to the cache, one refetch finds it.
    client.verify_jws(&t_new, iss, &uri).await.unwrap();
    assert_eq!(stub.requests().len(), 2);
    // A kid that is nowhere: exactly one refetch, then the error.
    let stranger = TestKey::es256();
    let t_bad = mint(
        &stranger,
        &json!({"alg": "ES256", "kid": "nobody"}),
        &claims(),
    );
    let e = client.verify_jws(&t_bad, iss, &uri).await.unwrap_err();
    assert!(
        matches!(&e, OAuthError::IdToken(m) if m == "unknown key id"),
        "{e}"
    );
    assert_eq!(stub.requests().len(), 3, "one refetch, never more");
    assert!(
        stub.requests()
            .iter()
            .all(|r| r.method == "GET" && r.path == "/jwks")
    );
}

#[tokio::test]
async fn disc5_first_fetch_unknown_kid_does_not_refetch_and_http_errors_surface() {
    let key = TestKey::es256();
    let stub = Stub::start(vec![
        Reply::json(200, &json!({"keys": [key.jwk(Some("a"))]}).to_string()),
        Reply::text(404, "nope"),
    ])
    .await;
    let uri = Url::parse(&format!("http://{}/jwks", stub.addr)).unwrap();
    let client = fast_client();
    let t = mint(&key, &json!({"alg": "ES256", "kid": "b"}), &claims());
    assert!(client.verify_jws(&t, "i", &uri).await.is_err());
    assert_eq!(
        stub.requests().len(),
        1,
        "a set fetched just now is not fetched again"
    );
    let e = client
        .verify_jws(&t, "other-issuer", &uri)
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::Http { status: 404 }), "{e}");
    // DISC-4: plain http off loopback is refused before any request.
    let far = Url::parse("http://as.example/jwks").unwrap();
    assert!(matches!(
        client.verify_jws(&t, "i2", &far).await,
        Err(OAuthError::Config(_))
    ));
}
