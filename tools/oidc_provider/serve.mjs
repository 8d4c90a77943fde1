// An OpenID Connect provider for trying dlhub's OIDC log-in and for its tests: the
// OpenID-certified `oidc-provider` library, served on 127.0.0.1 with its own log-in page.
//
//   node tools/oidc_provider/serve.mjs SETTINGS.json
//
// SETTINGS.json (written by whoever starts it; re-read at every log-in and every userinfo
// request, so users, passwords and groups can change while it runs):
//
//   {"port": 9000,
//    "clients": [{"client_id": "dlhub", "client_secret": "...",
//                 "redirect_uris": ["http://127.0.0.1:8000/hub/oauth_callback"]}],
//    "users": {"ann": {"password": "...", "groups": ["ml-team"], "email": "ann@example.org",
//                      "name": "Ann"}}}
//
// The issuer is http://127.0.0.1:<port>. Claims: `sub` and `preferred_username` (the user's
// key), `name`, `email`, and `groups` under the scope `groups`. A user no longer in the file
// cannot log in, and their tokens no longer open the userinfo endpoint. dlhub is a
// first-party client here: the grant is given at log-in, without a consent page.
// Prints one line "oidc-provider listening on <issuer>" when it serves.

import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider, { errors, interactionPolicy } from 'oidc-provider';

const settingsFile = process.argv[2];
if (!settingsFile) {
  console.error('usage: node serve.mjs SETTINGS.json');
  process.exit(2);
}
const readSettings = () => JSON.parse(readFileSync(settingsFile, 'utf8'));
const settings = readSettings();
const issuer = `http://127.0.0.1:${settings.port}`;

function userNamed(name) {
  const users = readSettings().users || {};
  return Object.hasOwn(users, name) ? users[name] : undefined;
}

function samePassword(given, expected) {
  const a = crypto.createHash('sha256').update(String(given)).digest();
  const b = crypto.createHash('sha256').update(String(expected)).digest();
  return crypto.timingSafeEqual(a, b);
}

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
<style>
 body{font-family:sans-serif;background:#eef1f5;margin:0}
 main{max-width:22rem;margin:5rem auto;background:#fff;padding:2rem;border-radius:8px;
      box-shadow:0 2px 8px #0002}
 h1{font-size:1.3rem;margin-top:0} label{display:block;margin:.8rem 0 .2rem}
 input{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}
 button{margin-top:1.2rem;width:100%;padding:.6rem;font-size:1rem;background:#2b5dab;color:#fff;
        border:0;border-radius:4px} .error{color:#b00020} .brand{color:#666;font-size:.85rem}
</style></head>
<body><main><p class="brand">Example identity provider</p>${body}</main></body></html>`;
}

function loginPage(uid, clientId, { login = '', error = '' } = {}) {
  return page(
    'Sign in',
    `<h1>Sign in to continue to ${escape(clientId)}</h1>
${error ? `<p class="error" role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login" autocomplete="off">
 <label for="username">Username</label>
 <input id="username" name="username" value="${escape(login)}" required autofocus>
 <label for="password">Password</label>
 <input id="password" name="password" type="password" required>
 <button type="submit">Sign in</button>
</form>
<p><a href="/interaction/${escape(uid)}/abort">Cancel</a></p>`,
  );
}

// a session whose account was removed from the settings signs in again (on the form, which
// refuses it) instead of failing
const policy = interactionPolicy.base();
policy.get('login').checks.push(
  new interactionPolicy.Check('account_removed', 'the account no longer exists', (ctx) => (
    ctx.oidc.session.accountId && !ctx.oidc.account
      ? interactionPolicy.Check.REQUEST_PROMPT
      : interactionPolicy.Check.NO_NEED_TO_PROMPT
  )),
);

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });

const provider = new Provider(issuer, {
  clients: settings.clients.map((c) => ({
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
    ...c,
  })),
  jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), use: 'sig', kid: 'test-key' }] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  scopes: ['openid', 'profile', 'email', 'groups', 'offline_access'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email'],
    groups: ['groups'],
  },
  features: { devInteractions: { enabled: false } },
  interactions: { policy, url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    if (!userNamed(id)) return undefined; // removed from the directory
    return {
      accountId: id,
      async claims() {
        const user = userNamed(id) || {};
        return {
          sub: id,
          preferred_username: id,
          name: user.name || id,
          email: user.email || `${id}@example.org`,
          groups: user.groups || [],
        };
      },
    };
  },
  // dlhub is first-party: everything it asks for is granted at log-in
  async loadExistingGrant(ctx) {
    const { client, session, params } = ctx.oidc;
    const grantId = session.grantIdFor(client.clientId);
    const grant = grantId
      ? await ctx.oidc.provider.Grant.find(grantId)
      : new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
    grant.addOIDCScope(String(params.scope || 'openid'));
    await grant.save();
    return grant;
  },
});
provider.proxy = false;

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([\w-]+)(\/login|\/abort)?$/);
  if (!match) return next();
  const [, uid, action] = match;
  ctx.set('cache-control', 'no-store');
  let details;
  try {
    details = await provider.interactionDetails(ctx.req, ctx.res);
  } catch (e) {
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = page('Sign-in expired', '<h1>This sign-in has expired.</h1><p>Start again from the application.</p>');
    return undefined;
  }
  if (details.uid !== uid) ctx.throw(400, 'interaction mismatch');
  const clientId = details.params.client_id;
  if (!action && ctx.method === 'GET') {
    ctx.type = 'html';
    ctx.body = loginPage(uid, clientId);
    return undefined;
  }
  if (action === '/abort') {
    const result = { error: 'access_denied', error_description: 'The user cancelled the sign-in' };
    return provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  }
  if (action === '/login' && ctx.method === 'POST') {
    const form = await readForm(ctx.req);
    const login = form.get('username') || '';
    const user = userNamed(login);
    if (!user || !samePassword(form.get('password') || '', user.password)) {
      ctx.status = 401;
      ctx.type = 'html';
      ctx.body = loginPage(uid, clientId, { login, error: 'Invalid username or password.' });
      return undefined;
    }
    return provider.interactionFinished(
      ctx.req,
      ctx.res,
      { login: { accountId: login } },
      { mergeWithLastSubmission: false },
    );
  }
  throw new errors.InvalidRequest('unknown interaction step');
});

provider.on('server_error', (ctx, err) => console.error('server_error', ctx.path, err));

provider.listen(settings.port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
