// Drives examples/spa in Debian's headless Chromium with playwright-core, for
// tests/integration/proxy_spa.rs. The Rust test starts oidc-provider, `authdeck proxy` and two
// static servers for the page (an allowed and a disallowed origin), then runs this script and
// checks the one JSON line it prints on stdout. Everything else goes to stderr.
//
// Environment:
//   SPA_ALLOWED      the page on the origin the proxy allows, e.g. http://127.0.0.1:PORT
//   SPA_OTHER        the same page on an origin the proxy does not allow
//   SPA_PROXY        the proxy's base URL (for the after-revocation check, no Origin header)
//   SPA_SCREENSHOT   where to save the logged-in page (PNG)
//   SPA_PROFILE      a fresh, empty --user-data-dir
//   CHROMIUM         the browser binary (default /usr/bin/chromium)

import { chromium } from 'playwright-core';

const env = process.env;
const STEP = 20_000;
const result = { steps: [] };
const log = (...args) => console.error('spa:', ...args);

const context = await chromium.launchPersistentContext(env.SPA_PROFILE, {
  executablePath: env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const timer = setTimeout(() => {
  console.error('spa: overall timeout');
  process.exit(2);
}, 120_000);

try {
  const page = await context.newPage();
  page.on('console', (m) => log('console', m.text()));
  // What the proxy answered to the page's token requests, to check revocation afterwards.
  let lastRefreshToken = null;
  const proxyCalls = [];
  page.on('response', async (r) => {
    const path = new URL(r.url()).pathname;
    if (path.startsWith('/api/auth/')) {
      proxyCalls.push(`${r.request().method()} ${path} ${r.status()}`);
      if (r.status() === 200 && (path.endsWith('/exchange') || path.endsWith('/refresh'))) {
        const json = await r.json().catch(() => ({}));
        if (json.refresh_token) lastRefreshToken = json.refresh_token;
      }
    }
  });

  // Signs in and consents on oidc-provider's dev pages until the page is back on `origin`.
  async function completeProviderPages(p, origin) {
    for (let i = 0; i < 10; i += 1) {
      await p.waitForLoadState('load', { timeout: STEP });
      if (p.url().startsWith(origin)) return;
      if (await p.locator('input[name=login]').count()) {
        await p.fill('input[name=login]', 'spa-user');
        await p.fill('input[name=password]', 'any password');
      }
      const submit = p.locator('button[type=submit]').first();
      await Promise.all([p.waitForNavigation({ timeout: STEP }), submit.click()]);
    }
    throw new Error(`never returned to ${origin}: ${p.url()}`);
  }

  const status = (p) => p.textContent('#status');
  async function waitStatus(p, pattern) {
    await p.waitForFunction(
      (re) => new RegExp(re).test(document.getElementById('status').textContent),
      pattern.source,
      { timeout: STEP },
    );
    return status(p);
  }

  // 1. Allowed origin: login, exchange through the proxy, claims.
  await page.goto(`${env.SPA_ALLOWED}/`);
  await waitStatus(page, /Not logged in/);
  await Promise.all([page.waitForNavigation({ timeout: STEP }), page.click('#login')]);
  await completeProviderPages(page, env.SPA_ALLOWED);
  result.login_status = await waitStatus(page, /Logged in|failed|mismatch/);
  result.claims = JSON.parse((await page.textContent('#claims-json')) || '{}');
  result.url_after_login = page.url();
  result.fingerprint_login = await page.textContent('#fingerprint');
  await page.screenshot({ path: env.SPA_SCREENSHOT, fullPage: true });
  result.steps.push('login');

  // 2. Refresh through the proxy: a new access token.
  await page.click('#refresh');
  result.refresh_status = await waitStatus(page, /Refreshed|failed/);
  result.fingerprint_refresh = await page.textContent('#fingerprint');
  result.steps.push('refresh');

  // 3. Revoke through the proxy; the refresh token is then refused by the provider.
  const revokedToken = lastRefreshToken;
  await page.click('#revoke');
  result.revoke_status = await waitStatus(page, /Revoked|failed/);
  const after = await fetch(`${env.SPA_PROXY}/api/auth/refresh`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ refresh_token: revokedToken }),
  });
  result.refresh_after_revoke = { status: after.status, error: (await after.json()).error };
  result.steps.push('revoke');
  result.proxy_calls_allowed = [...proxyCalls];

  // 4. The same page on a disallowed origin: the provider login works, the exchange does not
  // (the browser refuses the proxy's preflight answer: no CORS headers).
  proxyCalls.length = 0;
  const other = await context.newPage();
  other.on('console', (m) => log('other console', m.text()));
  other.on('response', (r) => {
    const path = new URL(r.url()).pathname;
    if (path.startsWith('/api/auth/')) {
      proxyCalls.push(`${r.request().method()} ${path} ${r.status()}`);
    }
  });
  await other.goto(`${env.SPA_OTHER}/`);
  await waitStatus(other, /Not logged in/);
  await Promise.all([other.waitForNavigation({ timeout: STEP }), other.click('#login')]);
  await completeProviderPages(other, env.SPA_OTHER);
  result.other_status = await waitStatus(other, /Logged in|failed|mismatch/);
  result.other_session_hidden = await other.locator('#session').isHidden();
  result.proxy_calls_other = [...proxyCalls];
  result.steps.push('other-origin');
} catch (e) {
  result.error = String(e && e.stack ? e.stack : e);
} finally {
  clearTimeout(timer);
  await context.close();
}
process.stdout.write(`${JSON.stringify(result)}\n`);
