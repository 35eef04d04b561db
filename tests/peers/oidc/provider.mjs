// A real OpenID Connect provider (the `oidc-provider` package) used as a test peer.
//
// Configuration comes from the environment, or from one JSON object given as the first argument
// (its keys, lower or upper case, win over the environment):
//   ISSUER    the issuer URL the provider announces (the Python tamper proxy's URL)
//   PORT      where to listen on 127.0.0.1 (0 picks a free port); "READY <port>" is printed once listening
//   CLIENTS   JSON list of client metadata: client_id, client_secret, redirect_uris,
//             post_logout_redirect_uris, token_endpoint_auth_method (default client_secret_post; a
//             client registered with either client_secret_post or client_secret_basic is accepted with
//             both), any other client metadata is passed through
//   ACCOUNTS  JSON object: login -> claims {sub, email, email_verified, given_name, family_name, groups,
//             ...}; an optional "password" entry is the account's password and is never a claim
//   CLAIMS    optional JSON object: scope -> list of claim names (replaces the default mapping below)
//
// Passwords: an account with a "password" entry signs in with exactly that password; an account
// without one signs in with any non-empty password. An unknown login or a wrong password shows the
// form again with status 401 and an element `.error`.
//
// Consent is automatic: whatever OIDC scopes and claims the client asks for are granted, without a
// consent screen. With EXIT_WITH_STDIN=1 the provider exits when its standard input closes (when its
// parent goes away).
//
// Test-only endpoints (reached on the provider's own port, not through the proxy):
//   POST /_peer/accounts  {"login": ..., "claims": {...}}   adds or replaces an account
//   POST /_peer/clients   {client metadata}                   adds or replaces a client
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import * as http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const fromArgv = process.argv[2] ? JSON.parse(process.argv[2]) : {};

function setting(name, fallback) {
  for (const key of [name.toLowerCase(), name]) {
    if (fromArgv[key] !== undefined) return fromArgv[key];
  }
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  return raw;
}

function jsonSetting(name, fallback) {
  const value = setting(name, undefined);
  if (value === undefined) return fallback;
  return typeof value === 'string' ? JSON.parse(value) : value;
}

const ISSUER = setting('ISSUER');
if (!ISSUER) {
  process.stderr.write('ISSUER is required\n');
  process.exit(2);
}
const PORT = Number(setting('PORT', '0'));

const DEFAULT_CLAIMS = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: ['name', 'given_name', 'family_name', 'preferred_username'],
  groups: ['groups'],
};
const scopeClaims = jsonSetting('CLAIMS', DEFAULT_CLAIMS);

// login -> { password, claims }, and sub -> login
const accounts = new Map();
const loginBySub = new Map();

function addAccount(login, claims) {
  if (typeof login !== 'string' || !login) throw new Error('an account needs a login');
  const { password, ...rest } = claims || {};
  const previous = accounts.get(login);
  if (previous) loginBySub.delete(previous.claims.sub);
  const account = {
    password: password === undefined || password === null ? undefined : String(password),
    claims: { preferred_username: login, ...rest, sub: String(rest.sub ?? login) },
  };
  accounts.set(login, account);
  loginBySub.set(account.claims.sub, login);
}

for (const [login, claims] of Object.entries(jsonSetting('ACCOUNTS', {}))) addAccount(login, claims);

function clientMetadata(input) {
  const metadata = {
    grant_types: ['authorization_code'],
    response_types: ['code'],
    id_token_signed_response_alg: 'RS256',
    token_endpoint_auth_method: 'client_secret_post',
    ...input,
  };
  if (!metadata.post_logout_redirect_uris) delete metadata.post_logout_redirect_uris;
  return metadata;
}

// In-memory storage without eviction: the package's own memory adapter is a size-bounded LRU,
// which could drop runtime-added clients during a long test session.
const store = new Map();
const sessionByUid = new Map();
const byUserCode = new Map();
const grantMembers = new Map();

class PeerAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  static get(key) {
    const entry = store.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : undefined;
    store.set(key, { payload, expiresAt });
    if (this.model === 'Session' && payload.uid) sessionByUid.set(payload.uid, id);
    if (payload.userCode) byUserCode.set(payload.userCode, id);
    if (payload.grantId) {
      if (!grantMembers.has(payload.grantId)) grantMembers.set(payload.grantId, new Set());
      grantMembers.get(payload.grantId).add(key);
    }
  }

  async find(id) {
    return PeerAdapter.get(this.key(id));
  }

  async findByUid(uid) {
    const id = sessionByUid.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = byUserCode.get(userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = PeerAdapter.get(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of grantMembers.get(grantId) || []) store.delete(key);
    grantMembers.delete(grantId);
  }
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body>
<h1>${escapeHtml(title)}</h1>
${body}
</body>
</html>
`;
}

function escapeHtml(value) {
  return String(value)
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `peer-${randomBytes(6).toString('hex')}`,
  alg: 'RS256',
  use: 'sig',
};

const claims = { acr: null, sid: null, auth_time: null, iss: null, ...scopeClaims };

const staticClients = jsonSetting('CLIENTS', []).map(clientMetadata);
const staticClientIds = new Set(staticClients.map((client) => client.client_id));

const configuration = {
  adapter: PeerAdapter,
  clients: staticClients,
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  claims,
  scopes: ['openid', 'offline_access', ...Object.keys(scopeClaims).filter((s) => s !== 'openid')],
  // Put the claims of the granted scopes into the id_token itself, not only into userinfo.
  conformIdTokenClaims: false,
  responseTypes: ['code'],
  pkce: { required: () => true },
  jwks: { keys: [signingKey] },
  // Plain http on 127.0.0.1: cookies are signed with these keys and are not "Secure" (oidc-provider
  // marks them Secure only when the request itself came over https).
  cookies: { keys: [randomBytes(32).toString('hex')] },
  findAccount: async (ctx, sub) => {
    const login = loginBySub.get(sub);
    if (login === undefined) return undefined;
    return {
      accountId: sub,
      claims: async () => ({ ...accounts.get(login).claims }),
    };
  },
  // Automatic consent: grant every OIDC scope and claim the request asks for.
  loadExistingGrant: async (ctx) => {
    const { Grant } = ctx.oidc.provider;
    const { clientId } = ctx.oidc.client;
    const { accountId } = ctx.oidc.account;
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(clientId);
    let grant = grantId ? await Grant.find(grantId) : undefined;
    if (!grant || grant.accountId !== accountId || grant.clientId !== clientId) {
      grant = new Grant({ accountId, clientId });
    }
    const scopes = [...ctx.oidc.requestParamOIDCScopes].join(' ');
    if (scopes) grant.addOIDCScope(scopes);
    const requested = [...ctx.oidc.requestParamClaims];
    if (requested.length) grant.addOIDCClaims(requested);
    await grant.save();
    return grant;
  },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.type = 'html';
        ctx.body = page(
          'Sign out',
          `${form}
<p>Do you want to sign out?</p>
<button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>`,
        );
      },
      postLogoutSuccessSource: async (ctx) => {
        ctx.type = 'html';
        ctx.body = page('Signed out', '<p class="signed-out">You are signed out.</p>');
      },
    },
  },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    const rows = Object.entries(out)
      .map(([key, value]) => `<p class="${escapeHtml(key)}"><strong>${escapeHtml(key)}</strong>: ${escapeHtml(value)}</p>`)
      .join('\n');
    ctx.body = page('Error', rows);
  },
};

const provider = new Provider(ISSUER, configuration);
const callback = provider.callback();

// oidc-provider checks a static client only when it is first used: check them all now.
for (const metadata of staticClients) {
  try {
    await provider.Client.validate(metadata);
  } catch (err) {
    process.stderr.write(`invalid client ${metadata.client_id}: ${err.message} ${err.error_description || ''}\n`);
    process.exit(1);
  }
}

function send(res, status, body, type = 'text/html; charset=utf-8') {
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function loginForm(uid, { login = '', error } = {}) {
  const message = error ? `<p class="error" role="alert">${escapeHtml(error)}</p>\n` : '';
  return page(
    'Sign in',
    `${message}<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<label>Login <input type="text" name="login" value="${escapeHtml(login)}" autocomplete="username" autofocus></label>
<label>Password <input type="password" name="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button>
</form>`,
  );
}

async function finishConsent(req, res, details) {
  const { prompt, grantId, session, params } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const result = { consent: { grantId: await grant.save() } };
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

async function handleInteraction(req, res, url) {
  const match = /^\/interaction\/([^/]+)(\/login)?$/.exec(url.pathname);
  if (!match) return send(res, 404, page('Not found', '<p>No such page.</p>'));
  const [, uid, isLogin] = match;
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    if (err instanceof errors.SessionNotFound) {
      return send(res, 400, page('Error', `<p class="error">${escapeHtml(err.error_description || err.message)}</p>`));
    }
    throw err;
  }
  if (details.uid !== uid) return send(res, 400, page('Error', '<p class="error">interaction mismatch</p>'));

  if (details.prompt.name === 'consent') return finishConsent(req, res, details);
  if (details.prompt.name !== 'login') {
    return send(res, 501, page('Error', `<p class="error">unsupported prompt ${escapeHtml(details.prompt.name)}</p>`));
  }

  if (!isLogin || req.method !== 'POST') {
    return send(res, 200, loginForm(uid, { login: details.params.login_hint || '' }));
  }

  const form = new URLSearchParams(await readBody(req));
  const login = form.get('login') || '';
  const password = form.get('password') || '';
  const account = accounts.get(login);
  const ok = account && password !== '' && (account.password === undefined || account.password === password);
  if (!ok) return send(res, 401, loginForm(uid, { login, error: 'Invalid login or password.' }));

  return provider.interactionFinished(
    req,
    res,
    { login: { accountId: account.claims.sub, amr: ['pwd'] } },
    { mergeWithLastSubmission: false },
  );
}

async function handlePeer(req, res, url) {
  if (req.method !== 'POST') return send(res, 405, '{"error":"method not allowed"}', 'application/json');
  const body = JSON.parse((await readBody(req)) || '{}');
  if (url.pathname === '/_peer/accounts') {
    addAccount(body.login, body.claims);
    return send(res, 200, '{"ok":true}', 'application/json');
  }
  if (url.pathname === '/_peer/clients') {
    const metadata = clientMetadata(body);
    if (staticClientIds.has(metadata.client_id)) {
      return send(res, 409, '{"error":"a client given at start cannot be replaced"}', 'application/json');
    }
    try {
      await provider.Client.validate(metadata);
    } catch (err) {
      return send(res, 400, JSON.stringify({ error: err.message, error_description: err.error_description }), 'application/json');
    }
    await new PeerAdapter('Client').upsert(metadata.client_id, metadata);
    return send(res, 200, '{"ok":true}', 'application/json');
  }
  return send(res, 404, '{"error":"not found"}', 'application/json');
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://peer.invalid');
  try {
    if (url.pathname.startsWith('/interaction/')) return await handleInteraction(req, res, url);
    if (url.pathname.startsWith('/_peer/')) return await handlePeer(req, res, url);
    return callback(req, res);
  } catch (err) {
    process.stderr.write(`${err.stack || err}\n`);
    if (!res.headersSent) send(res, 500, page('Error', `<p class="error">${escapeHtml(err.message)}</p>`));
    else res.end();
  }
});

server.listen(PORT, '127.0.0.1', () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});

if (setting('EXIT_WITH_STDIN', '') === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}
process.on('SIGTERM', () => process.exit(0));
