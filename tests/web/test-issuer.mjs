// An OpenID Connect issuer the browser tests serve themselves, written apart from the local
// stack's development issuer: discovery, JWKS (an RSA key made here), an authorization
// endpoint that signs in one user at once (as an issuer with a session does) and hands back a
// code bound to the client, redirect URI and PKCE challenge, a token endpoint that checks the
// verifier (S256) and signs an RS256 ID token, and sign-out. Loopback only.
import { createHash, createSign, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

const b64url = (buffer) => Buffer.from(buffer).toString('base64url');

/** Starts the issuer for `clientId`, sending users back only to `redirectUris`; {url, trades, close}. */
export async function startIssuer({ clientId, redirectUris, user = { sub: 'tess-1', name: 'Tess' } }) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = `test-${b64url(randomBytes(6))}`;
  const codes = new Map();
  const state = { url: null, trades: 0 };
  const sign = (claims) => {
    const input = `${b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid }))}.${b64url(JSON.stringify(claims))}`;
    return `${input}.${b64url(createSign('RSA-SHA256').update(input).sign(privateKey))}`;
  };
  const json = (response, status, body) => {
    response.writeHead(status, { 'content-type': 'application/json', 'access-control-allow-origin': '*' });
    response.end(JSON.stringify(body));
  };
  const server = createServer((request, response) => {
    const url = new URL(request.url, state.url);
    const q = url.searchParams;
    if (url.pathname === '/.well-known/openid-configuration') {
      return json(response, 200, {
        issuer: state.url, jwks_uri: `${state.url}/jwks`, authorization_endpoint: `${state.url}/authorize`,
        token_endpoint: `${state.url}/token`, end_session_endpoint: `${state.url}/logout`,
        response_types_supported: ['code'], code_challenge_methods_supported: ['S256'],
        id_token_signing_alg_values_supported: ['RS256'], subject_types_supported: ['public'],
      });
    }
    if (url.pathname === '/jwks') {
      return json(response, 200, { keys: [{ ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }] });
    }
    if (url.pathname === '/authorize') {
      const ok = q.get('client_id') === clientId && redirectUris.includes(q.get('redirect_uri'))
        && q.get('response_type') === 'code' && q.get('code_challenge_method') === 'S256' && q.get('code_challenge');
      if (!ok) return json(response, 400, { error: 'invalid_request' });
      const code = b64url(randomBytes(24));
      codes.set(code, { redirectUri: q.get('redirect_uri'), challenge: q.get('code_challenge'), nonce: q.get('nonce') });
      const back = new URL(q.get('redirect_uri'));
      back.searchParams.set('code', code);
      back.searchParams.set('state', q.get('state') ?? '');
      response.writeHead(302, { location: back.toString() });
      return response.end();
    }
    if (url.pathname === '/token' && request.method === 'OPTIONS') {
      response.writeHead(204, { 'access-control-allow-origin': '*', 'access-control-allow-headers': 'content-type' });
      return response.end();
    }
    if (url.pathname === '/token' && request.method === 'POST') {
      let body = '';
      request.on('data', (chunk) => { body += chunk; });
      request.on('end', () => {
        const form = new URLSearchParams(body);
        const grant = codes.get(form.get('code'));
        codes.delete(form.get('code'));
        if (form.get('client_id') !== clientId) return json(response, 400, { error: 'invalid_client' });
        const verified = grant && grant.redirectUri === form.get('redirect_uri')
          && b64url(createHash('sha256').update(form.get('code_verifier') ?? '').digest()) === grant.challenge;
        if (form.get('grant_type') !== 'authorization_code' || !verified) return json(response, 400, { error: 'invalid_grant' });
        state.trades += 1;
        const now = Math.floor(Date.now() / 1000);
        const idToken = sign({ iss: state.url, aud: clientId, sub: user.sub, name: user.name, nonce: grant.nonce, iat: now, exp: now + 600 });
        return json(response, 200, { id_token: idToken, access_token: idToken, token_type: 'Bearer', expires_in: 600 });
      });
      return undefined;
    }
    if (url.pathname === '/logout') {
      const to = q.get('post_logout_redirect_uri');
      if (!redirectUris.includes(to)) return json(response, 400, { error: 'invalid_request' });
      response.writeHead(302, { location: to });
      return response.end();
    }
    return json(response, 404, { error: 'not_found' });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${server.address().port}`;
  return {
    get url() { return state.url; },
    get trades() { return state.trades; },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
