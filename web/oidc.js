// Signing in with an OpenID Connect issuer (a Cognito user pool's managed login, any other
// issuer, or the local stack's development issuer): the authorization-code flow with PKCE
// (S256) for a public client, no secret. The page reads the issuer's discovery document,
// sends the browser to its authorization endpoint with a fresh `state`, `nonce` and PKCE
// challenge (kept in this tab's sessionStorage only), trades the code it comes back with for
// tokens, checks `state` and the ID token's `nonce`, and renews the tokens with the refresh
// token before the ID token expires. Nothing here touches the DOM, so node tests it directly.

/** The scopes the page asks for. */
export const SCOPE = 'openid email profile';

/** How long before the ID token's expiry the page renews it (ms). */
export const RENEW_BEFORE_MS = 60_000;

const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

/** A random URL-safe string of `bytes` random bytes (a PKCE verifier, a state, a nonce). */
export function randomString(bytes = 32, cryptoImpl = globalThis.crypto) {
  return b64url(cryptoImpl.getRandomValues(new Uint8Array(bytes)));
}

/** PKCE's S256 challenge of `verifier`: base64url(SHA-256(verifier)). */
export async function challengeOf(verifier, cryptoImpl = globalThis.crypto) {
  const digest = await cryptoImpl.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return b64url(new Uint8Array(digest));
}

/** `{issuer}/.well-known/openid-configuration`, the trailing slash of an issuer kept once. */
export function discoveryUrl(issuer) {
  return `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
}

/**
 * The endpoints of a discovery document, or null when it lacks the two the flow needs. Cognito
 * publishes no end_session_endpoint: its sign-out is `/logout` beside the token endpoint.
 */
export function endpoints(discovery) {
  const url = (value) => (typeof value === 'string' && /^https?:\/\//i.test(value) ? value : null);
  const authorize = url(discovery?.authorization_endpoint);
  const token = url(discovery?.token_endpoint);
  if (!authorize || !token) return null;
  const logout = url(discovery?.end_session_endpoint) ?? `${new URL(token).origin}/logout`;
  return { authorize, token, logout };
}

/** The authorization request's URL. */
export function authorizeUrl(authorize, { clientId, redirectUri, state, nonce, challenge }) {
  const url = new URL(authorize);
  for (const [key, value] of Object.entries({
    response_type: 'code', client_id: clientId, redirect_uri: redirectUri, scope: SCOPE,
    state, nonce, code_challenge: challenge, code_challenge_method: 'S256',
  })) url.searchParams.set(key, value);
  return url.toString();
}

/**
 * What the issuer sent the browser back with (`search` of the page's URL): {code, state} or
 * {error, description, state}, or null when it is not a sign-in's return.
 */
export function callbackOf(search) {
  const params = new URLSearchParams(search);
  const state = params.get('state');
  if (params.has('error')) {
    return { error: params.get('error'), description: params.get('error_description') ?? '', state };
  }
  if (params.has('code')) return { code: params.get('code'), state };
  return null;
}

/** The page's URL without what a sign-in's return added (code, state, error, …). */
export function withoutCallback(location) {
  const params = new URLSearchParams(location.search);
  for (const key of ['code', 'state', 'error', 'error_description', 'error_uri', 'session_state', 'iss']) params.delete(key);
  const query = params.toString();
  return `${location.pathname}${query ? `?${query}` : ''}${location.hash}`;
}

/** The token request trading `code` (form-encoded, as OAuth requires). */
export function codeRequest({ code, verifier, clientId, redirectUri }) {
  return new URLSearchParams({
    grant_type: 'authorization_code', code, code_verifier: verifier, client_id: clientId, redirect_uri: redirectUri,
  }).toString();
}

/** The token request renewing with `refreshToken`. */
export function refreshRequest({ refreshToken, clientId }) {
  return new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId }).toString();
}

/**
 * The sign-out URL: back to `logoutUri` (Cognito's `logout_uri`, OIDC's
 * `post_logout_redirect_uri`). No `id_token_hint`: it would put a bearer token in a URL.
 */
export function logoutUrl(logout, { clientId, logoutUri }) {
  const url = new URL(logout);
  url.searchParams.set('client_id', clientId);
  url.searchParams.set('logout_uri', logoutUri);
  url.searchParams.set('post_logout_redirect_uri', logoutUri);
  return url.toString();
}

/** The claims of a JWT, decoded for reading (the server verifies it), or null. */
export function claimsOf(jwt) {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const text = new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0)));
    const claims = JSON.parse(text);
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

/**
 * The tokens of a token endpoint's answer, checked: {idToken, refreshToken} or {problem}. On a
 * code's trade, the ID token must carry the `nonce` the request was sent with (a refresh answer
 * carries none, and keeps the old refresh token unless it sends a new one).
 */
export function tokensOf(answer, { nonce = null, refreshToken = null } = {}) {
  if (!answer || typeof answer !== 'object') return { problem: 'the token endpoint did not answer JSON' };
  if (typeof answer.error === 'string') {
    return { problem: `${answer.error}${answer.error_description ? `: ${answer.error_description}` : ''}` };
  }
  const idToken = typeof answer.id_token === 'string' ? answer.id_token : null;
  const claims = idToken && claimsOf(idToken);
  if (!claims) return { problem: 'the token endpoint sent no ID token' };
  if (nonce !== null && claims.nonce !== nonce) return { problem: 'the ID token is not for this sign-in (nonce)' };
  return { idToken, refreshToken: typeof answer.refresh_token === 'string' ? answer.refresh_token : refreshToken };
}

/** Milliseconds until the ID token should be renewed (0: now), or null when it has no `exp`. */
export function renewIn(idToken, now = Date.now()) {
  const exp = claimsOf(idToken)?.exp;
  if (typeof exp !== 'number') return null;
  return Math.max(0, exp * 1000 - RENEW_BEFORE_MS - now);
}
