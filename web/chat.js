// The chat client's logic, free of the DOM so it can be tested on its own: where to
// connect and as whom (and where a saved token may go by itself), how big a message may be
// (one 32 KB frame), how long to wait before reconnecting (and when not to), what a server
// frame means and whose name it shows, which room names are valid, who is in the room, which
// history messages are new, where each message goes in its room's order (`seq`) and what to
// ask to fill a hole, which messages the page still has to (re)send (its outbox), which
// messages are the user's own to edit or delete (and what an edit or a deletion does to the
// timeline), who is shown typing, the direct conversations (with whom, their last message, which
// are unread), and what a moderator's page offers and is told.

/**
 * API Gateway's limit on one WebSocket frame: a bigger frame closes the connection with 1009.
 * Browsers send each message as one frame, so this caps a message; the 128 KB message quota
 * and the broadcast's few hundred bytes of "type", "from" and "sentAt" stay well under it.
 */
export const MAX_FRAME_BYTES = 32 * 1024;

/** From this many bytes on the composer shows how much of the frame a message uses. */
export const HINT_FROM_BYTES = 24 * 1024;

const encoder = new TextEncoder();

/** A `clientId` as the server takes it: 1 to 64 of A–Z, a–z, 0–9, `_` and `-`. */
const CLIENT_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Whether `id` is a `clientId` the server takes. */
export function validClientId(id) {
  return typeof id === 'string' && CLIENT_ID.test(id);
}

/** How long the clientIds the page makes are (a UUID's 36 characters). */
export const CLIENT_ID_CHARS = 36;

/**
 * A new clientId: a random UUID (36 characters, all valid), from crypto.randomUUID(), or from
 * getRandomValues() where randomUUID() is missing (it needs a secure context).
 */
export function newClientId(source = globalThis.crypto) {
  if (typeof source?.randomUUID === 'function') return source.randomUUID();
  const bytes = source.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * The request that sends `text` to everyone, with its `clientId` when it has a valid one: the
 * server keeps a message once per clientId, so the same request may be sent again safely.
 */
export function chatRequest(text, clientId = null) {
  return JSON.stringify(validClientId(clientId)
    ? { action: 'onMessage', message: text, clientId }
    : { action: 'onMessage', message: text });
}

/**
 * The request that sends `text` directly to the user with id `to` (signed in only), with its
 * `clientId` when it has a valid one, kept once per clientId as in rooms.
 */
export function dmRequest(to, text, clientId = null) {
  return JSON.stringify(validClientId(clientId)
    ? { action: 'dm', to, message: text, clientId }
    : { action: 'dm', to, message: text });
}

/** A clientId as long as the page's, for measuring. */
const SAMPLE_CLIENT_ID = 'x'.repeat(CLIENT_ID_CHARS);

/**
 * The bytes on the wire for `text`: its request as UTF-8, JSON escapes included, with a clientId
 * as long as the ones the page makes (or `clientId`); a direct message to `to` when given.
 */
export function frameBytes(text, clientId = SAMPLE_CLIENT_ID, to = null) {
  return encoder.encode(to === null ? chatRequest(text, clientId) : dmRequest(to, text, clientId)).length;
}

/** `bytes` in KB with one decimal, rounded up so that anything over the limit never reads as 32.0. */
export function kb(bytes) {
  return (Math.ceil((bytes * 10) / 1024) / 10).toFixed(1);
}

/** Why `text` cannot be sent (to the room, or directly to user `to`), or null when it can. */
export function refusal(text, to = null) {
  if (text.trim() === '') return 'Write something first.';
  const bytes = frameBytes(text, SAMPLE_CLIENT_ID, to);
  if (bytes > MAX_FRAME_BYTES) {
    return `This message is ${kb(bytes)} KB; API Gateway takes at most ${MAX_FRAME_BYTES / 1024} KB in one frame. Shorten it.`;
  }
  return null;
}

/** The composer's size indicator for `text` (to the room, or to user `to`): null while it is small, else {text, over}. */
export function sizeHint(text, to = null) {
  const bytes = frameBytes(text, SAMPLE_CLIENT_ID, to);
  if (bytes < HINT_FROM_BYTES) return null;
  return { text: `${kb(bytes)} of ${MAX_FRAME_BYTES / 1024} KB`, over: bytes > MAX_FRAME_BYTES };
}

/** The WebSocket URL to use: `?ws=` wins, else the page's own host when served over HTTP. */
export function defaultUrl(location) {
  const param = new URLSearchParams(location.search).get('ws');
  if (param) return param;
  if (location.protocol === 'http:' || location.protocol === 'https:') {
    return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
  }
  return '';
}

/** Milliseconds before reconnect attempt `attempt` (1, 2, …): doubling from 500 ms to 10 s, with jitter. */
export function backoff(attempt, random = Math.random) {
  const base = Math.min(10_000, 500 * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.75 + 0.5 * random()));
}

/** A short, readable form of a connection id. */
export function shortId(id) {
  return typeof id === 'string' ? id.replace(/=+$/, '').slice(-6) : '?';
}

/**
 * What a server frame means: {kind: 'message', id, room, from, name, user, text, sentAt, seq,
 * clientId, editedAt, deleted} (id, room, name, user, seq, clientId and editedAt null when the
 * server sent none, or none valid; user only in signed-in modes; deleted true for a tombstone,
 * whose text is empty), {kind: 'dm', id, seq, with, from, user, name, to, text, sentAt,
 * clientId, room: null, editedAt, deleted} (a direct message: `with` the other user of the
 * conversation, `user` the sender's user id), {kind: 'edited', room, with, id, seq, text,
 * editedAt}, {kind: 'deleted', room, with, id, seq} (`with` null unless of a direct message),
 * {kind: 'typing', room, from, user, name}, {kind: 'joined' | 'left', room, from, name, user},
 * {kind: 'members', room, you, members: [{from, name, user}], more}, {kind: 'history', room,
 * with, messages: [message…], truncated, more, gap, oldest} (a direct conversation's names
 * `with`, room null, and holds dm messages; oldest null unless gap), {kind: 'moderated',
 * action, room, user, until, connections} (a moderator's action done), {kind: 'error', code,
 * text, retryAfterMs, clientId, until} (retryAfterMs null unless the server said how long to
 * wait, clientId null unless it answers a message that had one, until null unless a ban says
 * when it ends), or {kind: 'notice', text} for API Gateway's own frames and anything unexpected.
 */
export function interpret(data) {
  let frame;
  try {
    frame = JSON.parse(data);
  } catch {
    return { kind: 'notice', text: String(data) };
  }
  return interpretFrame(frame) ?? { kind: 'notice', text: String(data) };
}

const stringOrNull = (value) => (typeof value === 'string' ? value : null);

/** A `seq` as the server numbers messages (1, 2, …), or null. */
const seqOrNull = (value) => (Number.isSafeInteger(value) && value >= 1 ? value : null);

const clientIdOrNull = (value) => (validClientId(value) ? value : null);

/** What a parsed frame means (as interpret() says), or null when it is nothing the page knows. */
function interpretFrame(frame) {
  if (frame === null || typeof frame !== 'object') return null;
  if (frame.type === 'message' && typeof frame.message === 'string') {
    return {
      kind: 'message', id: stringOrNull(frame.id) || null, room: stringOrNull(frame.room), from: String(frame.from ?? ''),
      name: stringOrNull(frame.name), user: stringOrNull(frame.user) || null, text: frame.message, sentAt: frame.sentAt,
      seq: seqOrNull(frame.seq), clientId: clientIdOrNull(frame.clientId),
      editedAt: stringOrNull(frame.editedAt) || null, deleted: frame.deleted === true,
    };
  }
  if (frame.type === 'edited' && typeof frame.message === 'string') {
    return {
      kind: 'edited', room: stringOrNull(frame.room), with: stringOrNull(frame.with) || null, id: stringOrNull(frame.id) || null,
      seq: seqOrNull(frame.seq), text: frame.message, editedAt: stringOrNull(frame.editedAt) || null,
    };
  }
  if (frame.type === 'deleted') {
    return {
      kind: 'deleted', room: stringOrNull(frame.room), with: stringOrNull(frame.with) || null, id: stringOrNull(frame.id) || null,
      seq: seqOrNull(frame.seq),
    };
  }
  if (frame.type === 'typing') {
    return {
      kind: 'typing', room: stringOrNull(frame.room), from: String(frame.from ?? ''), user: stringOrNull(frame.user) || null,
      name: stringOrNull(frame.name),
    };
  }
  if (frame.type === 'dm' && typeof frame.message === 'string' && stringOrNull(frame.with)) {
    return {
      kind: 'dm', id: stringOrNull(frame.id) || null, seq: seqOrNull(frame.seq), with: frame.with, from: String(frame.from ?? ''),
      user: stringOrNull(frame.user) || null, name: stringOrNull(frame.name), to: stringOrNull(frame.to) || null,
      text: frame.message, sentAt: frame.sentAt, clientId: clientIdOrNull(frame.clientId), room: null,
      editedAt: stringOrNull(frame.editedAt) || null, deleted: frame.deleted === true,
    };
  }
  if (frame.type === 'moderated' && stringOrNull(frame.action) && stringOrNull(frame.user)) {
    const count = frame.connections;
    return {
      kind: 'moderated', action: frame.action, room: stringOrNull(frame.room), user: frame.user,
      until: stringOrNull(frame.until) || null, connections: Number.isSafeInteger(count) && count >= 0 ? count : null,
    };
  }
  if (frame.type === 'joined' || frame.type === 'left') {
    return {
      kind: frame.type, room: stringOrNull(frame.room), from: String(frame.from ?? ''), name: stringOrNull(frame.name),
      user: stringOrNull(frame.user) || null,
    };
  }
  if (frame.type === 'members' && Array.isArray(frame.members)) {
    const members = frame.members
      .filter((member) => member !== null && typeof member === 'object')
      .map((member) => ({
        from: String(member.from ?? ''), name: stringOrNull(member.name), user: stringOrNull(member.user) || null,
      }));
    return { kind: 'members', room: stringOrNull(frame.room), you: stringOrNull(frame.you), members, more: frame.more === true };
  }
  if (frame.type === 'history' && Array.isArray(frame.messages)) {
    // A direct conversation's (`with`) holds direct messages; a room's, chat messages.
    const withUser = stringOrNull(frame.with) || null;
    const kind = withUser ? 'dm' : 'message';
    const messages = frame.messages.map(interpretFrame).filter((message) => message?.kind === kind);
    const gap = frame.gap === true;
    return {
      kind: 'history', room: withUser ? null : stringOrNull(frame.room), with: withUser, messages,
      truncated: frame.truncated === true, more: frame.more === true, gap, oldest: gap ? seqOrNull(frame.oldest) : null,
    };
  }
  if (frame.type === 'error') {
    const wait = frame.retryAfterMs;
    return {
      kind: 'error', code: String(frame.code ?? 'error'), text: String(frame.message ?? ''),
      retryAfterMs: Number.isFinite(wait) && wait >= 0 ? wait : null, clientId: clientIdOrNull(frame.clientId),
      until: stringOrNull(frame.until) || null,
    };
  }
  if (typeof frame.message === 'string') {
    return {
      kind: 'error', code: 'gateway', text: `The API answered: ${frame.message}`, retryAfterMs: null, clientId: null, until: null,
    };
  }
  return null;
}

/** Local time of an RFC 3339 timestamp, as HH:MM. */
export function clock(sentAt) {
  const date = new Date(sentAt);
  if (Number.isNaN(date.getTime())) return '';
  return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** Longest name the page shows; the server sends at most 32 characters, a token's email may be longer. */
export const MAX_NAME_CHARS = 64;

/**
 * `text` fit to show as a name: control characters made spaces, invisible and bidirectional
 * formatting characters dropped (no reversed or hidden text), whitespace runs made one space,
 * trimmed, and cut to `max` characters (with an ellipsis).
 * Still plain text: the page puts it in textContent, never in HTML.
 */
export function cleanName(text, max = MAX_NAME_CHARS) {
  if (typeof text !== 'string') return '';
  const chars = [...text
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ')
    .replace(/[\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g, '')
    .replace(/\s+/g, ' ')
    .trim()];
  return chars.length > max ? `${chars.slice(0, max - 1).join('').trimEnd()}…` : chars.join('');
}

/** Who sent a chat message, as the page labels it: its name, or `User <short id>` from an older server. */
export function senderLabel(message) {
  return cleanName(message.name ?? '') || `User ${shortId(message.from)}`;
}

/** `url` with `key=value` added to its query string, the value percent-encoded (a space is %20). */
export function withParam(url, key, value) {
  const hash = url.indexOf('#');
  const [base, fragment] = hash === -1 ? [url, ''] : [url.slice(0, hash), url.slice(hash)];
  const joiner = !base.includes('?') ? '?' : /[?&]$/.test(base) ? '' : '&';
  return `${base}${joiner}${encodeURIComponent(key)}=${encodeURIComponent(value)}${fragment}`;
}

/**
 * The WebSocket URL to open for `base` as `who` in `room`: {name} adds `?name=` (open mode),
 * no name (or a blank one) adds nothing and the server names a guest; a room adds `&room=`
 * (none: the server's default, lobby). A token never goes into the URL (URLs end up in logs):
 * see `connectProtocols`.
 */
export function connectUrl(base, who = {}, room = null) {
  const name = typeof who.name === 'string' ? who.name.trim() : '';
  const url = name ? withParam(base, 'name', name) : base;
  return room ? withParam(url, 'room', room) : url;
}

/** The subprotocol the page speaks; `$connect` answers with it. */
export const SUBPROTOCOL = 'chat';

/**
 * The `Sec-WebSocket-Protocol` entries that carry JWT `token` in the handshake: the chat
 * protocol and `token.<JWT>` (the authorizer reads it there). null for a token with
 * characters a subprotocol name cannot hold (a JWT is base64url parts joined by dots).
 */
export function connectProtocols(token) {
  const clean = typeof token === 'string' ? token.trim() : '';
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]*)*$/.test(clean)) return null;
  return [SUBPROTOCOL, `token.${clean}`];
}

/** The token endpoint's URL for `name` (none when blank: the issuer decides). */
export function tokenRequestUrl(tokenUrl, name) {
  const clean = typeof name === 'string' ? name.trim() : '';
  return clean ? withParam(tokenUrl, 'name', clean) : tokenUrl;
}

/**
 * How the server signs users in, from its /chat-config.json (`value` is the parsed JSON, or
 * null when the fetch failed): {authMode: 'open' | 'jwt' | 'unknown', tokenUrl, issuer,
 * clientId}. With an `issuer` and a `clientId` (AuthMode cognito, or jwt with JwtClientId)
 * the page signs in through the issuer's authorization-code flow (oidc.js); with a `tokenUrl`
 * (the local development issuer) it asks for a token by name. 'unknown' (a static host) means
 * the page cannot tell and offers both a name and a token box.
 */
export function parseConfig(value) {
  const none = { tokenUrl: null, issuer: null, clientId: null, webSocketUrl: null };
  if (!value || typeof value !== 'object') return { authMode: 'unknown', ...none };
  const webSocketUrl = wsUrlOf(value.webSocketUrl);
  if (value.authMode === 'open') return { authMode: 'open', ...none, webSocketUrl };
  if (value.authMode === 'jwt' || value.authMode === 'cognito') {
    const url = (text) => (typeof text === 'string' && /^https?:\/\//i.test(text) ? text : null);
    const clientId = typeof value.clientId === 'string' && value.clientId.trim() ? value.clientId.trim() : null;
    const issuer = clientId ? url(value.issuer) : null;
    return {
      authMode: 'jwt', tokenUrl: issuer ? null : url(value.tokenUrl), issuer, clientId: issuer ? clientId : null, webSocketUrl,
    };
  }
  return { authMode: 'unknown', ...none };
}

/** `text` when it is a ws:// or wss:// URL, else null. */
function wsUrlOf(text) {
  return typeof text === 'string' && /^wss?:\/\/[^\s]+$/i.test(text.trim()) ? text.trim() : null;
}

/**
 * The config that holds for WebSocket URL `wsUrl`: the page's host's /chat-config.json speaks
 * for that host only, so another server (say `?ws=` pointing at AWS) is 'unknown'.
 */
export function configFor(config, wsUrl, location) {
  let host;
  try {
    host = new URL(wsUrl).host;
  } catch {
    host = null;
  }
  const named = config.webSocketUrl && socketKey(config.webSocketUrl) === socketKey(wsUrl);
  return named || (host !== null && host === location.host) ? config : parseConfig(null);
}

/**
 * The socket a token is for: WebSocket URL `url` as scheme://host[:port]/path, without user
 * info, query or fragment (a default port and an empty path normalised away), or null when it
 * is not a ws:// or wss:// URL.
 */
export function socketKey(url) {
  let parsed;
  try {
    parsed = new URL(String(url ?? '').trim());
  } catch {
    return null;
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') return null;
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
}

/**
 * Whether the page may send a token saved for socket `savedFor` to WebSocket URL `target`
 * without asking: only to that very socket. A link's `?ws=` chooses the target, so anything
 * else (another host, port or path, or no saved socket) waits for the user to sign in there.
 */
export function tokenMayGoTo(savedFor, target) {
  const saved = socketKey(savedFor);
  return saved !== null && saved === socketKey(target);
}

/**
 * A sign-in token handed over in the page's fragment (`#token=…`, or `#id_token=…` /
 * `#access_token=…` as an OAuth implicit grant returns it), or null.
 */
export function fragmentToken(hash) {
  const params = new URLSearchParams(String(hash ?? '').replace(/^#/, ''));
  for (const key of ['token', 'id_token', 'access_token']) {
    const value = params.get(key)?.trim();
    if (value) return value;
  }
  return null;
}

/**
 * The claims of JWT `token`, decoded for display only (nothing is verified here: the server
 * does that), or null when it is not a JWT with a JSON object as its payload.
 */
export function jwtClaims(token) {
  const parts = typeof token === 'string' ? token.trim().split('.') : [];
  if (parts.length !== 3 || !/^[A-Za-z0-9_-]+$/.test(parts[1])) return null;
  try {
    const base64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const binary = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
    const bytes = Uint8Array.from(binary, (char) => char.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    return claims !== null && typeof claims === 'object' && !Array.isArray(claims) ? claims : null;
  } catch {
    return null;
  }
}

/**
 * The claims a display name is taken from, first found wins. Cognito's ID tokens carry
 * `cognito:username`, its access tokens `username`.
 */
export const NAME_CLAIMS = ['name', 'preferred_username', 'cognito:username', 'username', 'email', 'sub'];

/** The name to show for JWT `token`, or null when it has none (the page then says "signed in"). */
export function tokenName(token) {
  const claims = jwtClaims(token);
  for (const claim of NAME_CLAIMS) {
    const name = cleanName(claims?.[claim]);
    if (name) return name;
  }
  return null;
}

/** Whether JWT `token` has an `exp` claim at or before `now` (ms); a token without one never expires here. */
export function tokenExpired(token, now = Date.now()) {
  const exp = jwtClaims(token)?.exp;
  return typeof exp === 'number' && exp * 1000 <= now;
}

/** The token endpoint's JSON answer as {token, name}, or null without a token in it. */
export function parseTokenAnswer(value) {
  const token = typeof value?.token === 'string' ? value.token.trim() : '';
  if (!token) return null;
  return { token, name: cleanName(value.name) || tokenName(token) };
}

/** Reconnect attempts with a token that keep failing before the page stops and asks for a new one. */
export const TOKEN_RETRIES = 6;

/**
 * What to do when a socket closes: 'reconnect' (with backoff), 'refused' (stop: the handshake
 * was refused, or the server cannot be reached; the user retries) or 'expired' (stop: the token
 * ran out). A refused handshake (401, 403) shows in a browser only as a close (1006) before
 * the socket opened, as an unreachable server does. So: a socket that was open reconnects,
 * and in open mode (the local stack says so) anything reconnects, as before. Otherwise a first
 * attempt that never opened stops at once, and a token that keeps failing after a drop (the
 * server restarting) stops after TOKEN_RETRIES attempts.
 * `attempt` counts the attempts before this one since the last open (0 for the first).
 */
export function afterClose({ opened, attempt, authMode, withToken, expired }) {
  if (withToken && expired) return 'expired';
  if (opened || authMode === 'open') return 'reconnect';
  if (attempt === 0) return 'refused';
  if (withToken && attempt >= TOKEN_RETRIES) return 'refused';
  return 'reconnect';
}

/** A connection open at least this long was a good one: the reconnect backoff starts over after it. */
export const STABLE_OPEN_MS = 10_000;

/**
 * The count of reconnect attempts to go on from when a socket closes (the page adds one and
 * waits backoff() of it): after a connection that stayed open STABLE_OPEN_MS or more, 0 (the
 * first wait is short again); after one closed sooner (`openForMs`), or one that never opened
 * (null), `attempt` as it was. So a server that lets the page in and closes it at once, again
 * and again (a moderator's kicks, a broken deployment), is retried ever more slowly, never in
 * a loop.
 */
export function attemptAfterClose(attempt, openForMs) {
  return openForMs !== null && openForMs >= STABLE_OPEN_MS ? 0 : attempt;
}

/**
 * The line the room's log keeps when an open connection closes with `code`, or null for a drop
 * the status line says enough about. 1000 is the server closing it on purpose (API Gateway's
 * own idle and lifetime limits close with 1001): a moderator's kick, here.
 */
export function closedText(code) {
  if (code !== 1000) return null;
  return 'Disconnected: the server closed the connection (code 1000); a moderator may have removed you from the room.';
}

/** The room a connection is in unless it asks for another, as the server has it. */
export const DEFAULT_ROOM = 'lobby';

/** Longest room name the server takes. */
export const MAX_ROOM_CHARS = 64;

/** A room name as the server takes it: 1 to 64 of A–Z, a–z, 0–9, `_` and `-`. */
const ROOM_NAME = /^[A-Za-z0-9_-]+$/;

/** Why `room` is not a room name the server takes, or null when it is. */
export function roomRefusal(room) {
  const name = typeof room === 'string' ? room : '';
  const rule = `1 to ${MAX_ROOM_CHARS} of A–Z, a–z, 0–9, _ and -`;
  if (name === '') return `Enter a room name (${rule}).`;
  const bad = [...name].find((char) => !ROOM_NAME.test(char));
  if (bad !== undefined) {
    const shown = bad === ' ' ? 'a space'
      : /^[\p{L}\p{N}\p{P}\p{S}]$/u.test(bad) ? `"${bad}"`
        : `U+${bad.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
    return `A room name may use only A–Z, a–z, 0–9, _ and -; ${shown} is not allowed.`;
  }
  if (name.length > MAX_ROOM_CHARS) return `A room name has at most ${MAX_ROOM_CHARS} characters; this one has ${name.length}.`;
  return null;
}

/**
 * The room the page opens in, from its `?room=`: {room, problem}. Without one, or with one the
 * server would refuse (problem says why), the room is lobby.
 */
export function initialRoom(location) {
  const asked = new URLSearchParams(location.search).get('room');
  if (asked === null) return { room: DEFAULT_ROOM, problem: null };
  const problem = roomRefusal(asked);
  return { room: problem ? DEFAULT_ROOM : asked, problem };
}

/**
 * The page's own address (path, query, fragment) with `?room=` set to `room`; the other
 * parameters (say `?ws=`) stay as they were written.
 */
export function pageWithRoom(location, room) {
  const key = (pair) => {
    try {
      return decodeURIComponent(pair.split('=')[0].replace(/\+/g, ' '));
    } catch {
      return pair;
    }
  };
  const kept = String(location.search ?? '').replace(/^\?/, '').split('&')
    .filter((pair) => pair !== '' && key(pair) !== 'room');
  return `${location.pathname}?${[...kept, `room=${encodeURIComponent(room)}`].join('&')}${location.hash ?? ''}`;
}

/** The request that moves this connection to `room`. */
export function joinRequest(room) {
  return JSON.stringify({ action: 'join', room });
}

/** The request for the current room's members. */
export function whoRequest() {
  return JSON.stringify({ action: 'who' });
}

/** How many recent messages the page asks for on entering a room (the server takes 1 to 100). */
export const HISTORY_LIMIT = 50;

/** How many messages the page asks for at a time when catching up after a `seq` (the server's most). */
export const CATCH_UP_LIMIT = 100;

/**
 * The request for the current room's `limit` most recent messages, or, with `after` (a `seq`,
 * 0 for the room's first), for up to `limit` of those after it, oldest first; with `withUser`,
 * the same of the direct conversation with that user instead.
 */
export function historyRequest(limit = HISTORY_LIMIT, after = null, withUser = null) {
  const request = withUser ? { action: 'history', with: withUser } : { action: 'history' };
  if (Number.isSafeInteger(after) && after >= 0) request.after = after;
  request.limit = limit;
  return JSON.stringify(request);
}

/**
 * What the page knows of who is in `room`: nobody until a `members` answer completes (known),
 * `you` the page's own connection id once the server said it.
 */
export function newRoster(room) {
  return { room, you: null, members: [], known: false, incoming: null, changes: [] };
}

/** `members` with `event` ({kind: 'joined' | 'left', from, name, user}) applied: each connection once. */
function applyPresence(members, event) {
  const others = members.filter((member) => member.from !== event.from);
  return event.kind === 'joined' ? [...others, { from: event.from, name: event.name, user: event.user ?? null }] : others;
}

/** `members` with each connection once (its last entry wins). */
function uniqueMembers(members) {
  return [...new Map(members.map((member) => [member.from, member])).values()];
}

/**
 * The roster after `event`: {kind: 'who'} (the page asked), or a `members`, `joined` or `left`
 * frame as interpret() gives it; frames for another room change nothing. A `members` answer may
 * come in several frames (`more`): they are gathered, and the list is replaced once the last one
 * is in, with every `joined` / `left` seen since the question replayed over it, in order, so
 * that none is lost whichever side of the snapshot it fell on.
 */
export function updateRoster(roster, event) {
  if (event.kind === 'who') return { ...roster, incoming: [], changes: [] };
  if (event.room !== roster.room) return roster;
  if (event.kind === 'members') {
    const gathering = roster.incoming !== null;
    const incoming = [...(roster.incoming ?? []), ...event.members];
    const changes = gathering ? roster.changes : [];
    const you = event.you ?? roster.you;
    if (event.more) return { ...roster, you, incoming, changes };
    const members = changes.reduce(applyPresence, uniqueMembers(incoming));
    return { room: roster.room, you, members, known: true, incoming: null, changes: [] };
  }
  if (event.kind === 'joined' || event.kind === 'left') {
    const changes = roster.incoming === null ? roster.changes : [...roster.changes, event];
    return { ...roster, members: applyPresence(roster.members, event), changes };
  }
  return roster;
}

/**
 * The roster as the page lists it: {from, label, own, user}, the page's own entry first, then by
 * name; `user` the signed-in member's user id, null in open mode.
 */
export function memberEntries(roster) {
  const entries = roster.members.map((member) => ({
    from: member.from, label: senderLabel(member), own: roster.you !== null && member.from === roster.you,
    user: member.user ?? null,
  }));
  return entries.sort((a, b) => (b.own - a.own)
    || a.label.localeCompare(b.label, undefined, { sensitivity: 'base' }) || a.from.localeCompare(b.from));
}

/** The heading of the member list: how many are in the room, once the server said. */
export function rosterSummary(roster) {
  if (!roster.known) return `In ${roster.room}`;
  const count = roster.members.length;
  return `${count} ${count === 1 ? 'person' : 'people'} in ${roster.room}`;
}

/** The system line for a `joined` / `left` frame: "bob joined", "bob left". */
export function presenceText(event) {
  return `${senderLabel(event)} ${event.kind === 'joined' ? 'joined' : 'left'}`;
}

/** What tells one chat message from another: its id, or (from a server without ids) sender, time and text. */
export function messageKey(message) {
  return message.id ? `id:${message.id}` : `from:${message.from}|${message.sentAt}|${message.text}`;
}

/**
 * The messages of a `history` answer for `room` the page has not shown yet, oldest first:
 * none whose messageKey is in `seen`, none twice, none from another room.
 */
export function mergeHistory(seen, messages, room) {
  const keys = new Set(seen);
  const fresh = [];
  for (const message of messages) {
    const key = messageKey(message);
    if (keys.has(key) || (message.room !== null && message.room !== room)) continue;
    keys.add(key);
    fresh.push(message);
  }
  return fresh;
}

/**
 * A room's messages as the page shows them, in the room's order. The server numbers a room's
 * messages (`seq`: 1, 2, 3, … no gaps, no repeats), but frames may arrive in any order: each is
 * placed by its seq, once. `lastSeq` is the seq up to which the page has every message (from
 * wherever it started: a room's recent history starts where it starts), null until known; a
 * message above lastSeq + 1 means a hole, filled by asking history after lastSeq.
 * `placed` holds {key, epoch, seq, message} in order; `epoch` grows when the server is seen
 * numbering the room from the start again (its data was wiped: a local stack restarted), and
 * what came before stays above. `started` once the first history answer is in (or given up on).
 */
export function newTimeline(room) {
  return {
    room, placed: [], keys: new Set(), seqs: new Set(), lastSeq: null, firstSeq: null, maxSeq: null,
    started: false, epoch: 0, holeFrom: null, holeTries: 0,
  };
}

/**
 * Where a message with `seq` (in `epoch`) goes among `placed` (in order): after every one that
 * comes before it or is equal, before the first that comes after. Messages without a seq (from
 * an older server) go last, in the order they came.
 */
export function placeIndex(placed, epoch, seq) {
  const order = seq ?? Infinity;
  let low = 0;
  let high = placed.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    const other = placed[mid];
    const before = other.epoch < epoch || (other.epoch === epoch && (other.seq ?? Infinity) <= order);
    if (before) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** Moves lastSeq over every seq the timeline has right after it. */
function advance(timeline) {
  if (timeline.lastSeq === null) return;
  while (timeline.seqs.has(timeline.lastSeq + 1)) timeline.lastSeq += 1;
}

/**
 * Puts `message` (as interpret() gives it) in its place in `timeline` (which it changes), and
 * returns its index in timeline.placed, or -1 when it is not shown: another room's, or one
 * placed already (by id, or by sender, time and text without one). A different message with a
 * seq already taken (or, arriving `live`, below the first seq seen) means the server numbers
 * the room afresh: it starts a new epoch, below what was shown.
 */
export function placeMessage(timeline, message, { live = false } = {}) {
  if (message.room != null && message.room !== timeline.room) return -1;
  const key = messageKey(message);
  if (timeline.keys.has(key)) return -1;
  const seq = message.seq ?? null;
  if (seq !== null) {
    const below = live && timeline.lastSeq !== null && timeline.firstSeq !== null && seq < timeline.firstSeq;
    if (timeline.seqs.has(seq) || below) {
      timeline.epoch += 1;
      timeline.seqs = new Set();
      timeline.lastSeq = null;
      timeline.firstSeq = null;
      timeline.maxSeq = null;
      timeline.holeFrom = null;
      timeline.holeTries = 0;
    }
  }
  const index = placeIndex(timeline.placed, timeline.epoch, seq);
  timeline.placed.splice(index, 0, { key, epoch: timeline.epoch, seq, message });
  timeline.keys.add(key);
  if (seq !== null) {
    timeline.seqs.add(seq);
    timeline.firstSeq = Math.min(timeline.firstSeq ?? seq, seq);
    timeline.maxSeq = Math.max(timeline.maxSeq ?? seq, seq);
    if (timeline.lastSeq === null && timeline.started) timeline.lastSeq = seq - 1;
    advance(timeline);
  }
  return index;
}

/**
 * The first history answer is in (`answered`), or the page stopped waiting for it: from now on
 * lastSeq counts from the first message shown. With none shown, an answer says the room keeps
 * nothing yet, so any message is after 0 (one that does not come is a hole; messages that expired
 * before are no news); without an answer the page counts from the next message that comes.
 */
export function startTimeline(timeline, answered = false) {
  timeline.started = true;
  if (timeline.lastSeq !== null) return;
  if (timeline.firstSeq !== null) timeline.lastSeq = timeline.firstSeq - 1;
  else if (answered) timeline.lastSeq = 0;
  advance(timeline);
}

/** Whether a message above lastSeq + 1 is shown while lastSeq + 1 is not. */
export function hasHole(timeline) {
  return timeline.lastSeq !== null && timeline.maxSeq !== null && timeline.maxSeq > timeline.lastSeq;
}

/**
 * The `history` request the page sends on entering a room (or opening a direct conversation,
 * whose timeline has `with`) or reconnecting: with nothing seen there, its HISTORY_LIMIT most
 * recent messages; else up to CATCH_UP_LIMIT after lastSeq.
 */
export function catchUpRequest(timeline) {
  const withUser = timeline.with ?? null;
  return timeline.lastSeq === null
    ? historyRequest(HISTORY_LIMIT, null, withUser)
    : historyRequest(CATCH_UP_LIMIT, timeline.lastSeq, withUser);
}

/** The `after` to ask for the next page of a `history` answer with more to come (its last seq), or null. */
export function nextHistoryPage(frame) {
  if (!frame.more) return null;
  const seqs = frame.messages.map((message) => message.seq).filter((seq) => seq !== null);
  if (seqs.length) return Math.max(...seqs);
  // Nothing kept in what the server read (all expired): go on from where it stopped.
  return frame.gap && Number.isInteger(frame.oldest) && frame.oldest > 0 ? frame.oldest - 1 : null;
}

/**
 * A `history` answer with gap: the messages after lastSeq and before `oldest` are gone for good.
 * Moves lastSeq up to oldest - 1 and returns how many messages the page will never show between
 * what it shows: 0 when there is no gap to speak of, or nothing shown before it (a room's
 * expired past, before the page came).
 */
export function applyGap(timeline, oldest) {
  if (oldest === null || timeline.lastSeq === null || oldest <= timeline.lastSeq + 1) return 0;
  let shown = 0;
  let before = false;
  for (const seq of timeline.seqs) {
    if (seq > timeline.lastSeq && seq < oldest) shown += 1;
    if (seq <= timeline.lastSeq) before = true;
  }
  const missing = oldest - timeline.lastSeq - 1 - shown;
  timeline.lastSeq = oldest - 1;
  advance(timeline);
  return before ? missing : 0;
}

/** How many times the page asks to fill the same hole before it stops waiting for it. */
export const HOLE_TRIES = 3;

/**
 * What to do about a hole, once it outlasted the wait for out-of-order frames: {after} to ask
 * history for, or, after HOLE_TRIES answers that did not fill it, {skipped} (how many seqs
 * lastSeq moved over); null without a hole. Counts the tries in `timeline`.
 */
export function fillHole(timeline) {
  if (!hasHole(timeline)) return null;
  if (timeline.holeFrom === timeline.lastSeq) timeline.holeTries += 1;
  else {
    timeline.holeFrom = timeline.lastSeq;
    timeline.holeTries = 1;
  }
  if (timeline.holeTries <= HOLE_TRIES) return { after: timeline.lastSeq };
  const next = Math.min(...[...timeline.seqs].filter((seq) => seq > timeline.lastSeq));
  const skipped = next - timeline.lastSeq - 1;
  timeline.lastSeq = next - 1;
  advance(timeline);
  return { skipped };
}

/** The notice for a gap: older messages are gone (`missing` of them, when known). */
export function gapText(missing) {
  if (!Number.isSafeInteger(missing) || missing < 1) return 'Older messages are no longer available.';
  return `Older messages are no longer available: ${missing} ${missing === 1 ? 'message' : 'messages'} expired before the page could show ${missing === 1 ? 'it' : 'them'}.`;
}

/** The request that replaces the text of the user's own message `id` with `text`. */
export function editRequest(id, text) {
  return JSON.stringify({ action: 'edit', id, message: text });
}

/** The request that deletes the user's own message `id`. */
export function deleteRequest(id) {
  return JSON.stringify({ action: 'delete', id });
}

/**
 * Whether `message` is the user's own. `me` is {you, user}: the page's current connection id
 * and, signed in, its user id (the `user` of its own entry in a `members` answer). A message
 * with a `user` (signed-in modes) is own when that is the page's user, whichever connection sent
 * it; one without (open mode) when its `from` is the page's current connection.
 */
export function ownMessage(message, me) {
  if (message.user) return Boolean(me.user) && message.user === me.user;
  return Boolean(me.you) && message.from === me.you;
}

/** Whether the page offers to edit and delete `message`: the user's own, with an id, not deleted. */
export function mayChange(message, me) {
  return Boolean(message.id) && !message.deleted && ownMessage(message, me);
}

/**
 * Whether the page offers to delete `message`: one it may change, or, for a `moderator`, any
 * with an id, not deleted (the server lets moderators delete any message of their room, and
 * edit only their own).
 */
export function mayDelete(message, me, moderator = false) {
  return Boolean(message.id) && !message.deleted && (moderator || ownMessage(message, me));
}

/**
 * The change a chat frame from `history` shows (an `edited` or `deleted` like the live ones),
 * or null for a message never changed: the page may have its older text.
 */
export function changeOf(message) {
  // A direct message's change names its conversation.
  const where = message.with ? { room: null, with: message.with } : { room: message.room };
  if (message.deleted) return { kind: 'deleted', ...where, id: message.id, seq: message.seq };
  if (!message.editedAt) return null;
  const { id, seq, text, editedAt } = message;
  return { kind: 'edited', ...where, id, seq, text, editedAt };
}

/**
 * Applies an `edited` or `deleted` frame (as interpret() gives it) to the message with its id in
 * `timeline` (which it changes): edited, the message takes the new text and `editedAt`; deleted,
 * it becomes a tombstone (empty text, `deleted`). Returns the timeline entry changed, or null
 * when nothing was: no message with that id (another room's, or one the page never had), one
 * deleted already, or an edit older than the one shown.
 */
export function applyChange(timeline, change) {
  if (!change.id || (change.room != null && change.room !== timeline.room)) return null;
  const key = messageKey({ id: change.id });
  const entry = timeline.placed.find((placed) => placed.key === key);
  if (!entry || entry.message.deleted) return null;
  if (change.kind === 'deleted') {
    entry.message = { ...entry.message, text: '', deleted: true };
    return entry;
  }
  if (change.kind !== 'edited') return null;
  const shown = Date.parse(entry.message.editedAt ?? '');
  if (Date.parse(change.editedAt ?? '') < shown) return null;
  entry.message = { ...entry.message, text: change.text, editedAt: change.editedAt };
  return entry;
}

/** The title of an edited message's "(edited)" marker: when it was edited, in local time. */
export function editedTitle(editedAt) {
  const date = new Date(editedAt ?? '');
  return Number.isNaN(date.getTime()) ? 'Edited' : `Edited ${date.toLocaleString()}`;
}

/**
 * A message the user sent, until the server's frame for it comes back: its clientId, text and
 * room, and its state: 'waiting' (to be sent, not before retryAt), 'sent' (on the wire, with no
 * answer yet; `tries` counts the sends) or 'failed' (refused; `reason` says why, and it is not
 * sent again).
 */
export function outgoing(text, room, clientId = newClientId()) {
  return { clientId, text, room, state: 'waiting', tries: 0, retryAt: 0, reason: null };
}

/**
 * What the page sends next in `room` from `outbox` (oldest first): {entry}, {waitMs} until the
 * first in line may go again, or null (nothing to send, or one is on the wire: one at a time, so
 * that they are kept in the order they were written). Failed ones are passed over.
 */
export function nextToSend(outbox, room, now = Date.now()) {
  const first = outbox.find((entry) => entry.room === room && entry.state !== 'failed');
  if (!first || first.state === 'sent') return null;
  if (first.retryAt > now) return { waitMs: first.retryAt - now };
  return { entry: first };
}

/** How many times a message is sent while the server answers `unavailable`, before it is given up. */
export const UNAVAILABLE_TRIES = 5;

/**
 * What an error answering `entry` (by its clientId) means, set in `entry`: 'retry' (waiting
 * again, from retryAt: rate_limited says when, unavailable backs off a few times) or 'failed'
 * (message_too_large, invalid_…: sending it again cannot help; reason says why).
 */
export function sendRefused(entry, error, now = Date.now(), random = Math.random) {
  if (error.code === 'rate_limited') {
    entry.state = 'waiting';
    entry.retryAt = now + (error.retryAfterMs ?? 1_000);
    return 'retry';
  }
  if (error.code === 'unavailable' && entry.tries < UNAVAILABLE_TRIES) {
    entry.state = 'waiting';
    entry.retryAt = now + backoff(Math.max(1, entry.tries), random);
    return 'retry';
  }
  entry.state = 'failed';
  entry.reason = error.text || error.code;
  return 'failed';
}

/** The small label of a pending message: "sending…", or why it was not sent. */
export function pendingLabel(entry) {
  return entry.state === 'failed' ? `Not sent: ${entry.reason ?? 'refused'}` : 'sending…';
}

/** The outbox as kept in sessionStorage: the messages still to deliver (clientId, text, room). */
export function outboxJson(outbox) {
  return JSON.stringify(outbox.filter((entry) => entry.state !== 'failed')
    .map(({ clientId, text, room }) => ({ clientId, text, room })));
}

/** The outbox kept by outboxJson(), read defensively: each entry waiting to be sent again. */
export function outboxFromJson(text) {
  let value;
  try {
    value = JSON.parse(text ?? '[]');
  } catch {
    return [];
  }
  if (!Array.isArray(value)) return [];
  const seen = new Set();
  const outbox = [];
  for (const item of value) {
    if (item === null || typeof item !== 'object') continue;
    const { clientId, text: body, room } = item;
    if (!validClientId(clientId) || seen.has(clientId) || typeof body !== 'string' || body.trim() === '') continue;
    if (typeof room !== 'string' || roomRefusal(room) !== null) continue;
    seen.add(clientId);
    outbox.push(outgoing(body, room, clientId));
  }
  return outbox;
}

/** The notice for a `rate_limited` error: how long until the server takes messages again. */
export function rateLimitText(retryAfterMs) {
  if (!Number.isFinite(retryAfterMs) || retryAfterMs < 0) return 'Slow down: wait a moment before you send again.';
  const seconds = Math.max(0.1, Math.ceil(retryAfterMs / 100) / 10);
  return `Slow down: you can send again in ${seconds.toFixed(1)} s.`;
}

/** The request that tells the room the user is typing. */
export function typingRequest() {
  return JSON.stringify({ action: 'typing' });
}

/** The page says the user is typing at most this often (the server drops more anyway). */
export const TYPING_EVERY_MS = 2_000;

/** How long someone is shown typing after their last `typing` frame. */
export const TYPING_SHOWN_MS = 4_000;

/**
 * Whether to send `typing` now, `now` (ms) on an `input` in the message box holding `text`: it
 * has something in it, and the last one went `TYPING_EVERY_MS` ago or more (`sentAt`, null for
 * never).
 */
export function typingDue(text, sentAt, now = Date.now()) {
  return text.trim() !== '' && (sentAt === null || now - sentAt >= TYPING_EVERY_MS);
}

/** Who is typing in `room`: {room, typists: [{from, label, until}]}, in the order they started. */
export function newTyping(room) {
  return { room, typists: [] };
}

/**
 * The typing state after a `typing` frame (as interpret() gives it) came at `now` (ms): its
 * sender is shown until TYPING_SHOWN_MS from now; one of another room changes nothing. Those
 * no longer shown are dropped.
 */
export function typingSeen(typing, frame, now = Date.now()) {
  if (frame.room !== typing.room) return typing;
  const entry = { from: frame.from, label: senderLabel(frame), until: now + TYPING_SHOWN_MS };
  const typists = typing.typists.filter((typist) => typist.until > now);
  const index = typists.findIndex((typist) => typist.from === frame.from);
  if (index === -1) typists.push(entry);
  else typists[index] = entry;
  return { ...typing, typists };
}

/** The typing state once a chat message from connection `from` came: it is no longer typing. */
export function typingDone(typing, from) {
  if (!typing.typists.some((typist) => typist.from === from)) return typing;
  return { ...typing, typists: typing.typists.filter((typist) => typist.from !== from) };
}

/** The line under the messages at `now`: "alice is typing…", "alice and bob are typing…", "3 people are typing…", or ''. */
export function typingText(typing, now = Date.now()) {
  const labels = typing.typists.filter((typist) => typist.until > now).map((typist) => typist.label);
  if (labels.length === 0) return '';
  if (labels.length === 1) return `${labels[0]} is typing…`;
  if (labels.length === 2) return `${labels[0]} and ${labels[1]} are typing…`;
  return `${labels.length} people are typing…`;
}

/** Milliseconds from `now` until the typing line changes by itself (someone's time is up), or null. */
export function typingWakeIn(typing, now = Date.now()) {
  const ends = typing.typists.map((typist) => typist.until).filter((until) => until > now);
  return ends.length ? Math.min(...ends) - now : null;
}

/** The key of a direct conversation's timeline and of its pending messages (as a room's name is a room's). */
export function conversationKey(user) {
  return `dm:${user}`;
}

/** The timeline of the direct conversation with user `user`: a room's (see newTimeline), with `with`. */
export function newConversationTimeline(user) {
  return { ...newTimeline(conversationKey(user)), with: user };
}

/** What a deleted message reads as, in its log and a conversation's preview. */
export const DELETED_TEXT = 'message deleted';

/** Whether direct message `dm` (as interpret() gives it) was sent by the page's user: `with` names the other one. */
export function ownDm(dm) {
  return dm.user !== dm.with;
}

/**
 * The conversations the page saw this session, most recently active first: {user, name, last,
 * lastMine, lastSeq, unread}, `user` the other person's user id, `name` their name as last seen
 * (null until known), `last` the text of the latest message seen (null before any), `lastMine`
 * whether the user wrote it, `unread` whether one of theirs came while the conversation was not
 * open. Each function returns a new list.
 */
export function addConversation(conversations, user, name = null) {
  const clean = cleanName(name ?? '') || null;
  const known = conversations.find((conversation) => conversation.user === user);
  if (!known) return [{ user, name: clean, last: null, lastMine: false, lastSeq: null, unread: false }, ...conversations];
  if (!clean || clean === known.name) return conversations;
  return conversations.map((conversation) => (conversation === known ? { ...conversation, name: clean } : conversation));
}

/**
 * The conversations once direct message `dm` is in: its conversation (with dm.with) takes the
 * sender's name when the other person sent it, and the text when it is the latest seen (then it
 * moves first); it is unread when it is `news` (it came live, or in a catch-up after a
 * reconnect) from the other person while it is not `open`.
 */
export function dmSeen(conversations, dm, { open = false, news = true } = {}) {
  const mine = ownDm(dm);
  const list = addConversation(conversations, dm.with, mine ? null : dm.name);
  const known = list.find((conversation) => conversation.user === dm.with);
  const latest = known.lastSeq === null || dm.seq === null || dm.seq >= known.lastSeq;
  const unread = known.unread || (news && !mine && !open);
  if (!latest) return list.map((conversation) => (conversation === known ? { ...known, unread } : conversation));
  const last = dm.deleted ? DELETED_TEXT : dm.text;
  const updated = { ...known, last, lastMine: mine, lastSeq: dm.seq ?? known.lastSeq, unread };
  return [updated, ...list.filter((conversation) => conversation !== known)];
}

/**
 * The conversations once an `edited` or `deleted` frame of a direct message (`change.with`) came:
 * the preview follows when it is of the last message seen (a deleted text is not shown on).
 */
export function conversationChanged(conversations, change) {
  return conversations.map((conversation) => (conversation.user === change.with && change.seq !== null
    && conversation.lastSeq === change.seq
    ? { ...conversation, last: change.kind === 'deleted' ? DELETED_TEXT : change.text } : conversation));
}

/** The conversations with the one with `user` read (it is open). */
export function readConversation(conversations, user) {
  return conversations.map((conversation) => (conversation.user === user && conversation.unread
    ? { ...conversation, unread: false } : conversation));
}

/** What the page shows of a conversation: its other person's name, or `User <short id>` before it is known. */
export function conversationLabel(conversation) {
  return conversation.name || `User ${shortId(conversation.user)}`;
}

/** The one-line preview of a conversation's last message: "You: …" for the user's own, '' before any. */
export function conversationPreview(conversation, max = 60) {
  if (conversation.last === null) return '';
  const text = cleanName(conversation.last, max);
  return conversation.lastMine ? `You: ${text}` : text;
}

/** How many conversations have unread messages. */
export function unreadCount(conversations) {
  return conversations.filter((conversation) => conversation.unread).length;
}

/**
 * What the member list offers next to `entry` (see memberEntries): {message, moderate}, for
 * another signed-in user (one with a `user` that is not the page's own `ownUser`) only: a direct
 * message when `signedIn`, Kick and Ban for a `moderator`.
 */
export function memberActions(entry, { signedIn = false, ownUser = null, moderator = false } = {}) {
  const other = signedIn && Boolean(entry.user) && Boolean(ownUser) && entry.user !== ownUser;
  return { message: other, moderate: other && moderator };
}

/** The group whose members are moderators (the stack's ModeratorGroup, by default). */
export const MODERATOR_GROUP = 'moderators';

/** The token claim that lists the user's groups, as Cognito names it (the stack's GroupsClaim, by default). */
export const GROUPS_CLAIM = 'cognito:groups';

/** The groups JWT `claims` list: an array of strings, or one space-separated string. */
export function tokenGroups(claims) {
  const groups = claims?.[GROUPS_CLAIM];
  if (typeof groups === 'string') return groups.split(/\s+/).filter(Boolean);
  return Array.isArray(groups) ? groups.filter((group) => typeof group === 'string') : [];
}

/**
 * Whether the page shows moderator buttons for a user with JWT `claims` (jwtClaims() of its own
 * token): they list MODERATOR_GROUP. The server decides who may kick, ban and delete, from the
 * token it verified; this only chooses which buttons to show.
 */
export function isModerator(claims) {
  return tokenGroups(claims).includes(MODERATOR_GROUP);
}

/** A ban's length the page proposes, and the longest the server takes (a year and a day), in minutes. */
export const DEFAULT_BAN_MINUTES = 60;
export const MAX_BAN_MINUTES = 527_040;

/** The whole number of minutes typed in `answer`, from 1 to MAX_BAN_MINUTES, or null for anything else. */
export function banMinutes(answer) {
  const text = typeof answer === 'string' ? answer.trim() : '';
  if (!/^\d{1,6}$/.test(text)) return null;
  const minutes = Number(text);
  return minutes >= 1 && minutes <= MAX_BAN_MINUTES ? minutes : null;
}

/** The request that closes `user`'s connections in the moderator's room (they may come back). */
export function kickRequest(user) {
  return JSON.stringify({ action: 'kick', user });
}

/** The request that bans `user` from the moderator's room for `minutes`. */
export function banRequest(user, minutes) {
  return JSON.stringify({ action: 'ban', user, minutes });
}

/**
 * The moderator's note for a `moderated` frame (as interpret() gives it), `label` naming its
 * user: "bob was removed from lobby (2 connections closed).", "bob is banned from lobby until
 * 14:05.", "bob may come back to lobby.".
 */
export function moderatedText(frame, label) {
  const room = frame.room ?? 'the room';
  if (frame.action === 'kick') {
    const count = frame.connections;
    const closed = count === null ? '' : ` (${count} ${count === 1 ? 'connection' : 'connections'} closed)`;
    return `${label} was removed from ${room}${closed}.`;
  }
  if (frame.action === 'ban') {
    const date = new Date(frame.until ?? '');
    return Number.isNaN(date.getTime()) ? `${label} is banned from ${room}.`
      : `${label} is banned from ${room} until ${date.toLocaleString([], { dateStyle: 'short', timeStyle: 'short' })}.`;
  }
  if (frame.action === 'unban') return `${label} may come back to ${room}.`;
  return `Done: ${frame.action} ${label} in ${room}.`;
}
