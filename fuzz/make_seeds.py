#!/usr/bin/env python3
"""Writes the hand-made seed corpora in fuzz/seeds/TARGET/ (run from anywhere; idempotent).

Each seed starts with the selector bytes its target reads first (see fuzz/fuzz_targets/*.rs).
Provider seeds are the bundled templates and the test fixtures, copied as they are. Seeds that
need real signatures (JWS, JWKS) are made by the targets themselves (mode 1 of `jws`), so only
their shapes are here.
"""
import base64
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SEEDS = os.path.join(HERE, "seeds")


def put(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def j(v):
    return json.dumps(v, separators=(",", ":"))


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


# token: status index, content type index, default-lifetime index, body
jwt = ".".join([b64(b'{"alg":"RS256"}'),
                b64(j({"iss": "https://as.example", "sub": "u1", "email": "a@b.example",
                       "nonce": "n-1", "aud": "cid", "exp": 2000000000}).encode()),
                b64(b"sig")])
token_bodies = {
    "login": j({"access_token": "at-fx-1", "token_type": "Bearer", "expires_in": 3600,
                "refresh_token": "rt-fx-A1", "scope": "openid email offline_access", "extra": {"x": 1}}),
    "string-expiry": j({"access_token": "at-fx-2", "token_type": "bearer", "expires_in": "3600"}),
    "huge-expiry": j({"access_token": "at-fx-3", "token_type": "Bearer", "expires_in": 9223372036854775807}),
    "id-token": j({"access_token": "at-fx-4", "token_type": "Bearer", "id_token": jwt}),
    "error": j({"error": "invalid_grant", "error_description": "expired \u001b[31m"}),
    "mac": j({"access_token": "at", "token_type": "mac"}),
}
for name, body in token_bodies.items():
    put("token", name, b"\x00\x00\x00" + body.encode())
put("token", "form", b"\x00\x02\x01access_token=gho_abc&token_type=bearer&scope=repo%2Cgist")
put("token", "error-400", b"\x02\x00\x00" + j({"error": "invalid_client"}).encode())

# device: content type index, body
put("device", "rfc8628", b"\x00" + j({
    "device_code": "dc-fx-9", "user_code": "QWRT-ZXCV",
    "verification_uri": "https://as.example/device",
    "verification_uri_complete": "https://as.example/device?user_code=QWRT-ZXCV",
    "expires_in": 900, "interval": 5}).encode())
put("device", "google-url", b"\x00" + j({
    "device_code": "dc", "user_code": "AB-CD", "verification_url": "https://www.google.com/device",
    "expires_in": "1800"}).encode())
put("device", "form", b"\x01device_code=dc&user_code=U&verification_uri=https%3A%2F%2Fx&expires_in=60&interval=0")

# discovery: issuer line, document
issuer = "https://as.example/tenant"
doc = {"issuer": issuer, "authorization_endpoint": issuer + "/auth",
       "token_endpoint": issuer + "/token", "revocation_endpoint": issuer + "/revoke",
       "device_authorization_endpoint": issuer + "/device", "userinfo_endpoint": issuer + "/me",
       "jwks_uri": issuer + "/jwks", "scopes_supported": ["openid", "email"],
       "code_challenge_methods_supported": ["S256"],
       "authorization_response_iss_parameter_supported": True}
put("discovery", "oidc", issuer + "\n" + j(doc))
put("discovery", "loopback", "http://127.0.0.1:8080\n" + j({"issuer": "http://127.0.0.1:8080",
    "token_endpoint": "http://127.0.0.1:8080/token"}))
put("discovery", "http-endpoint", issuer + "\n" + j({"issuer": issuer, "token_endpoint": "http://as.example/t"}))

# jwks: a JWK Set document
put("jwks", "shapes", j({"keys": [
    {"kty": "RSA", "kid": "rsa", "use": "sig", "alg": "RS256", "n": b64(b"\x00" + b"\xc3" * 256), "e": "AQAB"},
    {"kty": "EC", "crv": "P-256", "kid": "ec", "x": b64(b"\x01" * 32), "y": b64(b"\x02" * 32)},
    {"kty": "EC", "crv": "P-384", "x": b64(b"\x01" * 48), "y": b64(b"\x02" * 48)},
    {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(b"\x03" * 32), "key_ops": ["verify"]},
    {"kty": "oct", "k": "c2VjcmV0"},
    {"kty": "RSA", "use": "enc", "n": "AQ", "e": "AQ"}]}))
put("jwks", "empty", j({"keys": []}))

# jws: mode 0 = raw token, mode 1 = signer index, kid flag, payload signed by the target
put("jws", "raw-id-token", b"\x00" + jwt.encode())
put("jws", "alg-none", b"\x00" + (b64(b'{"alg":"none"}') + "." + b64(b'{"sub":"x"}') + ".").encode())
put("jws", "crit", b"\x00" + (b64(b'{"alg":"ES256","crit":["x"]}') + ".e30.c2ln").encode())
for i, name in enumerate(["rs256", "ps384", "eddsa", "es256"]):
    put("jws", "signed-" + name, bytes([1, i, 0]) + j({"iss": "https://as.example", "sub": "u"}).encode())

# provider: the bundled templates and the test fixtures
for src in [os.path.join(ROOT, "providers"),
            os.path.join(ROOT, "tests", "fixtures", "providers", "valid"),
            os.path.join(ROOT, "tests", "fixtures", "providers", "invalid")]:
    for f in sorted(os.listdir(src)):
        if f.endswith(".toml"):
            kind = os.path.basename(src)
            put("provider", f"{kind}-{f}", open(os.path.join(src, f), "rb").read())

# callback: mode (0 listener, 1 paste), flags (1 require iss, 2 expect issuer), input
ISS = "https%3A%2F%2Fissuer.example"
STATE = "fuzz-state-2b7d1c0e9a"
def head(target, host="127.0.0.1:8765", method="GET"):
    return f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: fuzz\r\n\r\n".encode()
put("callback", "ok", b"\x00\x00" + head(f"/callback?code=c0de-1234567890abcdef&state={STATE}"))
put("callback", "ok-iss", b"\x00\x03" + head(f"/callback?code=c&state={STATE}&iss={ISS}"))
put("callback", "error", b"\x00\x00" + head(f"/callback?error=access_denied&error_description=%3Cb%3Eno&state={STATE}"))
put("callback", "repeated", b"\x00\x00" + head(f"/callback?code=a&code=b&state={STATE}"))
put("callback", "bad-host", b"\x00\x00" + head(f"/callback?code=a&state={STATE}", host="evil.example"))
put("callback", "post", b"\x00\x00" + head(f"/callback?code=a&state={STATE}", method="POST"))
put("callback", "paste-url", b"\x01\x02" + f"http://127.0.0.1:8765/callback?code=pc-1&state={STATE}&iss={ISS}".encode())
put("callback", "paste-code", b"\x01\x00" + b"4/0AbCdEf-bare-code")
put("callback", "paste-error", b"\x01\x00" + f"http://127.0.0.1:8765/callback?error=server_error&state={STATE}".encode())

# vault: mode 0 = a whole file, mode 1 = generation byte + plaintext sealed by the target.
# Whole files need the real key and a fresh nonce: the target's mode 1 produces them, and a
# header-only seed covers the header checks.
records = {"schema": 1, "accounts": {
    "work": {"provider": "google", "issuer": "https://accounts.google.com", "client_id": "cid",
             "access_token": "ya29.access-token-value", "refresh_token": "1//refresh-token-value",
             "token_type": "Bearer", "scopes": ["openid", "email"], "obtained_at": 1700000000,
             "expires_at": 1700003600, "claims": {"subject": "123", "email": "a@b.example", "verified": True},
             "last_refresh": {"at": 1700000000, "outcome": {"result": "failed", "message": "x"}},
             "refresh_count": 3, "state": {"state": "error", "message": "m"}, "client_secret": "cs"},
    "old": {"provider": "github"}}}
put("vault", "records", b"\x01\x05" + j(records).encode())
put("vault", "empty-records", b"\x01\x00" + b'{"schema":1}')
put("vault", "newer-schema", b"\x01\x00" + b'{"schema":2,"accounts":{}}')
hdr = b"AUTHDECK" + struct.pack("<HBB", 1, 1, 0) + struct.pack("<III", 19456, 2, 1) + b"\x00" * 16
hdr += struct.pack("<Q", 9) + b"\x00" * 16 + b"\x00" * 12 + struct.pack("<I", 16)
import hashlib
hdr += hashlib.sha256(hdr).digest()[:8]
put("vault", "passphrase-header", b"\x00" + hdr + b"\x00" * 16)

# proxy_body: path, method, content type, origin indexes, body
put("proxy_body", "exchange", b"\x00\x00\x00\x01" + j({
    "code": "auth-code-123456789abc", "code_verifier": "v" * 43,
    "redirect_uri": "http://127.0.0.1:8765/callback", "client": "dash"}).encode())
put("proxy_body", "refresh", b"\x01\x00\x00\x00" + j({
    "refresh_token": "rt-0123456789abcdef", "scope": "openid email"}).encode())
put("proxy_body", "revoke", b"\x02\x00\x01\x01" + j({
    "token": "tok-0123456789abcdef", "token_type_hint": "refresh_token"}).encode())
put("proxy_body", "not-object", b"\x00\x00\x00\x00[1,2]")
put("proxy_body", "bad-type", b"\x01\x00\x02\x00" + j({"refresh_token": 5}).encode())
put("proxy_body", "preflight", b"\x00\x02\x03\x01")
put("proxy_body", "evil-origin", b"\x02\x00\x00\x02" + j({"token": "t"}).encode())

# agent_frame: the bytes of one connection, newline-separated frames
def frame(**kw):
    return j(dict({"v": 1}, **kw)) + "\n"

put("agent_frame", "status", frame(verb="status"))
put("agent_frame", "status-origin", frame(verb="status", host="laptop", vault="/home/u/vault.bin"))
put("agent_frame", "token", frame(verb="token", account="work", min_valid=30, force=False,
                                  host="laptop", vault="/tmp/v.bin"))
put("agent_frame", "export", frame(verb="export", accounts=["work", "home"]))
put("agent_frame", "refresh", frame(verb="refresh", accounts=[]))
put("agent_frame", "lock-unlock", frame(verb="lock")
    + frame(verb="unlock", passphrase="correct horse battery staple"))
put("agent_frame", "pipelined", frame(verb="status") + frame(verb="token", account="a")
    + frame(verb="export") + frame(verb="lock") + frame(verb="stop") + frame(verb="status"))
put("agent_frame", "stop", frame(verb="stop"))
put("agent_frame", "garbage", "garbage\n" + frame(verb="status"))
put("agent_frame", "array", "[1,2]\n")
put("agent_frame", "wrong-version", j({"v": 2, "verb": "status"}) + "\n")
put("agent_frame", "string-version", j({"v": "1", "verb": "status"}) + "\n")
put("agent_frame", "unknown-verb", frame(verb="steal"))
put("agent_frame", "missing-field", frame(verb="token"))
put("agent_frame", "bad-unlock", j({"v": 1, "verb": "unlock", "passphrase": 12345678}) + "\n")
put("agent_frame", "no-newline", j({"v": 1, "verb": "status"}))
put("agent_frame", "crlf", frame(verb="status")[:-1] + "\r\n")
put("agent_frame", "nested", j({"v": 1, "verb": "export", "accounts": [["x"] * 3], "extra": {"a": [1, 2, {"b": None}]}}) + "\n")
put("agent_frame", "too-large", j({"v": 1, "verb": "token", "account": "a" * 66000}) + "\n")
# Frames of many small values (AGENT-3's value bound; the memory the target asserts).
put("agent_frame", "amp-array", j({"v": 1, "verb": "lock", "x": [0] * 20000}) + "\n")
put("agent_frame", "amp-head", j({"v": [[]] * 15000}) + "\n")
put("agent_frame", "amp-maps", j({"v": 1, "verb": "lock", "x": [{"a": {"b": 0}}] * 120}) + "\n")
put("agent_frame", "amp-accounts", frame(verb="export", accounts=["a" * 12] * 4000))
