// The page's sign-in at an issuer (web/oidc.js), in node: PKCE's S256 against RFC 7636's
// example, the authorization request, what the issuer sends back, the token requests, the
// checks of the token endpoint's answer (nonce, errors), sign-out, and when to renew.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  authorizeUrl, callbackOf, challengeOf, claimsOf, codeRequest, discoveryUrl, endpoints, logoutUrl, randomString,
  refreshRequest, renewIn, tokensOf, withoutCallback, RENEW_BEFORE_MS, SCOPE,
} from '../../web/oidc.js';

const jwt = (claims) => `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;

test('PKCE S256 is RFC 7636 appendix B, and random strings are URL-safe and fresh', async () => {
  assert.equal(await challengeOf('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk'), 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM');
  const a = randomString(48);
  assert.match(a, /^[A-Za-z0-9_-]{64}$/);
  assert.notEqual(a, randomString(48));
});

test('discovery: the endpoints, and Cognito\'s sign-out beside its token endpoint', () => {
  assert.equal(discoveryUrl('https://cognito-idp.us-east-1.amazonaws.com/us-east-1_X/'),
    'https://cognito-idp.us-east-1.amazonaws.com/us-east-1_X/.well-known/openid-configuration');
  const cognito = {
    authorization_endpoint: 'https://d.auth.us-east-1.amazoncognito.com/oauth2/authorize',
    token_endpoint: 'https://d.auth.us-east-1.amazoncognito.com/oauth2/token',
  };
  assert.deepEqual(endpoints(cognito), {
    authorize: cognito.authorization_endpoint, token: cognito.token_endpoint,
    logout: 'https://d.auth.us-east-1.amazoncognito.com/logout',
  });
  assert.equal(endpoints({ ...cognito, end_session_endpoint: 'http://127.0.0.1:3003/logout' }).logout, 'http://127.0.0.1:3003/logout');
  assert.equal(endpoints({ token_endpoint: cognito.token_endpoint }), null);
  assert.equal(endpoints({ ...cognito, authorization_endpoint: 'javascript:alert(1)' }), null);
  assert.equal(endpoints(null), null);
});

test('the authorization request asks for a code with PKCE, state and nonce', () => {
  const url = new URL(authorizeUrl('https://i.example/oauth2/authorize', {
    clientId: 'c1', redirectUri: 'https://d.cloudfront.net/', state: 's1', nonce: 'n1', challenge: 'ch',
  }));
  const p = Object.fromEntries(url.searchParams);
  assert.deepEqual(p, {
    response_type: 'code', client_id: 'c1', redirect_uri: 'https://d.cloudfront.net/', scope: SCOPE,
    state: 's1', nonce: 'n1', code_challenge: 'ch', code_challenge_method: 'S256',
  });
});

test('what comes back: a code, an error, or nothing; and the address bar without it', () => {
  assert.deepEqual(callbackOf('?code=abc&state=s1'), { code: 'abc', state: 's1' });
  assert.deepEqual(callbackOf('?error=access_denied&error_description=no&state=s1'),
    { error: 'access_denied', description: 'no', state: 's1' });
  assert.equal(callbackOf('?room=rust'), null);
  assert.equal(withoutCallback({ pathname: '/', search: '?room=rust&code=a&state=b', hash: '#x' }), '/?room=rust#x');
  assert.equal(withoutCallback({ pathname: '/', search: '?code=a&state=b', hash: '' }), '/');
});

test('token requests are form-encoded with the verifier or the refresh token', () => {
  const code = new URLSearchParams(codeRequest({ code: 'c', verifier: 'v', clientId: 'id', redirectUri: 'https://p/' }));
  assert.deepEqual(Object.fromEntries(code), {
    grant_type: 'authorization_code', code: 'c', code_verifier: 'v', client_id: 'id', redirect_uri: 'https://p/',
  });
  const refresh = new URLSearchParams(refreshRequest({ refreshToken: 'r', clientId: 'id' }));
  assert.deepEqual(Object.fromEntries(refresh), { grant_type: 'refresh_token', refresh_token: 'r', client_id: 'id' });
});

test('the token endpoint\'s answer is checked: the nonce, errors, a missing ID token', () => {
  const id = jwt({ sub: 'u', nonce: 'n1', exp: 2_000_000_000 });
  assert.deepEqual(tokensOf({ id_token: id, refresh_token: 'r1' }, { nonce: 'n1' }), { idToken: id, refreshToken: 'r1' });
  assert.match(tokensOf({ id_token: id }, { nonce: 'other' }).problem, /nonce/);
  assert.equal(tokensOf({ error: 'invalid_grant', error_description: 'used' }).problem, 'invalid_grant: used');
  assert.match(tokensOf({ access_token: 'x' }).problem, /no ID token/);
  assert.match(tokensOf(null).problem, /JSON/);
  // A refresh answer carries no new refresh token: the old one stays.
  const renewed = jwt({ sub: 'u', exp: 2_000_000_000 });
  assert.deepEqual(tokensOf({ id_token: renewed }, { refreshToken: 'r1' }), { idToken: renewed, refreshToken: 'r1' });
});

test('renewal comes a minute before expiry, sign-out goes back to the page', () => {
  const now = 1_000_000_000_000;
  assert.equal(renewIn(jwt({ exp: now / 1000 + 3600 }), now), 3_600_000 - RENEW_BEFORE_MS);
  assert.equal(renewIn(jwt({ exp: now / 1000 + 30 }), now), 0, 'already due');
  assert.equal(renewIn(jwt({ sub: 'u' }), now), null);
  assert.equal(claimsOf('garbage'), null);
  const out = new URL(logoutUrl('https://d.auth.us-east-1.amazoncognito.com/logout', { clientId: 'c1', logoutUri: 'https://p/' }));
  assert.equal(out.searchParams.get('client_id'), 'c1');
  assert.equal(out.searchParams.get('logout_uri'), 'https://p/');
  assert.equal(out.searchParams.get('post_logout_redirect_uri'), 'https://p/');
  assert.equal(out.searchParams.has('id_token_hint'), false, 'no bearer token in a URL');
});
