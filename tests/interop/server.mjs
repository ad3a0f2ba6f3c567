// A real, independent authorization server for authdeck's interop tests: panva's
// `oidc-provider`, configured like a typical provider that a native app talks to.
//
// Started by tests/integration/oidc_provider.rs. It listens on 127.0.0.1 only, prints ONE
// JSON line on stdout when ready ({"issuer": "...", "port": N}) and exits when its stdin
// closes, so a killed test run never leaves an orphan behind. Everything else it says goes
// to stderr.
//
// Environment (all optional):
//   OIDC_PORT               port to bind, default 0 (a free one, reported on the ready line)
//   OIDC_ACCESS_TOKEN_TTL   access token lifetime in seconds, default 60
//   OIDC_REFRESH_TOKEN_TTL  refresh token lifetime in seconds, default 3600
//   OIDC_DEVICE_CODE_TTL    device code lifetime in seconds, default 120
//   OIDC_REDIRECT_URIS      extra redirect URIs for every client, separated by spaces/commas

import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

const env = process.env;
const seconds = (name, fallback) => {
  const value = Number.parseInt(env[name] ?? '', 10);
  return Number.isFinite(value) && value > 0 ? value : fallback;
};

// Keep these in sync with the constants in tests/integration/oidc_provider.rs.
const PUBLIC_CLIENT_ID = 'authdeck-public';
const BASIC_CLIENT_ID = 'authdeck-basic';
const POST_CLIENT_ID = 'authdeck-post';
// Characters that must be form-urlencoded before base64 (RFC 6749 §2.3.1): space, ':', '+',
// '%', '&', '='. oidc-provider decodes them, so a client that skips the encoding fails.
const BASIC_CLIENT_SECRET = 'basic secret:with+reserved%chars&=';
const POST_CLIENT_SECRET = 'post-secret+with reserved&chars=%';

// Native clients (RFC 8252): oidc-provider accepts any port on a loopback redirect URI
// (127.0.0.1, [::1], localhost) of an `application_type: native` client when scheme, host
// and path match a registered one, so these cover a callback listener on a random port.
const redirectUris = [
  'http://127.0.0.1/callback',
  'http://[::1]/callback',
  'http://localhost/callback',
  ...(env.OIDC_REDIRECT_URIS ?? '').split(/[\s,]+/).filter(Boolean),
];

const common = {
  application_type: 'native',
  redirect_uris: redirectUris,
  grant_types: [
    'authorization_code',
    'refresh_token',
    'urn:ietf:params:oauth:grant-type:device_code',
  ],
  response_types: ['code'],
};

// Machine accounts (client credentials grant): one with a secret (Basic), one with
// private_key_jwt. The latter's key pair is made here at start; the private key goes to the
// test on the ready line, so no key is ever committed.
const MACHINE_BASIC_CLIENT_ID = 'authdeck-machine-basic';
const MACHINE_BASIC_SECRET = 'machine secret:+%&=';
const MACHINE_JWT_CLIENT_ID = 'authdeck-machine-jwt';
const machineKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const machineJwk = { ...machineKey.publicKey.export({ format: 'jwk' }), kid: 'machine-1', use: 'sig', alg: 'ES256' };
const machine = {
  application_type: 'web',
  redirect_uris: [],
  response_types: [],
  grant_types: ['client_credentials'],
  scope: 'api',
};

const clients = [
  {
    ...machine,
    client_id: MACHINE_BASIC_CLIENT_ID,
    client_secret: MACHINE_BASIC_SECRET,
    token_endpoint_auth_method: 'client_secret_basic',
  },
  {
    ...machine,
    client_id: MACHINE_JWT_CLIENT_ID,
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'ES256',
    jwks: { keys: [machineJwk] },
  },
  { ...common, client_id: PUBLIC_CLIENT_ID, token_endpoint_auth_method: 'none' },
  {
    ...common,
    client_id: BASIC_CLIENT_ID,
    client_secret: BASIC_CLIENT_SECRET,
    token_endpoint_auth_method: 'client_secret_basic',
  },
  {
    ...common,
    client_id: POST_CLIENT_ID,
    client_secret: POST_CLIENT_SECRET,
    token_endpoint_auth_method: 'client_secret_post',
  },
  // For benches/agent.rs: oidc-agent sends its client secret in a Basic header without the
  // form-urlencoding of RFC 6749 §2.3.1, and sends an empty Basic header for a public client,
  // which oidc-provider refuses for both clients above; a secret of letters and digits encodes
  // to itself, so this client serves oidc-agent as any other.
  {
    ...common,
    client_id: 'authdeck-bench-plain',
    client_secret: 'benchplainsecret0123456789',
    token_endpoint_auth_method: 'client_secret_basic',
  },
];

// The issuer must contain the real port, so bind first and build the provider afterwards.
const server = http.createServer();
server.listen(Number.parseInt(env.OIDC_PORT ?? '0', 10) || 0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  const provider = new Provider(issuer, {
    clients,
    // Any login is accepted: the account id is what was typed into the login form.
    async findAccount(_ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return { sub, email: `${sub}@example.test`, email_verified: true, name: `User ${sub}` };
        },
      };
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'api'],
    // Put the scope's claims (email, name) into the id_token too, as Google and Microsoft do,
    // not only into userinfo (the default), so a client can show who logged in.
    conformIdTokenClaims: false,
    // Fixed cookie keys: this server is throwaway and lives for one test.
    cookies: { keys: ['authdeck-interop-cookie-key'] },
    features: {
      // Built-in HTML login and consent forms that accept any login.
      devInteractions: { enabled: true },
      deviceFlow: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      clientCredentials: { enabled: true },
    },
    // PKCE (S256, the only method oidc-provider supports) for every client, not only the
    // public one (the default).
    pkce: { required: () => true },
    // By default oidc-provider issues a refresh token only for `offline_access`, which it drops
    // unless the request also says `prompt=consent`. Real providers differ; the tests want a
    // refresh token from every code or device grant, so issue one whenever the client may use
    // the refresh_token grant, and do not tie it to the browser session.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    expiresWithSession: async () => false,
    // Rotate on every use, for every client (default: public clients only). Replaying a used
    // refresh token gives invalid_grant AND revokes the whole grant (oidc-provider's reuse
    // detection).
    rotateRefreshToken: true,
    ttl: {
      AccessToken: seconds('OIDC_ACCESS_TOKEN_TTL', 60),
      RefreshToken: seconds('OIDC_REFRESH_TOKEN_TTL', 3600),
      DeviceCode: seconds('OIDC_DEVICE_CODE_TTL', 120),
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    // Print the reason of every 5xx to stderr; the Rust side shows it when a test fails.
    renderError(ctx, out, error) {
      console.error('render error:', out, error?.message);
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><title>error</title><pre>${JSON.stringify(out)}</pre>`;
    },
  });
  provider.on('server_error', (_ctx, error) => console.error('server_error:', error));

  server.on('request', provider.callback());
  const machinePem = machineKey.privateKey.export({ type: 'pkcs8', format: 'pem' });
  process.stdout.write(`${JSON.stringify({ issuer, port, machine_key: machinePem })}\n`);
});

// Exit when the parent (the test process) closes our stdin or dies.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
