// A single-page app that logs in with the authorization code flow + PKCE (RFC 7636) and lets
// `authdeck proxy` do everything that needs the client secret: the code exchange, refresh
// and revocation (docs/proxy.md). No framework, no build step.
//
// Configuration: config.json next to this file (see config.example.json):
//   authorization_endpoint  the provider's authorization endpoint
//   client_id               the OAuth client id (the proxy holds its secret)
//   scope                   requested scopes
//   proxy                   the proxy's base URL; this page's origin must be in the proxy
//                           client's allowed_origins (CORS)
//   client                  optional: the proxy's client name when it serves several
//   redirect_uri            optional: default <this origin>/callback; must be on the proxy
//                           client's redirect_uris and registered at the provider
//
// Tokens live in memory only (never localStorage): a reload logs out. The PKCE verifier,
// state and nonce wait in sessionStorage during the redirect and are removed on return.
'use strict';

const $ = (id) => document.getElementById(id);
let config = null;
let tokens = null;

function show(message, kind) {
  const el = $('status');
  el.textContent = message;
  el.className = kind || '';
}

function base64url(bytes) {
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomString(length) {
  const bytes = new Uint8Array(length);
  crypto.getRandomValues(bytes);
  return base64url(bytes);
}

async function sha256(text) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
}

function redirectUri() {
  return config.redirect_uri || `${location.origin}/callback`;
}

// The id_token's payload, for display only: the proxy fetched it from the token endpoint, and
// this page makes no security decision on it (a server would verify the signature).
function claimsOf(idToken) {
  const part = (idToken || '').split('.')[1];
  if (!part) return null;
  const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
  const bytes = Uint8Array.from(json, (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

async function login() {
  // PKCE-1/2: a 43-character verifier from 32 random bytes, S256 challenge.
  const verifier = randomString(32);
  const state = randomString(16);
  const nonce = randomString(16);
  sessionStorage.setItem('authdeck-spa', JSON.stringify({ verifier, state, nonce }));
  const url = new URL(config.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: config.client_id,
    redirect_uri: redirectUri(),
    scope: config.scope,
    state,
    nonce,
    code_challenge: base64url(await sha256(verifier)),
    code_challenge_method: 'S256',
  }).toString();
  location.assign(url.toString());
}

// One POST to the proxy. A CORS refusal makes fetch throw (TypeError) before any answer.
async function proxyPost(path, body) {
  if (config.client) body.client = config.client;
  const response = await fetch(new URL(path, config.proxy), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(`HTTP ${response.status} ${json.error || ''}`.trim());
  }
  return json;
}

async function showSession(message) {
  const digest = await sha256(tokens.access_token);
  $('fingerprint').textContent = Array.from(digest.slice(0, 4), (b) =>
    b.toString(16).padStart(2, '0')).join('');
  $('expires').textContent = tokens.expires_in ? `${tokens.expires_in} s` : 'unknown';
  $('has-refresh').textContent = tokens.refresh_token ? 'yes' : 'no';
  const claims = claimsOf(tokens.id_token) || tokens.claims || {};
  tokens.claims = claims;
  const body = $('claims').tBodies[0];
  body.replaceChildren();
  for (const [key, value] of Object.entries(claims)) {
    const row = body.insertRow();
    row.insertCell().textContent = key;
    row.insertCell().textContent = typeof value === 'string' ? value : JSON.stringify(value);
  }
  $('claims-json').textContent = JSON.stringify(claims);
  $('session').hidden = false;
  $('refresh').disabled = !tokens.refresh_token;
  $('revoke').disabled = false;
  $('login').disabled = true;
  show(message, 'ok');
}

async function handleCallback(params) {
  const saved = JSON.parse(sessionStorage.getItem('authdeck-spa') || 'null');
  sessionStorage.removeItem('authdeck-spa');
  // The code must not stay in the address bar or the history.
  history.replaceState(null, '', location.pathname.replace(/callback$/, ''));
  if (params.get('error')) throw new Error(`the provider answered ${params.get('error')}`);
  if (!saved || params.get('state') !== saved.state) throw new Error('state mismatch');
  try {
    tokens = await proxyPost('/api/auth/exchange', {
      code: params.get('code'),
      code_verifier: saved.verifier,
      redirect_uri: redirectUri(),
    });
  } catch (e) {
    throw new Error(`exchange failed: ${e.message}`);
  }
  const claims = claimsOf(tokens.id_token);
  if (claims && claims.nonce !== saved.nonce) {
    tokens = null;
    throw new Error('nonce mismatch');
  }
  await showSession(`Logged in as ${claims ? claims.sub : 'unknown'}`);
}

async function refresh() {
  try {
    const fresh = await proxyPost('/api/auth/refresh', { refresh_token: tokens.refresh_token });
    // A refresh may omit the refresh token (keep the old one) or the id_token.
    tokens = { ...tokens, ...fresh, refresh_token: fresh.refresh_token || tokens.refresh_token };
    await showSession('Refreshed');
  } catch (e) {
    show(`refresh failed: ${e.message}`, 'error');
  }
}

async function revoke() {
  // RFC 7009: the refresh token first (which ends the grant), then the access token.
  const errors = [];
  for (const [token, hint] of [[tokens.refresh_token, 'refresh_token'],
    [tokens.access_token, 'access_token']]) {
    if (!token) continue;
    try {
      await proxyPost('/api/auth/revoke', { token, token_type_hint: hint });
    } catch (e) {
      errors.push(`${hint}: ${e.message}`);
    }
  }
  tokens = null;
  $('session').hidden = true;
  $('refresh').disabled = true;
  $('revoke').disabled = true;
  $('login').disabled = false;
  if (errors.length) show(`Logged out; revocation failed for ${errors.join(', ')}`, 'error');
  else show('Revoked and logged out', 'ok');
}

async function main() {
  try {
    const response = await fetch('config.json', { cache: 'no-store' });
    config = await response.json();
  } catch (e) {
    show(`cannot load config.json: ${e.message}`, 'error');
    return;
  }
  $('login').addEventListener('click', () => login().catch((e) => show(e.message, 'error')));
  $('refresh').addEventListener('click', refresh);
  $('revoke').addEventListener('click', revoke);
  const params = new URLSearchParams(location.search);
  if (params.has('code') || params.has('error')) {
    show('Exchanging the code…');
    try {
      await handleCallback(params);
    } catch (e) {
      show(e.message, 'error');
      $('login').disabled = false;
    }
    return;
  }
  $('login').disabled = false;
  show('Not logged in');
}

main();
