// The browser client's logic (web/chat.js) without a browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  afterClose, applyChange, applyGap, backoff, catchUpRequest, changeOf, chatRequest, cleanName, configFor, connectProtocols,
  connectUrl, defaultUrl, deleteRequest, editedTitle, editRequest, fillHole, fragmentToken, frameBytes, gapText, hasHole,
  historyRequest, initialRoom, interpret, joinRequest, jwtClaims, kb, mayChange, memberEntries, mergeHistory, messageKey,
  newClientId, newRoster, newTimeline, newTyping, nextHistoryPage, nextToSend, outboxFromJson, outboxJson, outgoing,
  ownMessage, pageWithRoom, parseConfig, parseTokenAnswer, pendingLabel, placeIndex, placeMessage, presenceText,
  rateLimitText, refusal, roomRefusal, rosterSummary, sendRefused, senderLabel, shortId, sizeHint, socketKey, startTimeline,
  tokenExpired, tokenMayGoTo, tokenName, tokenRequestUrl, typingDone, typingDue, typingRequest, typingSeen, typingText,
  typingWakeIn, updateRoster, validClientId, whoRequest, withParam, CATCH_UP_LIMIT, CLIENT_ID_CHARS, DEFAULT_ROOM,
  HISTORY_LIMIT, HOLE_TRIES, MAX_FRAME_BYTES, MAX_ROOM_CHARS, NAME_CLAIMS, TOKEN_RETRIES, TYPING_EVERY_MS, TYPING_SHOWN_MS,
  UNAVAILABLE_TRIES, addConversation, attemptAfterClose, banMinutes, banRequest, closedText, conversationChanged, conversationKey,
  conversationLabel, conversationPreview, dmRequest, dmSeen, isModerator, kickRequest, mayDelete, memberActions,
  moderatedText, newConversationTimeline, ownDm, readConversation, tokenGroups, unreadCount, DEFAULT_BAN_MINUTES,
  DELETED_TEXT, GROUPS_CLAIM, MAX_BAN_MINUTES, MODERATOR_GROUP, STABLE_OPEN_MS,
} from '../../web/chat.js';

/**
 * The bytes of `{"action":"onMessage","message":"","clientId":"<36 characters>"}` around the
 * text: every message goes with a clientId as long as a UUID.
 */
const ENVELOPE = 85;

test('requests are the documented onMessage frame, with the clientId the page gave it', () => {
  assert.deepEqual(JSON.parse(chatRequest('Hello everyone')), { action: 'onMessage', message: 'Hello everyone' });
  assert.deepEqual(JSON.parse(chatRequest('Hello everyone', 'k3J9-x')),
    { action: 'onMessage', message: 'Hello everyone', clientId: 'k3J9-x' });
  // One the server would refuse is left out rather than sent.
  for (const bad of ['', 'a b', 'x'.repeat(65), 'é', 7, null]) {
    assert.deepEqual(JSON.parse(chatRequest('hi', bad)), { action: 'onMessage', message: 'hi' }, String(bad));
  }
});

test('a frame is counted in UTF-8 bytes of the whole request, JSON escapes and clientId included', () => {
  assert.equal(MAX_FRAME_BYTES, 32768);
  assert.equal(CLIENT_ID_CHARS, 36);
  assert.equal(frameBytes(''), ENVELOPE);
  assert.equal(frameBytes('hello', newClientId()), ENVELOPE + 5, 'measured as the page sends it');
  assert.equal(frameBytes('hello', null), 35 + 5, 'a request without a clientId is 50 bytes shorter');
  assert.equal(frameBytes('hello'), ENVELOPE + 5);
  // Two, three and four bytes in UTF-8; the emoji is two UTF-16 units in JavaScript.
  assert.equal(frameBytes('é'), ENVELOPE + 2);
  assert.equal(frameBytes('€'), ENVELOPE + 3);
  assert.equal(frameBytes('😀'), ENVELOPE + 4);
  // Quotes, backslashes and newlines take two bytes, other control characters six.
  assert.equal(frameBytes('"'), ENVELOPE + 2);
  assert.equal(frameBytes('\\'), ENVELOPE + 2);
  assert.equal(frameBytes('a\nb'), ENVELOPE + 4);
  assert.equal(frameBytes('\u0001'), ENVELOPE + 6);
  // A lone surrogate goes out as a \udXXX escape, not as a replacement character.
  assert.equal(frameBytes('\ud800'), ENVELOPE + 6);
});

test('a message that fits one 32 KB frame is sent, one byte more is refused with a reason', () => {
  const room = MAX_FRAME_BYTES - ENVELOPE;
  assert.equal(refusal('x'.repeat(room)), null);
  assert.equal(refusal('x'.repeat(room + 1)), 'This message is 32.1 KB; API Gateway takes at most 32 KB in one frame. Shorten it.');
  // Multi-byte characters count as bytes, not characters.
  const euros = '€'.repeat(Math.floor(room / 3));
  assert.equal(refusal(`${euros}${'x'.repeat(room % 3)}`), null);
  assert.match(refusal(`${euros}${'x'.repeat(room % 3 + 1)}`), /^This message is 32\.1 KB;/);
  // Escapes count too: 22,000 characters but 33,000 bytes of text.
  assert.match(refusal('a"'.repeat(11_000)), /^This message is 32\.4 KB; API Gateway takes at most 32 KB in one frame/);
  assert.equal(refusal(`${'\n'.repeat((room - 1) / 2)}x`), null);
  assert.notEqual(refusal(`${'\n'.repeat((room - 1) / 2)}xy`), null);
  // The example from the README: a 40 KB paste.
  assert.match(refusal('x'.repeat(41_000 - ENVELOPE)), /^This message is 40\.1 KB;/);
});

test('empty messages are refused', () => {
  assert.match(refusal(''), /Write something/);
  assert.match(refusal('  \n '), /Write something/);
  assert.equal(refusal('hi'), null);
});

test('sizes read in KB, rounded up, and the composer shows them only near the limit', () => {
  assert.equal(kb(MAX_FRAME_BYTES), '32.0');
  assert.equal(kb(MAX_FRAME_BYTES + 1), '32.1');
  assert.equal(kb(0), '0.0');
  assert.equal(sizeHint('hello'), null);
  assert.deepEqual(sizeHint('x'.repeat(30 * 1024)), { text: '30.1 of 32 KB', over: false });
  assert.deepEqual(sizeHint('x'.repeat(MAX_FRAME_BYTES - ENVELOPE)), { text: '32.0 of 32 KB', over: false });
  assert.deepEqual(sizeHint('x'.repeat(40 * 1024)), { text: '40.1 of 32 KB', over: true });
});

test('the URL comes from ?ws= or the page host', () => {
  assert.equal(defaultUrl({ search: '?ws=wss://x.example/Test', protocol: 'http:', host: 'h' }), 'wss://x.example/Test');
  assert.equal(defaultUrl({ search: '', protocol: 'http:', host: '127.0.0.1:3001' }), 'ws://127.0.0.1:3001');
  assert.equal(defaultUrl({ search: '', protocol: 'https:', host: 'chat.example' }), 'wss://chat.example');
  assert.equal(defaultUrl({ search: '', protocol: 'file:', host: '' }), '');
});

test('backoff doubles up to ten seconds, with jitter', () => {
  const mid = () => 0.5;
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map((n) => backoff(n, mid)), [500, 1000, 2000, 4000, 8000, 10000, 10000]);
  assert.ok(backoff(1, () => 0) >= 375 && backoff(1, () => 0.999) <= 625);
});

test('frames are interpreted, never trusted', () => {
  const message = interpret('{"type":"message","from":"R1kmxc2VNjMCFIA=","message":"<b>x</b>","sentAt":"2026-01-01T00:00:00Z"}');
  assert.equal(message.kind, 'message');
  assert.equal(message.text, '<b>x</b>');
  assert.equal(interpret('{"type":"error","code":"empty_message","message":"m"}').code, 'empty_message');
  assert.equal(interpret('{"message":"Forbidden","connectionId":"a","requestId":"b"}').kind, 'error');
  assert.equal(interpret('not json').kind, 'notice');
  assert.equal(shortId('R1kmxc2VNjMCFIA='), 'jMCFIA');
});

/** An unsigned JWT with `payload` (a JSON object, or the raw text of the middle part). */
function jwt(payload) {
  const part = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'RS256', typ: 'JWT' })}.${part(payload)}.c2lnbmF0dXJl`;
}

test("a message is labelled with its sender's name, or its connection id from an older server", () => {
  const named = interpret('{"type":"message","from":"R1kmxc2VNjMCFIA=","name":"alice","message":"hi","sentAt":"x"}');
  assert.equal(named.name, 'alice');
  assert.equal(senderLabel(named), 'alice');
  const older = interpret('{"type":"message","from":"R1kmxc2VNjMCFIA=","message":"hi","sentAt":"x"}');
  assert.equal(older.name, null);
  assert.equal(senderLabel(older), 'User jMCFIA');
  assert.equal(senderLabel({ from: 'R1kmxc2VNjMCFIA=', name: '   ' }), 'User jMCFIA', 'a blank name is no name');
  assert.equal(senderLabel({ from: 'R1kmxc2VNjMCFIA=', name: 42 }), 'User jMCFIA', 'nor is a number');
  assert.equal(senderLabel({ from: 'a', name: '<b>bob</b>' }), '<b>bob</b>', 'markup stays text (the page uses textContent)');
});

test('names are cleaned for display: no controls, no bidi tricks, one line, at most 64 characters', () => {
  assert.equal(cleanName('  alice  '), 'alice');
  assert.equal(cleanName('a\nb\tc\u0000d'), 'a b c d');
  assert.equal(cleanName('evil\u202egnp.exe'), 'evilgnp.exe');
  assert.equal(cleanName('zero\u200bwidth'), 'zerowidth');
  assert.equal(cleanName('👩‍👩‍👧 family'), '👩‍👩‍👧 family', 'a zero-width joiner inside an emoji stays');
  assert.equal(cleanName('x'.repeat(64)), 'x'.repeat(64));
  assert.equal(cleanName('x'.repeat(65)), `${'x'.repeat(63)}…`);
  assert.equal(cleanName('😀'.repeat(70)).length, 63 * 2 + 1, 'cut by characters, never inside one');
  assert.equal(cleanName('abcdef', 4), 'abc…');
  assert.equal(cleanName(null), '');
  assert.equal(cleanName(undefined), '');
  assert.equal(cleanName({ toString: () => 'x' }), '');
});

test('the connect URL carries ?name= in open mode, never a token, nothing for a guest', () => {
  assert.equal(connectUrl('ws://127.0.0.1:3001', {}), 'ws://127.0.0.1:3001');
  assert.equal(connectUrl('ws://127.0.0.1:3001'), 'ws://127.0.0.1:3001');
  assert.equal(connectUrl('ws://127.0.0.1:3001', { name: '  ' }), 'ws://127.0.0.1:3001');
  assert.equal(connectUrl('ws://127.0.0.1:3001', { name: 'carol' }), 'ws://127.0.0.1:3001?name=carol');
  assert.equal(connectUrl('ws://h', { name: ' Zoë & co?#/+ ' }), 'ws://h?name=Zo%C3%AB%20%26%20co%3F%23%2F%2B');
  const token = jwt({ name: 'alice' });
  assert.equal(connectUrl('wss://x.example/Test', { token }), 'wss://x.example/Test', 'a token stays out of the URL');
  assert.equal(connectUrl('wss://x.example/Test?a=1', { name: 'bob' }), 'wss://x.example/Test?a=1&name=bob');
  assert.equal(withParam('wss://x/Test?', 'name', 'b'), 'wss://x/Test?name=b');
  assert.equal(withParam('http://h/token#f', 'name', 'b'), 'http://h/token?name=b#f');
  // The URL round-trips: what the server decodes is what was typed.
  assert.equal(new URL(connectUrl('ws://h', { name: 'Zoë & co?#/+' })).searchParams.get('name'), 'Zoë & co?#/+');
});

test('the token endpoint is asked for a name, and its answer read defensively', () => {
  assert.equal(tokenRequestUrl('http://127.0.0.1:3003/token', 'alice'), 'http://127.0.0.1:3003/token?name=alice');
  assert.equal(tokenRequestUrl('http://127.0.0.1:3003/token', 'a b'), 'http://127.0.0.1:3003/token?name=a%20b');
  assert.equal(tokenRequestUrl('http://127.0.0.1:3003/token', ' '), 'http://127.0.0.1:3003/token');
  const token = jwt({ sub: 'u1', name: 'from the token' });
  assert.deepEqual(parseTokenAnswer({ token, name: 'alice', expiresIn: 3600 }), { token, name: 'alice' });
  assert.deepEqual(parseTokenAnswer({ token }), { token, name: 'from the token' }, 'no name: the token says');
  assert.deepEqual(parseTokenAnswer({ token: 'opaque' }), { token: 'opaque', name: null });
  assert.equal(parseTokenAnswer({ name: 'alice' }), null);
  assert.equal(parseTokenAnswer({ token: '' }), null);
  assert.equal(parseTokenAnswer({ token: 7 }), null);
  assert.equal(parseTokenAnswer(null), null);
});

test("the sign-in mode comes from the page's /chat-config.json, for its own host or the API it names", () => {
  const none = { tokenUrl: null, issuer: null, clientId: null, webSocketUrl: null };
  assert.deepEqual(parseConfig({ authMode: 'open' }), { authMode: 'open', ...none });
  const jwtMode = { ...none, authMode: 'jwt', tokenUrl: 'http://127.0.0.1:3003/token' };
  assert.deepEqual(parseConfig(jwtMode), jwtMode);
  assert.deepEqual(parseConfig({ authMode: 'jwt' }), { authMode: 'jwt', ...none }, 'jwt without an issuer: paste');
  assert.deepEqual(parseConfig({ authMode: 'jwt', tokenUrl: 'javascript:alert(1)' }), { authMode: 'jwt', ...none });
  // Written by the stack's SiteContent: an issuer and a client id sign in with code + PKCE.
  const hosted = {
    authMode: 'cognito', webSocketUrl: 'wss://abc.execute-api.us-east-1.amazonaws.com/Test',
    issuer: 'https://cognito-idp.us-east-1.amazonaws.com/us-east-1_X', clientId: ' client-1 ',
  };
  assert.deepEqual(parseConfig(hosted), {
    authMode: 'jwt', tokenUrl: null, issuer: hosted.issuer, clientId: 'client-1', webSocketUrl: hosted.webSocketUrl,
  });
  assert.equal(parseConfig({ ...hosted, clientId: '' }).issuer, null, 'an issuer without a client: no code flow');
  assert.equal(parseConfig({ ...hosted, issuer: 'javascript:x' }).issuer, null);
  assert.equal(parseConfig({ ...hosted, webSocketUrl: 'https://x' }).webSocketUrl, null);
  // Fetch failed or 404 (a static host), or something else answered.
  for (const value of [null, undefined, 'open', [], {}, { authMode: 'magic' }]) {
    assert.deepEqual(parseConfig(value), { authMode: 'unknown', ...none });
  }
  const page = { host: '127.0.0.1:3001' };
  assert.deepEqual(configFor(jwtMode, 'ws://127.0.0.1:3001', page), jwtMode);
  assert.deepEqual(configFor(jwtMode, 'ws://127.0.0.1:3001/Test', page), jwtMode);
  assert.equal(configFor(jwtMode, 'wss://x.execute-api.us-east-1.amazonaws.com/Test', page).authMode, 'unknown');
  assert.equal(configFor(jwtMode, 'ws://127.0.0.1:4001', page).authMode, 'unknown');
  assert.equal(configFor(jwtMode, 'not a url', page).authMode, 'unknown');
  assert.equal(configFor(jwtMode, '', page).authMode, 'unknown');
  // On CloudFront the page's host is not the API's: the config speaks for the API it names.
  const cloudfront = { host: 'd1234.cloudfront.net' };
  const parsed = parseConfig(hosted);
  assert.deepEqual(configFor(parsed, hosted.webSocketUrl, cloudfront), parsed);
  assert.equal(configFor(parsed, 'wss://other.execute-api.us-east-1.amazonaws.com/Test', cloudfront).authMode, 'unknown');
});

test('a saved token goes by itself only to the socket it is for: same scheme, host, port and path', () => {
  const saved = socketKey('wss://x.example/Test');
  assert.equal(saved, 'wss://x.example/Test');
  assert.equal(socketKey('wss://x.example/Test?token=abc#f'), 'wss://x.example/Test', 'no query, no fragment');
  assert.equal(socketKey('  wss://user:pw@X.Example:443/Test '), 'wss://x.example/Test', 'no user info, default port');
  assert.equal(socketKey('ws://127.0.0.1:3001'), 'ws://127.0.0.1:3001/');
  for (const bad of ['', 'not a url', 'https://x.example/Test', 'javascript:alert(1)', null, undefined, 42]) {
    assert.equal(socketKey(bad), null, `no socket in ${String(bad)}`);
  }

  assert.equal(tokenMayGoTo(saved, 'wss://x.example/Test'), true);
  assert.equal(tokenMayGoTo(saved, 'wss://x.example/Test?a=1'), true, 'a query is not another socket');
  assert.equal(tokenMayGoTo('ws://127.0.0.1:3001/', 'ws://127.0.0.1:3001'), true);
  assert.equal(tokenMayGoTo(saved, 'wss://x.example/Prod'), false, 'same host, another path');
  assert.equal(tokenMayGoTo(saved, 'wss://x.example/'), false);
  assert.equal(tokenMayGoTo(saved, 'wss://x.example:8443/Test'), false, 'another port');
  assert.equal(tokenMayGoTo(saved, 'ws://x.example/Test'), false, 'another scheme');
  assert.equal(tokenMayGoTo(saved, 'wss://attacker.example/Test'), false, 'another host');
  assert.equal(tokenMayGoTo(saved, 'wss://x.example.attacker.example/Test'), false);
  assert.equal(tokenMayGoTo(saved, 'wss://x.example@attacker.example/Test'), false, 'user info is not the host');
  // Malformed on either side, or nothing saved: never.
  for (const [savedFor, target] of [[saved, 'not a url'], [saved, ''], ['not a url', 'not a url'], [null, null],
    [null, 'wss://x.example/Test'], ['', 'wss://x.example/Test'], [saved, 'https://x.example/Test']]) {
    assert.equal(tokenMayGoTo(savedFor, target), false, `${String(savedFor)} → ${String(target)}`);
  }
});

test('a token handed over in the fragment is found, in the forms an OAuth redirect uses too', () => {
  assert.equal(fragmentToken('#token=aaa.bbb.ccc'), 'aaa.bbb.ccc');
  assert.equal(fragmentToken('token=aaa.bbb.ccc'), 'aaa.bbb.ccc');
  assert.equal(fragmentToken('#id_token=i.d.t&access_token=a.c.c&token_type=Bearer'), 'i.d.t');
  assert.equal(fragmentToken('#access_token=a.c.c&expires_in=3600'), 'a.c.c');
  assert.equal(fragmentToken('#token=t.o.k&id_token=i.d.t'), 't.o.k');
  assert.equal(fragmentToken('#token=a%2Eb.c'), 'a.b.c');
  assert.equal(fragmentToken('#token='), null);
  assert.equal(fragmentToken('#section-2'), null);
  assert.equal(fragmentToken(''), null);
  assert.equal(fragmentToken(undefined), null);
});

test("a token's display name is decoded from its payload for display only, and never throws", () => {
  assert.equal(tokenName(jwt({ sub: 'u1', name: 'Alice A.' })), 'Alice A.');
  assert.equal(tokenName(jwt({ sub: 'u1', preferred_username: 'alice' })), 'alice');
  assert.equal(tokenName(jwt({ sub: 'u1', 'cognito:username': 'alice-c', email: 'a@example.com' })), 'alice-c');
  // A Cognito access token says `username`; its ID token's `cognito:username` comes first.
  assert.equal(tokenName(jwt({ sub: 'u1', username: 'alice-a', email: 'a@example.com' })), 'alice-a');
  assert.equal(tokenName(jwt({ sub: 'u1', username: 'alice-a', 'cognito:username': 'alice-c' })), 'alice-c');
  assert.deepEqual(NAME_CLAIMS, ['name', 'preferred_username', 'cognito:username', 'username', 'email', 'sub']);
  assert.equal(tokenName(jwt({ sub: 'u1', email: 'a@example.com' })), 'a@example.com');
  assert.equal(tokenName(jwt({ sub: '8c4b-11ef' })), '8c4b-11ef');
  assert.equal(tokenName(jwt({ sub: 'u1', name: '  ', preferred_username: 'second' })), 'second', 'a blank claim is skipped');
  assert.equal(tokenName(jwt({ name: 12, sub: 'u1' })), 'u1', 'so is one that is not a string');
  assert.equal(tokenName(jwt({ name: 'Zoë 😀' })), 'Zoë 😀', 'UTF-8 payloads decode');
  assert.equal(tokenName(jwt({ name: 'a\u202eb\nc' })), 'ab c', 'and are cleaned');
  assert.equal(tokenName(jwt({ iss: 'x' })), null);
  // Whatever is not a JWT with a JSON object inside gives no name and no exception.
  for (const bad of ['', 'abc', 'a.b', 'a.b.c.d', 'a..c', 'a.!!!.c', jwt('not json'), jwt('[1,2]'), jwt('null'), jwt('"s"'),
    `x.${Buffer.from([0xff, 0xfe, 0x7b, 0x7d]).toString('base64url')}.y`, null, undefined, 42, {}]) {
    assert.equal(tokenName(bad), null, `no name in ${String(bad)}`);
    assert.equal(jwtClaims(bad), null);
  }
  assert.deepEqual(jwtClaims(jwt({ sub: 'u1', exp: 1 })), { sub: 'u1', exp: 1 });
  // Padding-free base64url of every length decodes (1, 2 and 3 trailing bytes).
  for (const name of ['a', 'ab', 'abc', 'abcd']) assert.equal(tokenName(jwt({ name })), name);
});

test('a token is expired from its exp claim on; one without exp is left to the server', () => {
  const now = Date.UTC(2026, 0, 1);
  assert.equal(tokenExpired(jwt({ exp: now / 1000 + 60 }), now), false);
  assert.equal(tokenExpired(jwt({ exp: now / 1000 }), now), true);
  assert.equal(tokenExpired(jwt({ exp: now / 1000 - 1 }), now), true);
  assert.equal(tokenExpired(jwt({ sub: 'u1' }), now), false);
  assert.equal(tokenExpired(jwt({ exp: 'soon' }), now), false);
  assert.equal(tokenExpired('opaque', now), false);
});

test('a refused handshake is not retried in a loop; a dropped connection is, as before', () => {
  const jwtMode = { authMode: 'jwt', withToken: true, expired: false };
  // Closed before it opened, on the first try: refused (401/403 look like 1006 to a browser).
  assert.equal(afterClose({ ...jwtMode, opened: false, attempt: 0 }), 'refused');
  // Was open and dropped: reconnect, and keep trying a while if the server is restarting.
  assert.equal(afterClose({ ...jwtMode, opened: true, attempt: 0 }), 'reconnect');
  assert.equal(afterClose({ ...jwtMode, opened: false, attempt: 1 }), 'reconnect');
  assert.equal(afterClose({ ...jwtMode, opened: false, attempt: TOKEN_RETRIES - 1 }), 'reconnect');
  assert.equal(afterClose({ ...jwtMode, opened: false, attempt: TOKEN_RETRIES }), 'refused');
  // A token past its exp is not tried again, open or not.
  assert.equal(afterClose({ ...jwtMode, expired: true, opened: true, attempt: 0 }), 'expired');
  assert.equal(afterClose({ ...jwtMode, expired: true, opened: false, attempt: 3 }), 'expired');
  // Open mode reconnects whatever happens, as the page always did.
  const open = { authMode: 'open', withToken: false, expired: false };
  assert.equal(afterClose({ ...open, opened: false, attempt: 0 }), 'reconnect');
  assert.equal(afterClose({ ...open, opened: false, attempt: 50 }), 'reconnect');
  assert.equal(afterClose({ ...open, opened: true, attempt: 0 }), 'reconnect');
  // Unknown mode (AWS) without a token: a first refusal stops and asks for a token; a drop reconnects.
  const unknown = { authMode: 'unknown', withToken: false, expired: false };
  assert.equal(afterClose({ ...unknown, opened: false, attempt: 0 }), 'refused');
  assert.equal(afterClose({ ...unknown, opened: true, attempt: 0 }), 'reconnect');
  assert.equal(afterClose({ ...unknown, opened: false, attempt: 9 }), 'reconnect');
});

test('room names are 1 to 64 of A-Z, a-z, 0-9, _ and -, as the server takes them', () => {
  assert.equal(DEFAULT_ROOM, 'lobby');
  assert.equal(MAX_ROOM_CHARS, 64);
  for (const good of ['lobby', 'rust', 'R', 'a-b_C-9', '-', '_', 'x'.repeat(64)]) {
    assert.equal(roomRefusal(good), null, good);
  }
  assert.match(roomRefusal(''), /Enter a room name \(1 to 64 of A–Z, a–z, 0–9, _ and -\)/);
  assert.match(roomRefusal('x'.repeat(65)), /at most 64 characters; this one has 65/);
  assert.match(roomRefusal('two words'), /a space is not allowed/);
  assert.match(roomRefusal('zoë'), /"ë" is not allowed/);
  assert.match(roomRefusal('a/b'), /"\/" is not allowed/);
  assert.match(roomRefusal('a.b'), /"\." is not allowed/);
  assert.match(roomRefusal('tab\there'), /U\+0009 is not allowed/);
  assert.match(roomRefusal('a\u202eb'), /U\+202E is not allowed/, 'an invisible character is named by its code point');
  assert.match(roomRefusal('😀'), /"😀" is not allowed/, 'one character, not half of one');
  assert.match(roomRefusal(' lobby'), /a space/, 'the URL\'s room is not trimmed: the server would refuse it');
  assert.match(roomRefusal(null), /Enter a room name/);
  assert.match(roomRefusal(42), /Enter a room name/);
});

test("the page's room comes from its ?room=, lobby without one or for one the server would refuse", () => {
  assert.deepEqual(initialRoom({ search: '' }), { room: 'lobby', problem: null });
  assert.deepEqual(initialRoom({ search: '?room=rust' }), { room: 'rust', problem: null });
  assert.deepEqual(initialRoom({ search: '?ws=wss://x.example/Test&room=a-b_1' }), { room: 'a-b_1', problem: null });
  const bad = initialRoom({ search: '?room=no%20spaces' });
  assert.equal(bad.room, 'lobby');
  assert.match(bad.problem, /a space is not allowed/);
  assert.match(initialRoom({ search: '?room=' }).problem, /Enter a room name/);
});

test("the page's address carries ?room=, its other parameters kept as written", () => {
  const at = (search, hash = '') => ({ pathname: '/', search, hash });
  assert.equal(pageWithRoom(at(''), 'rust'), '/?room=rust');
  assert.equal(pageWithRoom(at('?room=lobby'), 'rust'), '/?room=rust');
  assert.equal(pageWithRoom(at('?ws=wss://x.example/Test'), 'rust'), '/?ws=wss://x.example/Test&room=rust');
  assert.equal(pageWithRoom(at('?room=a&ws=ws://h&room=b'), 'c'), '/?ws=ws://h&room=c', 'every old room goes');
  assert.equal(pageWithRoom(at('?ro%6Fm=a&roomy=1'), 'c'), '/?roomy=1&room=c', 'the key is compared decoded');
  assert.equal(pageWithRoom(at('?%E0%A4%A=1'), 'c'), '/?%E0%A4%A=1&room=c', 'a malformed key is kept, not thrown on');
  assert.equal(pageWithRoom({ pathname: '/chat/index.html', search: '?', hash: '#top' }, 'r'), '/chat/index.html?room=r#top');
});

test('the connect URL carries the room after who is connecting', () => {
  assert.equal(connectUrl('ws://127.0.0.1:3001', {}, 'lobby'), 'ws://127.0.0.1:3001?room=lobby');
  assert.equal(connectUrl('ws://127.0.0.1:3001', { name: 'carol' }, 'rust'), 'ws://127.0.0.1:3001?name=carol&room=rust');
  assert.equal(connectUrl('wss://x.example/Test', { token: 'a.b.c' }, 'a-b_1'), 'wss://x.example/Test?room=a-b_1');
  assert.equal(connectUrl('wss://x.example/Test?a=1', { name: ' ' }, 'rust'), 'wss://x.example/Test?a=1&room=rust');
  assert.equal(connectUrl('ws://h', { name: 'bob' }, null), 'ws://h?name=bob', 'no room: the server\'s default');
  const url = new URL(connectUrl('ws://h', { name: 'Zoë & co' }, 'rust'));
  assert.equal(url.searchParams.get('name'), 'Zoë & co');
  assert.equal(url.searchParams.get('room'), 'rust');
});

test('the room requests are the documented actions', () => {
  assert.deepEqual(JSON.parse(joinRequest('rust')), { action: 'join', room: 'rust' });
  assert.deepEqual(JSON.parse(whoRequest()), { action: 'who' });
  assert.equal(HISTORY_LIMIT, 50);
  assert.deepEqual(JSON.parse(historyRequest()), { action: 'history', limit: 50 });
  assert.deepEqual(JSON.parse(historyRequest(100)), { action: 'history', limit: 100 });
});

const chat = (id, text, room = 'lobby', from = 'A1', name = 'alice') => ({
  type: 'message', id, room, from, name, message: text, sentAt: '2026-01-01T00:00:00Z',
});

test('room frames are interpreted, never trusted', () => {
  const message = interpret(JSON.stringify(chat('m1', 'hi')));
  assert.deepEqual(message, {
    kind: 'message', id: 'm1', room: 'lobby', from: 'A1', name: 'alice', user: null, text: 'hi', sentAt: '2026-01-01T00:00:00Z',
    seq: null, clientId: null, editedAt: null, deleted: false,
  });
  const older = interpret('{"type":"message","from":"A1","message":"hi"}');
  assert.equal(older.id, null, 'an older server sends no id');
  assert.equal(older.room, null, 'nor a room');

  assert.deepEqual(interpret('{"type":"joined","room":"rust","from":"B2","name":"bob"}'),
    { kind: 'joined', room: 'rust', from: 'B2', name: 'bob', user: null });
  assert.deepEqual(interpret('{"type":"left","room":"lobby","from":"B2"}'),
    { kind: 'left', room: 'lobby', from: 'B2', name: null, user: null });
  assert.equal(interpret('{"type":"joined","room":"rust","from":"B2","name":"bob","user":"u-b"}').user, 'u-b', 'signed in: the user');

  const members = interpret(JSON.stringify({
    type: 'members', room: 'lobby', you: 'A1', members: [{ from: 'A1', name: 'alice' }, null, 'x', { from: 'B2', name: 7 }], more: false,
  }));
  assert.deepEqual(members, {
    kind: 'members', room: 'lobby', you: 'A1', more: false,
    members: [{ from: 'A1', name: 'alice', user: null }, { from: 'B2', name: null, user: null }],
  });
  assert.equal(interpret('{"type":"members","room":"lobby","members":[],"more":"yes"}').more, false, 'only true is more');

  const history = interpret(JSON.stringify({
    type: 'history', room: 'lobby', messages: [chat('m1', 'one'), { type: 'joined' }, null, chat('m2', 'two')], truncated: true,
  }));
  assert.equal(history.kind, 'history');
  assert.equal(history.truncated, true);
  assert.deepEqual(history.messages.map((m) => [m.id, m.text]), [['m1', 'one'], ['m2', 'two']], 'only chat messages');
  assert.equal(interpret('{"type":"history","room":"lobby","messages":"none"}').kind, 'notice');

  const limited = interpret('{"type":"error","code":"rate_limited","message":"slow down","retryAfterMs":1200}');
  assert.deepEqual(limited,
    { kind: 'error', code: 'rate_limited', text: 'slow down', retryAfterMs: 1200, clientId: null, until: null });
  assert.equal(interpret('{"type":"error","code":"rate_limited","retryAfterMs":"soon"}').retryAfterMs, null);
  assert.equal(interpret('{"type":"error","code":"rate_limited","retryAfterMs":-5}').retryAfterMs, null);
  assert.equal(interpret('{"type":"error","code":"invalid_room","message":"m"}').code, 'invalid_room');
});

const members = (room, list, more = false, you = 'A1') => ({
  kind: 'members', room, you, members: list.map(([from, name]) => ({ from, name })), more,
});
const names = (roster) => roster.members.map((member) => member.name);

test('the member list: replaced by a members answer, kept current by joined and left, of its own room only', () => {
  let roster = newRoster('lobby');
  assert.equal(rosterSummary(roster), 'In lobby', 'nothing known before the answer');
  roster = updateRoster(roster, { kind: 'who' });
  roster = updateRoster(roster, members('lobby', [['A1', 'alice'], ['B2', 'bob']]));
  assert.deepEqual(names(roster), ['alice', 'bob']);
  assert.equal(roster.you, 'A1');
  assert.equal(roster.known, true);
  assert.equal(rosterSummary(roster), '2 people in lobby');

  roster = updateRoster(roster, { kind: 'joined', room: 'lobby', from: 'C3', name: 'carol' });
  assert.deepEqual(names(roster), ['alice', 'bob', 'carol']);
  roster = updateRoster(roster, { kind: 'joined', room: 'lobby', from: 'C3', name: 'carol' });
  assert.deepEqual(names(roster), ['alice', 'bob', 'carol'], 'a second joined adds nobody twice');
  roster = updateRoster(roster, { kind: 'left', room: 'lobby', from: 'B2', name: 'bob' });
  assert.deepEqual(names(roster), ['alice', 'carol']);
  roster = updateRoster(roster, { kind: 'left', room: 'lobby', from: 'Z9', name: 'nobody' });
  assert.deepEqual(names(roster), ['alice', 'carol'], 'someone unknown leaving changes nothing');

  // Frames of another room (the one just left, say) change nothing.
  const same = roster;
  for (const frame of [{ kind: 'joined', room: 'rust', from: 'D4', name: 'dave' }, { kind: 'left', room: 'rust', from: 'A1' },
    members('rust', [['D4', 'dave']]), { kind: 'left', room: null, from: 'A1' }]) {
    roster = updateRoster(roster, frame);
  }
  assert.equal(roster, same);
  assert.equal(rosterSummary({ ...newRoster('r'), known: true, members: [{ from: 'A1', name: 'a' }] }), '1 person in r');
});

test('a members answer in several frames is gathered until more is false', () => {
  let roster = updateRoster(newRoster('big'), { kind: 'who' });
  roster = updateRoster(roster, members('big', [['A1', 'alice'], ['B2', 'bob']], true));
  assert.deepEqual(names(roster), [], 'not shown half done');
  assert.equal(roster.known, false);
  roster = updateRoster(roster, members('big', [['C3', 'carol']], true));
  roster = updateRoster(roster, members('big', [['D4', 'dave'], ['B2', 'bob']], false));
  assert.deepEqual(names(roster), ['alice', 'bob', 'carol', 'dave'], 'each once');
  assert.equal(roster.known, true);

  // A new answer replaces the list, it does not add to it.
  roster = updateRoster(roster, { kind: 'who' });
  roster = updateRoster(roster, members('big', [['A1', 'alice']]));
  assert.deepEqual(names(roster), ['alice']);

  // An answer the page did not ask for (or whose question it missed) is taken all the same.
  roster = updateRoster(roster, members('big', [['E5', 'erin']], true));
  roster = updateRoster(roster, members('big', [['A1', 'alice']]));
  assert.deepEqual(names(roster), ['erin', 'alice']);
});

test('joined and left between the question and the last members frame are not lost', () => {
  let roster = updateRoster(newRoster('lobby'), { kind: 'who' });
  roster = updateRoster(roster, members('lobby', [['A1', 'alice'], ['B2', 'bob']], true));
  // bob leaves after his page was counted, carol arrives after hers was not.
  roster = updateRoster(roster, { kind: 'left', room: 'lobby', from: 'B2', name: 'bob' });
  roster = updateRoster(roster, { kind: 'joined', room: 'lobby', from: 'C3', name: 'carol' });
  roster = updateRoster(roster, members('lobby', [['D4', 'dave']]));
  assert.deepEqual(names(roster), ['alice', 'dave', 'carol']);

  // Changes before the answer that the snapshot already has are replayed harmlessly.
  roster = updateRoster(roster, { kind: 'who' });
  roster = updateRoster(roster, { kind: 'joined', room: 'lobby', from: 'E5', name: 'erin' });
  roster = updateRoster(roster, { kind: 'left', room: 'lobby', from: 'D4', name: 'dave' });
  roster = updateRoster(roster, members('lobby', [['A1', 'alice'], ['C3', 'carol'], ['E5', 'erin']]));
  assert.deepEqual(names(roster), ['alice', 'carol', 'erin']);
  // Once answered, changes are no longer kept for a replay.
  assert.deepEqual(roster.changes, []);
  roster = updateRoster(roster, { kind: 'left', room: 'lobby', from: 'C3' });
  assert.deepEqual(roster.changes, []);
});

test('the member list shows names (the page\'s own entry first and marked), as text', () => {
  const roster = {
    ...newRoster('lobby'), you: 'C3', known: true,
    members: [{ from: 'B2', name: 'bob' }, { from: 'R1kmxc2VNjMCFIA=', name: null }, { from: 'C3', name: 'zoe' },
      { from: 'A1', name: 'Alice' }, { from: 'X9', name: '<b>x</b>' }],
  };
  assert.deepEqual(memberEntries(roster), [
    { from: 'C3', label: 'zoe', own: true, user: null },
    { from: 'X9', label: '<b>x</b>', own: false, user: null },
    { from: 'A1', label: 'Alice', own: false, user: null },
    { from: 'B2', label: 'bob', own: false, user: null },
    { from: 'R1kmxc2VNjMCFIA=', label: 'User jMCFIA', own: false, user: null },
  ]);
  assert.equal(memberEntries({ ...roster, you: null }).some((entry) => entry.own), false, 'no own entry before the server says');
});

test('presence lines name who came and went', () => {
  assert.equal(presenceText({ kind: 'joined', from: 'B2', name: 'bob' }), 'bob joined');
  assert.equal(presenceText({ kind: 'left', from: 'B2', name: 'bob' }), 'bob left');
  assert.equal(presenceText({ kind: 'left', from: 'R1kmxc2VNjMCFIA=', name: null }), 'User jMCFIA left');
  assert.equal(presenceText({ kind: 'joined', from: 'B2', name: 'a\u202eb' }), 'ab joined', 'the name is cleaned');
});

test('history adds each message once, by id, oldest first, and only of its room', () => {
  const m = (id, text, room = 'lobby') => interpret(JSON.stringify(chat(id, text, room)));
  const history = [m('m1', 'one'), m('m2', 'two'), m('m3', 'three'), m('m2', 'two'), m('x1', 'elsewhere', 'rust')];
  assert.deepEqual(mergeHistory([], history, 'lobby').map((x) => x.id), ['m1', 'm2', 'm3']);
  // What arrived live while the answer was on its way is not shown twice.
  const seen = new Set([messageKey(m('m3', 'three')), messageKey(m('m9', 'nine'))]);
  assert.deepEqual(mergeHistory(seen, history, 'lobby').map((x) => x.id), ['m1', 'm2']);
  assert.deepEqual(mergeHistory(new Set(history.map(messageKey)), history, 'lobby'), [], 'all seen: nothing');
  assert.deepEqual(mergeHistory([], history, 'rust').map((x) => x.id), ['x1']);
  // The same text twice is two messages; the id tells them apart.
  assert.equal(mergeHistory([], [m('a', 'same'), m('b', 'same')], 'lobby').length, 2);
  // Without ids (an older server) sender, time and text stand in.
  const bare = interpret('{"type":"message","from":"A1","message":"hi","sentAt":"t"}');
  assert.equal(messageKey(bare), 'from:A1|t|hi');
  assert.equal(messageKey(m('m1', 'one')), 'id:m1');
  assert.deepEqual(mergeHistory([], [bare, { ...bare }], 'lobby'), [bare]);
});

test('a rate_limited error says how long to wait, never 0.0 s', () => {
  assert.equal(rateLimitText(1200), 'Slow down: you can send again in 1.2 s.');
  assert.equal(rateLimitText(1201), 'Slow down: you can send again in 1.3 s.');
  assert.equal(rateLimitText(200), 'Slow down: you can send again in 0.2 s.');
  assert.equal(rateLimitText(1), 'Slow down: you can send again in 0.1 s.');
  assert.equal(rateLimitText(0), 'Slow down: you can send again in 0.1 s.');
  assert.equal(rateLimitText(12_000), 'Slow down: you can send again in 12.0 s.');
  for (const none of [null, undefined, -1, NaN, Infinity, '1200']) {
    assert.equal(rateLimitText(none), 'Slow down: wait a moment before you send again.', String(none));
  }
});

test('a token travels as a subprotocol beside chat, and only a JWT-shaped one', () => {
  const token = jwt({ name: 'alice' });
  assert.deepEqual(connectProtocols(token), ['chat', `token.${token}`]);
  assert.deepEqual(connectProtocols(` ${token}\n`), ['chat', `token.${token}`], 'trimmed');
  assert.equal(connectProtocols('a+b/c='), null, 'not a subprotocol name');
  assert.equal(connectProtocols('a b.c'), null);
  assert.equal(connectProtocols(''), null);
  assert.equal(connectProtocols(null), null);
});

// Ordering by seq, catching up after a reconnect, and the outbox of pending messages.

/** A chat message as interpret() gives it, numbered `seq` in `room`. */
const numbered = (seq, { id = `m${seq}`, room = 'lobby', clientId, text = `message ${seq}` } = {}) => interpret(JSON.stringify({
  ...chat(id, text, room), seq, ...(clientId === undefined ? {} : { clientId }),
}));
/** The seqs of a timeline's messages, in the order the page shows them. */
const order = (timeline) => timeline.placed.map((entry) => entry.seq);

test('clientIds: UUIDs, 36 characters the server takes, also without crypto.randomUUID', () => {
  const id = newClientId();
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.notEqual(newClientId(), id, 'a new one each time');
  assert.equal(validClientId(id), true);
  // Outside a secure context there is no randomUUID: getRandomValues makes one just as good.
  const fallback = newClientId({ getRandomValues: (bytes) => bytes.fill(0xff) });
  assert.equal(fallback, 'ffffffff-ffff-4fff-bfff-ffffffffffff');
  assert.equal(fallback.length, CLIENT_ID_CHARS);
  assert.equal(validClientId(fallback), true);
  for (const good of ['a', 'k3J9-x', 'A_b-9', 'x'.repeat(64)]) assert.equal(validClientId(good), true, good);
  for (const bad of ['', 'x'.repeat(65), 'a b', 'a.b', 'é', 'a/b', null, 42, undefined]) {
    assert.equal(validClientId(bad), false, String(bad));
  }
});

test('seq, clientId, more, gap and oldest are read from frames, never trusted', () => {
  const message = interpret(JSON.stringify({ ...chat('m7', 'hi'), seq: 7, clientId: 'abc-1' }));
  assert.equal(message.seq, 7);
  assert.equal(message.clientId, 'abc-1');
  for (const seq of [0, -1, 1.5, '7', null, 2 ** 60]) {
    assert.equal(interpret(JSON.stringify({ ...chat('m', 'x'), seq })).seq, null, String(seq));
  }
  assert.equal(interpret(JSON.stringify({ ...chat('m', 'x'), clientId: 'not valid!' })).clientId, null);

  const page = interpret(JSON.stringify({
    type: 'history', room: 'lobby', messages: [numbered(3), numbered(4)].map((m) => ({ ...chat(m.id, m.text), seq: m.seq })),
    truncated: false, more: true, gap: true, oldest: 3,
  }));
  assert.deepEqual([page.more, page.gap, page.oldest], [true, true, 3]);
  assert.deepEqual(page.messages.map((m) => m.seq), [3, 4]);
  const plain = interpret('{"type":"history","room":"lobby","messages":[],"truncated":false}');
  assert.deepEqual([plain.more, plain.gap, plain.oldest], [false, false, null], 'an older server: nothing more, no gap');
  assert.equal(interpret('{"type":"history","room":"lobby","messages":[],"gap":false,"oldest":4}').oldest, null,
    'oldest only with a gap');
  assert.equal(interpret('{"type":"history","room":"lobby","messages":[],"more":1}').more, false, 'only true is more');

  const refused = interpret('{"type":"error","code":"message_too_large","message":"too big","clientId":"abc-1"}');
  assert.equal(refused.clientId, 'abc-1');
  assert.equal(interpret('{"type":"error","code":"rate_limited","clientId":"<b>"}').clientId, null);
});

test('history is asked for the recent messages on a first visit, else after the last seq the page has', () => {
  assert.equal(CATCH_UP_LIMIT, 100);
  assert.deepEqual(JSON.parse(historyRequest(100, 41)), { action: 'history', after: 41, limit: 100 });
  assert.deepEqual(JSON.parse(historyRequest(100, 0)), { action: 'history', after: 0, limit: 100 }, '0: from the first');
  for (const bad of [-1, 1.5, '4', undefined, null]) {
    assert.deepEqual(JSON.parse(historyRequest(50, bad)), { action: 'history', limit: 50 }, String(bad));
  }
  const timeline = newTimeline('lobby');
  assert.deepEqual(JSON.parse(catchUpRequest(timeline)), { action: 'history', limit: HISTORY_LIMIT }, 'nothing seen: recent');
  placeMessage(timeline, numbered(5));
  startTimeline(timeline);
  assert.deepEqual(JSON.parse(catchUpRequest(timeline)), { action: 'history', after: 5, limit: 100 });
});

test('messages are shown in seq order wherever they arrive, each once', () => {
  const timeline = newTimeline('lobby');
  startTimeline(timeline);
  // Where each goes: its index among what is shown.
  assert.equal(placeMessage(timeline, numbered(1), { live: true }), 0);
  assert.equal(placeMessage(timeline, numbered(3), { live: true }), 1);
  assert.equal(placeMessage(timeline, numbered(4), { live: true }), 2);
  assert.equal(placeMessage(timeline, numbered(2), { live: true }), 1, 'late: before 3');
  assert.deepEqual(order(timeline), [1, 2, 3, 4]);
  // Once: the same frame again (a resend's original, history overlapping live) is not shown twice.
  assert.equal(placeMessage(timeline, numbered(3), { live: true }), -1);
  assert.equal(placeMessage(timeline, numbered(3)), -1);
  assert.equal(placeMessage(timeline, numbered(9, { room: 'rust' })), -1, "another room's");
  assert.deepEqual(order(timeline), [1, 2, 3, 4]);
  assert.equal(timeline.lastSeq, 4);

  // placeIndex: after every smaller or equal seq, before the first larger; no seq goes last.
  const placed = [1, 2, 5, 8].map((seq) => ({ epoch: 0, seq }));
  assert.equal(placeIndex(placed, 0, 0), 0);
  assert.equal(placeIndex(placed, 0, 3), 2);
  assert.equal(placeIndex(placed, 0, 9), 4);
  assert.equal(placeIndex(placed, 0, null), 4);
  assert.equal(placeIndex([], 0, 3), 0);
  assert.equal(placeIndex([...placed, { epoch: 0, seq: null }], 0, 6), 3, 'before what an older server sent');
  assert.equal(placeIndex([{ epoch: 0, seq: 9 }, { epoch: 1, seq: 2 }], 1, 1), 1, 'an epoch after the one before');
});

test('lastSeq counts the messages the page has without a hole; a hole waits for its frames', () => {
  const timeline = newTimeline('lobby');
  // Live frames before the recent history: no lastSeq yet, so no hole either.
  placeMessage(timeline, numbered(12), { live: true });
  assert.equal(timeline.lastSeq, null);
  assert.equal(hasHole(timeline), false);
  // The recent history (10, 11) is in: counting starts at its first.
  for (const seq of [10, 11]) placeMessage(timeline, numbered(seq));
  startTimeline(timeline);
  assert.deepEqual(order(timeline), [10, 11, 12]);
  assert.equal(timeline.lastSeq, 12);
  assert.equal(hasHole(timeline), false);

  placeMessage(timeline, numbered(15), { live: true });
  assert.equal(hasHole(timeline), true, '13 and 14 are missing');
  assert.equal(timeline.lastSeq, 12);
  placeMessage(timeline, numbered(13), { live: true });
  assert.equal(timeline.lastSeq, 13);
  assert.equal(hasHole(timeline), true);
  placeMessage(timeline, numbered(14), { live: true });
  assert.equal(timeline.lastSeq, 15, 'filled: past what came early');
  assert.equal(hasHole(timeline), false);
  assert.deepEqual(order(timeline), [10, 11, 12, 13, 14, 15]);
});

test('a room whose history was empty counts from 0; without an answer, from the first message', () => {
  const empty = newTimeline('lobby');
  startTimeline(empty, true);
  assert.equal(empty.lastSeq, 0);
  placeMessage(empty, numbered(1), { live: true });
  assert.equal(empty.lastSeq, 1);
  // The first frame lost on its way: a hole, asked from 0.
  const lost = newTimeline('lobby');
  startTimeline(lost, true);
  placeMessage(lost, numbered(2), { live: true });
  assert.equal(hasHole(lost), true);
  assert.deepEqual(fillHole(lost), { after: 0 });
  // A room whose messages all expired numbers on: history after 0 says from 101 on, and
  // nothing shown came before, so no notice is due.
  const expired = newTimeline('lobby');
  startTimeline(expired, true);
  placeMessage(expired, numbered(101), { live: true });
  assert.equal(hasHole(expired), true);
  assert.equal(applyGap(expired, 101), 0);
  assert.equal(expired.lastSeq, 101);
  assert.equal(hasHole(expired), false);
  // No answer came at all: counting starts with the first message that does.
  const unanswered = newTimeline('lobby');
  startTimeline(unanswered);
  assert.equal(unanswered.lastSeq, null);
  placeMessage(unanswered, numbered(7), { live: true });
  assert.equal(unanswered.lastSeq, 7);
  assert.equal(hasHole(unanswered), false);
});

test('a hole is asked for after lastSeq a few times, then passed over', () => {
  const timeline = newTimeline('lobby');
  startTimeline(timeline);
  for (const seq of [1, 2, 5, 6]) placeMessage(timeline, numbered(seq), { live: true });
  for (let i = 0; i < HOLE_TRIES; i += 1) assert.deepEqual(fillHole(timeline), { after: 2 });
  assert.deepEqual(fillHole(timeline), { skipped: 2 }, 'the answers never filled it');
  assert.equal(timeline.lastSeq, 6);
  assert.equal(fillHole(timeline), null, 'no hole, nothing to ask');
  // Progress starts the count again.
  placeMessage(timeline, numbered(9), { live: true });
  assert.deepEqual(fillHole(timeline), { after: 6 });
  placeMessage(timeline, numbered(7));
  assert.deepEqual(fillHole(timeline), { after: 7 });
  assert.equal(timeline.holeTries, 1);
});

test('catching up after a reconnect: history after lastSeq, page by page, in place and once', () => {
  const timeline = newTimeline('lobby');
  for (const seq of [1, 2, 3]) placeMessage(timeline, numbered(seq));
  startTimeline(timeline);
  // Back online: a live frame (seq 8) comes before the answer.
  placeMessage(timeline, numbered(8), { live: true });
  assert.deepEqual(JSON.parse(catchUpRequest(timeline)), { action: 'history', after: 3, limit: 100 });
  const first = { kind: 'history', room: 'lobby', messages: [4, 5, 6].map((seq) => numbered(seq)), more: true, gap: false, oldest: null };
  const fresh = mergeHistory(timeline.keys, first.messages, 'lobby');
  assert.deepEqual(fresh.map((m) => m.seq), [4, 5, 6]);
  assert.deepEqual(fresh.map((m) => placeMessage(timeline, m)), [3, 4, 5], 'each before 8');
  assert.equal(nextHistoryPage(first), 6, 'more: ask after the last one');
  const second = { ...first, messages: [7, 8].map((seq) => numbered(seq)), more: false };
  const rest = mergeHistory(timeline.keys, second.messages, 'lobby');
  assert.deepEqual(rest.map((m) => m.seq), [7], '8 arrived live already');
  rest.forEach((m) => placeMessage(timeline, m));
  assert.equal(nextHistoryPage(second), null);
  assert.deepEqual(order(timeline), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(timeline.lastSeq, 8);
  assert.equal(nextHistoryPage({ more: true, messages: [] }), null, 'more without messages: nothing to ask after');
  assert.equal(
    nextHistoryPage({ more: true, messages: [], gap: true, oldest: 5001 }),
    5000,
    'all it read had expired: go on from where the server stopped',
  );
});

test('a gap: what expired is said to be gone, and lastSeq moves past it', () => {
  const timeline = newTimeline('lobby');
  for (const seq of [1, 2]) placeMessage(timeline, numbered(seq));
  startTimeline(timeline);
  // Asked after 2; the server keeps from 40 on: 3 to 39 are gone.
  assert.equal(applyGap(timeline, 40), 37);
  assert.equal(timeline.lastSeq, 39);
  [40, 41].forEach((seq) => placeMessage(timeline, numbered(seq)));
  assert.equal(timeline.lastSeq, 41);
  assert.equal(hasHole(timeline), false);
  assert.equal(applyGap(timeline, 40), 0, 'the same gap again: nothing more is gone');
  assert.equal(applyGap(timeline, null), 0);
  // What came live inside the gap is not counted as gone.
  const live = newTimeline('lobby');
  placeMessage(live, numbered(1));
  startTimeline(live);
  placeMessage(live, numbered(5), { live: true });
  assert.equal(applyGap(live, 7), 4, '2, 3, 4 and 6');
  assert.equal(live.lastSeq, 6);

  assert.equal(gapText(37), 'Older messages are no longer available: 37 messages expired before the page could show them.');
  assert.equal(gapText(1), 'Older messages are no longer available: 1 message expired before the page could show it.');
  assert.equal(gapText(0), 'Older messages are no longer available.');
  assert.equal(gapText(null), 'Older messages are no longer available.');
});

test('a server that numbers a room afresh (its data wiped) is followed, below what was shown', () => {
  const timeline = newTimeline('lobby');
  for (const seq of [1, 2, 3]) placeMessage(timeline, numbered(seq));
  startTimeline(timeline);
  // The same seq for another message: the room starts over.
  assert.equal(placeMessage(timeline, numbered(1, { id: 'new1' }), { live: true }), 3);
  assert.equal(timeline.lastSeq, 1);
  assert.equal(placeMessage(timeline, numbered(2, { id: 'new2' }), { live: true }), 4);
  assert.deepEqual(timeline.placed.map((entry) => entry.message.id), ['m1', 'm2', 'm3', 'new1', 'new2']);
  assert.equal(hasHole(timeline), false);
  // Live, below the first seq seen (a room the page knew only from its recent history) is the same.
  const recent = newTimeline('lobby');
  for (const seq of [60, 61]) placeMessage(recent, numbered(seq));
  startTimeline(recent);
  assert.equal(placeMessage(recent, numbered(1, { id: 'again' }), { live: true }), 2);
  assert.equal(recent.lastSeq, 1);
  assert.equal(recent.epoch, 1);
});

test('pending messages go one at a time, oldest first, per room; failed ones are passed over', () => {
  const a = outgoing('first', 'lobby', 'c-1');
  const b = outgoing('second', 'lobby', 'c-2');
  const elsewhere = outgoing('other room', 'rust', 'c-3');
  assert.deepEqual(a, { clientId: 'c-1', text: 'first', room: 'lobby', state: 'waiting', tries: 0, retryAt: 0, reason: null });
  assert.equal(validClientId(outgoing('x', 'lobby').clientId), true, 'a fresh clientId by default');
  const outbox = [elsewhere, a, b];
  assert.equal(nextToSend(outbox, 'lobby', 1000).entry, a);
  a.state = 'sent';
  assert.equal(nextToSend(outbox, 'lobby', 1000), null, 'one on the wire: the next waits for its answer');
  assert.equal(nextToSend(outbox, 'rust', 1000).entry, elsewhere, "another room's line is its own");
  a.state = 'failed';
  assert.equal(nextToSend(outbox, 'lobby', 1000).entry, b, 'a failed one is not sent again');
  b.retryAt = 1500;
  assert.deepEqual(nextToSend(outbox, 'lobby', 1000), { waitMs: 500 });
  assert.equal(nextToSend([], 'lobby', 0), null);
});

test('an error answering a pending message: rate_limited and unavailable retry, a refusal fails it', () => {
  const now = 10_000;
  const limited = { ...outgoing('hi', 'lobby', 'c-1'), state: 'sent', tries: 1 };
  assert.equal(sendRefused(limited, { code: 'rate_limited', retryAfterMs: 1200, text: 'slow' }, now), 'retry');
  assert.equal(limited.state, 'waiting');
  assert.equal(limited.retryAt, 11_200);
  assert.equal(sendRefused(limited, { code: 'rate_limited', retryAfterMs: null, text: '' }, now), 'retry');
  assert.equal(limited.retryAt, 11_000, 'a second when the server did not say');

  const busy = { ...outgoing('hi', 'lobby', 'c-2'), state: 'sent', tries: 1 };
  assert.equal(sendRefused(busy, { code: 'unavailable', text: 'try again' }, now, () => 0.5), 'retry');
  assert.equal(busy.retryAt, now + 500);
  busy.tries = UNAVAILABLE_TRIES;
  assert.equal(sendRefused(busy, { code: 'unavailable', text: 'try again' }, now), 'failed');
  assert.equal(busy.reason, 'try again');

  for (const code of ['message_too_large', 'invalid_client_id', 'empty_message', 'not_connected']) {
    const entry = { ...outgoing('hi', 'lobby', 'c-3'), state: 'sent', tries: 1 };
    assert.equal(sendRefused(entry, { code, text: `because ${code}` }, now), 'failed', code);
    assert.equal(entry.state, 'failed');
    assert.equal(pendingLabel(entry), `Not sent: because ${code}`);
  }
  const quiet = outgoing('hi', 'lobby', 'c-4');
  assert.equal(sendRefused(quiet, { code: 'message_too_large', text: '' }, now), 'failed');
  assert.equal(quiet.reason, 'message_too_large', 'the code when there is no text');
  assert.equal(pendingLabel(outgoing('hi', 'lobby')), 'sending…');
  assert.equal(pendingLabel({ ...outgoing('hi', 'lobby'), state: 'sent' }), 'sending…');
});

test('the outbox is kept for the tab as clientId, text and room, and read back defensively', () => {
  const kept = [outgoing('one', 'lobby', 'c-1'), { ...outgoing('two', 'rust', 'c-2'), state: 'sent', tries: 3 },
    { ...outgoing('refused', 'lobby', 'c-3'), state: 'failed', reason: 'too big' }];
  const json = outboxJson(kept);
  assert.deepEqual(JSON.parse(json), [{ clientId: 'c-1', text: 'one', room: 'lobby' }, { clientId: 'c-2', text: 'two', room: 'rust' }],
    'failed ones are not kept');
  assert.deepEqual(outboxFromJson(json), [outgoing('one', 'lobby', 'c-1'), outgoing('two', 'rust', 'c-2')],
    'all waiting to be sent again, with their clientIds');
  for (const bad of [null, '', 'not json', '{}', '7', 'null']) assert.deepEqual(outboxFromJson(bad), [], String(bad));
  const mixed = JSON.stringify([
    null, 'x', { clientId: 'bad id', text: 'a', room: 'lobby' }, { clientId: 'c-1', text: ' ', room: 'lobby' },
    { clientId: 'c-2', text: 7, room: 'lobby' }, { clientId: 'c-3', text: 'a', room: 'no room!' },
    { clientId: 'c-4', text: 'kept', room: 'lobby' }, { clientId: 'c-4', text: 'twice', room: 'lobby' },
  ]);
  assert.deepEqual(outboxFromJson(mixed).map((entry) => entry.text), ['kept']);
});

// Editing and deleting one's own messages, and who is typing.

test('edit, delete and typing are the documented actions', () => {
  assert.deepEqual(JSON.parse(editRequest('m7', 'fixed <b>typo</b>')),
    { action: 'edit', id: 'm7', message: 'fixed <b>typo</b>' });
  assert.deepEqual(JSON.parse(deleteRequest('m7')), { action: 'delete', id: 'm7' });
  assert.deepEqual(JSON.parse(typingRequest()), { action: 'typing' });
});

test('user, editedAt, deleted, and the edited, deleted and typing frames are read, never trusted', () => {
  const signedIn = interpret(JSON.stringify({ ...chat('m1', 'hi'), user: 'u-alice', editedAt: '2026-01-01T00:05:00Z' }));
  assert.deepEqual([signedIn.user, signedIn.editedAt, signedIn.deleted], ['u-alice', '2026-01-01T00:05:00Z', false]);
  const tombstone = interpret(JSON.stringify({ ...chat('m2', ''), deleted: true }));
  assert.deepEqual([tombstone.kind, tombstone.text, tombstone.deleted], ['message', '', true]);
  for (const [user, editedAt, deleted] of [[7, 5, 'true'], ['', '', 1], [null, null, null]]) {
    const odd = interpret(JSON.stringify({ ...chat('m3', 'x'), user, editedAt, deleted }));
    assert.deepEqual([odd.user, odd.editedAt, odd.deleted], [null, null, false], String([user, editedAt, deleted]));
  }
  const members = interpret('{"type":"members","room":"lobby","you":"A1","members":[{"from":"A1","name":"alice","user":"u-a"}]}');
  assert.deepEqual(members.members, [{ from: 'A1', name: 'alice', user: 'u-a' }]);

  assert.deepEqual(
    interpret('{"type":"edited","room":"lobby","id":"m1","seq":4,"message":"new","editedAt":"2026-01-01T00:05:00Z"}'),
    { kind: 'edited', room: 'lobby', with: null, id: 'm1', seq: 4, text: 'new', editedAt: '2026-01-01T00:05:00Z' },
  );
  assert.deepEqual(interpret('{"type":"deleted","room":"lobby","id":"m1","seq":4}'),
    { kind: 'deleted', room: 'lobby', with: null, id: 'm1', seq: 4 });
  assert.equal(interpret('{"type":"deleted","room":"lobby","id":7}').id, null);
  assert.deepEqual(interpret('{"type":"typing","room":"lobby","from":"B2","user":"u-b","name":"bob"}'),
    { kind: 'typing', room: 'lobby', from: 'B2', user: 'u-b', name: 'bob' });
  assert.equal(interpret('{"type":"typing","room":"lobby","from":"B2","name":"bob"}').user, null, 'open mode: no user');
  const history = interpret(JSON.stringify({ type: 'history', room: 'lobby', messages: [{ ...chat('m9', ''), deleted: true }] }));
  assert.equal(history.messages[0].deleted, true, 'history keeps tombstones');
});

test('own messages: by user id when signed in, by the current connection in open mode', () => {
  const signedIn = { you: 'A2', user: 'u-alice' };
  // Signed in: the user's, from whichever connection (an earlier one, another tab).
  assert.equal(ownMessage({ from: 'A1', user: 'u-alice' }, signedIn), true);
  assert.equal(ownMessage({ from: 'A2', user: 'u-bob' }, signedIn), false, 'the user decides, not the connection');
  assert.equal(ownMessage({ from: 'A1', user: 'u-alice' }, { you: 'A1', user: null }), false, 'not before the user id is known');
  // Open mode (no user): the page's current connection only.
  const open = { you: 'A2', user: null };
  assert.equal(ownMessage({ from: 'A2', user: null }, open), true);
  assert.equal(ownMessage({ from: 'A1', user: null }, open), false, 'an earlier connection is not');
  assert.equal(ownMessage({ from: 'A2', user: null }, { you: null, user: null }), false, 'nobody yet');
  assert.equal(ownMessage({ from: '', user: null }, { you: '', user: null }), false);

  const own = interpret(JSON.stringify({ ...chat('m1', 'hi', 'lobby', 'A2'), user: 'u-alice' }));
  assert.equal(mayChange(own, signedIn), true);
  assert.equal(mayChange({ ...own, deleted: true, text: '' }, signedIn), false, 'a tombstone has no buttons');
  assert.equal(mayChange({ ...own, id: null }, signedIn), false, 'nothing to name it by (an older server)');
  assert.equal(mayChange(own, { you: 'A2', user: 'u-bob' }), false, "someone else's");
});

test('an edited or deleted frame changes the message with its id in the timeline, and nothing else', () => {
  const timeline = newTimeline('lobby');
  startTimeline(timeline);
  for (const seq of [1, 2, 3]) placeMessage(timeline, numbered(seq), { live: true });
  const text = () => timeline.placed.map((entry) => entry.message.text);

  const edited = interpret(JSON.stringify({
    type: 'edited', room: 'lobby', id: 'm2', seq: 2, message: 'two, fixed', editedAt: '2026-01-01T00:05:00Z',
  }));
  const entry = applyChange(timeline, edited);
  assert.equal(entry, timeline.placed[1]);
  assert.deepEqual([entry.message.text, entry.message.editedAt, entry.message.seq], ['two, fixed', '2026-01-01T00:05:00Z', 2]);
  assert.deepEqual(text(), ['message 1', 'two, fixed', 'message 3'], 'in its place');
  assert.deepEqual(order(timeline), [1, 2, 3]);
  assert.equal(timeline.lastSeq, 3, 'the order and what the page has are untouched');

  // An older edit arriving late does not undo a newer one; the same one again is harmless.
  const older = { ...edited, text: 'two, first try', editedAt: '2026-01-01T00:04:00Z' };
  assert.equal(applyChange(timeline, older), null);
  assert.equal(applyChange(timeline, edited).message.text, 'two, fixed');

  const deleted = interpret('{"type":"deleted","room":"lobby","id":"m2","seq":2}');
  assert.equal(applyChange(timeline, deleted), timeline.placed[1]);
  assert.deepEqual([timeline.placed[1].message.text, timeline.placed[1].message.deleted], ['', true]);
  assert.equal(applyChange(timeline, { ...edited, editedAt: '2026-01-01T01:00:00Z' }), null, 'deleted stays deleted');
  assert.equal(applyChange(timeline, deleted), null);

  // Ignored: an id the timeline does not have, another room's, none at all.
  assert.equal(applyChange(timeline, { ...deleted, id: 'm9' }), null);
  assert.equal(applyChange(timeline, { ...deleted, id: 'm1', room: 'rust' }), null);
  assert.equal(applyChange(timeline, { ...deleted, id: null }), null);
  assert.deepEqual(text(), ['message 1', '', 'message 3']);
  assert.equal(timeline.placed[0].message.deleted, false);

  // A history answer's tombstones and edited messages carry the same changes.
  assert.deepEqual(changeOf(numbered(3)), null);
  const at = '2026-01-01T00:06:00Z';
  const historyEdit = changeOf(interpret(JSON.stringify({ ...chat('m3', 'three, fixed'), seq: 3, editedAt: at })));
  assert.deepEqual(historyEdit, { kind: 'edited', room: 'lobby', id: 'm3', seq: 3, text: 'three, fixed', editedAt: at });
  assert.equal(applyChange(timeline, historyEdit).message.text, 'three, fixed');
  const historyTombstone = changeOf(interpret(JSON.stringify({ ...chat('m1', ''), seq: 1, deleted: true })));
  assert.deepEqual(historyTombstone, { kind: 'deleted', room: 'lobby', id: 'm1', seq: 1 });
  assert.equal(applyChange(timeline, historyTombstone).message.deleted, true);

  assert.match(editedTitle('2026-01-01T00:05:00Z'), /^Edited \S/);
  assert.equal(editedTitle('soon'), 'Edited');
  assert.equal(editedTitle(null), 'Edited');
});

test('typing is sent on non-empty input, at most every 2 s', () => {
  assert.equal(TYPING_EVERY_MS, 2_000);
  assert.equal(typingDue('h', null, 10_000), true, 'the first time');
  assert.equal(typingDue('he', 10_000, 11_999), false);
  assert.equal(typingDue('hel', 10_000, 12_000), true);
  assert.equal(typingDue('', null, 10_000), false, 'an emptied box is no typing');
  assert.equal(typingDue('  \n', null, 10_000), false);
});

test('who is typing: per room, 4 s after the last frame, or until their message comes', () => {
  assert.equal(TYPING_SHOWN_MS, 4_000);
  const frame = (from, name, room = 'lobby') => interpret(JSON.stringify({ type: 'typing', room, from, name }));
  let typing = newTyping('lobby');
  assert.equal(typingText(typing, 0), '');
  assert.equal(typingWakeIn(typing, 0), null, 'nothing to wait for');

  typing = typingSeen(typing, frame('B2', 'bob'), 1_000);
  assert.equal(typingText(typing, 1_000), 'bob is typing…');
  assert.equal(typingWakeIn(typing, 1_000), 4_000);
  typing = typingSeen(typing, frame('C3', 'carol'), 2_000);
  assert.equal(typingText(typing, 2_000), 'bob and carol are typing…');
  typing = typingSeen(typing, frame('D4', null), 2_500);
  assert.equal(typingText(typing, 2_500), '3 people are typing…');
  assert.equal(typingSeen(typing, frame('E5', 'erin', 'rust'), 2_500), typing, "another room's changes nothing");

  // bob typed again: shown 4 s from then, in his place.
  typing = typingSeen(typing, frame('B2', 'bob'), 3_000);
  assert.equal(typingText(typing, 3_000), '3 people are typing…');
  assert.equal(typingWakeIn(typing, 3_000), 3_000, 'carol goes first, at 6 s');
  assert.equal(typingText(typing, 5_999), '3 people are typing…');
  assert.equal(typingText(typing, 6_000), 'bob and User D4 are typing…', 'carol is off after 4 s');
  assert.equal(typingWakeIn(typing, 6_000), 500);
  assert.equal(typingText(typing, 6_500), 'bob is typing…');
  assert.equal(typingText(typing, 7_000), '');
  assert.equal(typingWakeIn(typing, 7_000), null);
  assert.deepEqual(typingSeen(typing, frame('C3', 'carol'), 8_000).typists.map((t) => t.from), ['C3'], 'those gone are dropped');

  // A chat message from a typist takes them off at once; from anyone else, nothing changes.
  typing = typingSeen(typingSeen(newTyping('lobby'), frame('B2', 'bob'), 0), frame('C3', 'carol'), 0);
  typing = typingDone(typing, 'B2');
  assert.equal(typingText(typing, 1), 'carol is typing…');
  assert.equal(typingDone(typing, 'Z9'), typing);
  assert.equal(typingText(typingSeen(newTyping('lobby'), frame('B2', 'a\u202eb'), 0), 0), 'ab is typing…', 'names cleaned');
});

/** A `dm` frame as the server sends it to `viewer`'s side: `with` is the other user. */
const dmFrame = (seq, text, { user = 'u-bob', to = 'u-alice', name = 'bob', clientId } = {}) => ({
  type: 'dm', id: `d${seq}`, seq, with: user === 'u-alice' ? to : user, from: 'B2', user, name, to, message: text,
  sentAt: '2026-01-01T00:00:00Z', ...(clientId ? { clientId } : {}),
});

test('direct messages are the documented dm request, measured as such', () => {
  assert.deepEqual(JSON.parse(dmRequest('u-bob', 'hi', 'k3J9-x')), { action: 'dm', to: 'u-bob', message: 'hi', clientId: 'k3J9-x' });
  assert.deepEqual(JSON.parse(dmRequest('u-bob', 'hi', 'not valid')), { action: 'dm', to: 'u-bob', message: 'hi' });
  // The recipient's id is part of the frame: a text that fits the room may not fit a direct message.
  const to = 'u'.repeat(40);
  assert.equal(frameBytes('hello', undefined, to), frameBytes('hello') - '"onMessage"'.length + `"dm","to":"${to}"`.length);
  const fits = 'x'.repeat(MAX_FRAME_BYTES - ENVELOPE);
  assert.equal(refusal(fits), null);
  assert.match(refusal(fits, to), /^This message is 32\.1 KB;/);
  assert.equal(sizeHint(fits, to).over, true);
  assert.deepEqual(JSON.parse(historyRequest(50, null, 'u-bob')), { action: 'history', with: 'u-bob', limit: 50 });
  assert.deepEqual(JSON.parse(historyRequest(100, 7, 'u-bob')), { action: 'history', with: 'u-bob', after: 7, limit: 100 });
});

test('dm frames and a conversation\'s history are read, never trusted', () => {
  const dm = interpret(JSON.stringify(dmFrame(3, '<b>hi</b>', { clientId: 'c-1' })));
  assert.deepEqual(dm, {
    kind: 'dm', id: 'd3', seq: 3, with: 'u-bob', from: 'B2', user: 'u-bob', name: 'bob', to: 'u-alice', text: '<b>hi</b>',
    sentAt: '2026-01-01T00:00:00Z', clientId: 'c-1', room: null, editedAt: null, deleted: false,
  });
  assert.notEqual(interpret(JSON.stringify({ ...dmFrame(1, 'x'), with: '' })).kind, 'dm', 'no conversation: not a dm');
  assert.equal(interpret(JSON.stringify({ ...dmFrame(1, 'x'), seq: -1, clientId: 'a b' })).seq, null);
  const history = interpret(JSON.stringify({
    type: 'history', with: 'u-bob', messages: [dmFrame(1, 'one'), chat('m1', 'room'), dmFrame(2, 'two')], more: true, gap: false,
  }));
  assert.equal(history.with, 'u-bob');
  assert.equal(history.room, null);
  assert.deepEqual(history.messages.map((m) => [m.kind, m.text]), [['dm', 'one'], ['dm', 'two']], 'only direct messages');
  assert.equal(nextHistoryPage(history), 2);
  // A conversation's messages are edited and deleted as a room's are, named by `with`.
  const edited = interpret('{"type":"edited","with":"u-bob","id":"d3","seq":3,"message":"new","editedAt":"2026-01-01T00:05:00Z"}');
  assert.deepEqual([edited.kind, edited.room, edited.with, edited.text], ['edited', null, 'u-bob', 'new']);
  const tombstone = interpret(JSON.stringify({ ...dmFrame(3, ''), deleted: true }));
  assert.deepEqual(changeOf(tombstone), { kind: 'deleted', room: null, with: 'u-bob', id: 'd3', seq: 3 });
  const room = interpret(JSON.stringify({ type: 'history', room: 'lobby', messages: [dmFrame(1, 'one'), chat('m1', 'room')] }));
  assert.equal(room.with, null);
  assert.deepEqual(room.messages.map((m) => m.kind), ['message'], "a room's holds chat messages only");
});

test('a conversation is a timeline of its own, keyed by the other user, caught up by seq with `with`', () => {
  assert.equal(conversationKey('u-bob'), 'dm:u-bob');
  const timeline = newConversationTimeline('u-bob');
  assert.equal(timeline.room, 'dm:u-bob');
  assert.deepEqual(JSON.parse(catchUpRequest(timeline)), { action: 'history', with: 'u-bob', limit: HISTORY_LIMIT });
  const dm = (seq) => interpret(JSON.stringify(dmFrame(seq, `m${seq}`)));
  assert.equal(placeMessage(timeline, dm(2), { live: true }), 0, 'a direct message has no room to be refused for');
  assert.equal(placeMessage(timeline, dm(1)), 0, 'in seq order');
  assert.equal(placeMessage(timeline, dm(2)), -1, 'once');
  startTimeline(timeline, true);
  assert.deepEqual(JSON.parse(catchUpRequest(timeline)), { action: 'history', with: 'u-bob', after: 2, limit: CATCH_UP_LIMIT });
  assert.deepEqual(mergeHistory(timeline.keys, [dm(2), dm(3)], null).map((m) => m.seq), [3]);
});

test('direct conversations: named by the other person, last message first, unread when theirs came while closed', () => {
  const fromBob = (seq, text) => interpret(JSON.stringify(dmFrame(seq, text)));
  const toBob = (seq, text) => interpret(JSON.stringify(dmFrame(seq, text, { user: 'u-alice', to: 'u-bob', name: 'alice' })));
  assert.equal(ownDm(toBob(1, 'x')), true);
  assert.equal(ownDm(fromBob(1, 'x')), false);
  let list = addConversation([], 'u-carol', 'carol');
  assert.deepEqual(list, [{ user: 'u-carol', name: 'carol', last: null, lastMine: false, lastSeq: null, unread: false }]);
  assert.equal(addConversation(list, 'u-carol', null), list, 'no news: the same list');
  assert.equal(conversationPreview(list[0]), '');

  // bob writes while his conversation is not open: listed first, named by his frame, unread.
  list = dmSeen(list, fromBob(1, 'Hi\nAlice'));
  assert.deepEqual(list.map((c) => [c.user, c.name, c.unread]), [['u-bob', 'bob', true], ['u-carol', 'carol', false]]);
  assert.equal(conversationPreview(list[0]), 'Hi Alice', 'one line');
  assert.equal(unreadCount(list), 1);
  list = readConversation(list, 'u-bob');
  assert.equal(unreadCount(list), 0);

  // Our own answer names nobody (it carries our name) and is never unread.
  list = dmSeen(list, toBob(2, 'Hello <b>bob</b>'));
  assert.deepEqual([list[0].name, list[0].unread, conversationPreview(list[0])], ['bob', false, 'You: Hello <b>bob</b>']);
  // One that came while it was open is read; one from history (not news) is not unread either.
  assert.equal(dmSeen(list, fromBob(3, 'seen'), { open: true })[0].unread, false);
  assert.equal(dmSeen(list, fromBob(3, 'old news'), { news: false })[0].unread, false);
  // An older message (history after a live one) leaves the preview as it is; carol's moves first on news.
  assert.equal(conversationPreview(dmSeen(list, fromBob(1, 'Hi\nAlice'), { news: false })[0]), 'You: Hello <b>bob</b>');
  // An edit or a deletion of the last message shows in the preview; of an older one, not.
  const change = (kind, seq, text) => ({ kind, room: null, with: 'u-bob', id: `d${seq}`, seq, text });
  assert.equal(conversationPreview(conversationChanged(list, change('edited', 2, 'Hello bob'))[0]), 'You: Hello bob');
  assert.equal(conversationPreview(conversationChanged(list, change('deleted', 2))[0]), `You: ${DELETED_TEXT}`);
  assert.equal(conversationChanged(list, change('deleted', 1))[0].last, 'Hello <b>bob</b>');
  const gone = interpret(JSON.stringify({ ...dmFrame(4, ''), deleted: true }));
  assert.equal(conversationPreview(dmSeen(list, gone, { news: false })[0]), DELETED_TEXT, 'a tombstone in history');
  const carol = interpret(JSON.stringify(dmFrame(1, 'hey', { user: 'u-carol', name: 'Carol C' })));
  list = dmSeen(list, carol);
  assert.deepEqual(list.map((c) => c.user), ['u-carol', 'u-bob']);
  assert.equal(conversationLabel(list[0]), 'Carol C', 'the name as last seen');
  assert.equal(conversationLabel({ user: 'abcdef-123456', name: null }), 'User 123456');
});

test('the member list offers a direct message to other signed-in users, and Kick and Ban to moderators', () => {
  const bob = { from: 'B2', label: 'bob', own: false, user: 'u-bob' };
  const me = { from: 'A1', label: 'alice', own: true, user: 'u-alice' };
  const signedIn = { signedIn: true, ownUser: 'u-alice' };
  assert.deepEqual(memberActions(bob, signedIn), { message: true, moderate: false });
  assert.deepEqual(memberActions(bob, { ...signedIn, moderator: true }), { message: true, moderate: true });
  assert.deepEqual(memberActions(me, { ...signedIn, moderator: true }), { message: false, moderate: false });
  assert.deepEqual(memberActions({ ...me, own: false, from: 'A9' }, signedIn), { message: false, moderate: false },
    "the user's other devices");
  assert.deepEqual(memberActions(bob, { ...signedIn, signedIn: false }), { message: false, moderate: false }, 'open mode');
  assert.deepEqual(memberActions({ ...bob, user: null }, signedIn), { message: false, moderate: false }, 'no user id');
  assert.deepEqual(memberActions(bob, { signedIn: true, ownUser: null }), { message: false, moderate: false }, 'own id unknown');

  let roster = updateRoster(updateRoster(newRoster('lobby'), { kind: 'who' }),
    { kind: 'members', room: 'lobby', you: 'A1', more: false, members: [{ from: 'A1', name: 'alice', user: 'u-alice' }] });
  roster = updateRoster(roster, interpret('{"type":"joined","room":"lobby","from":"B2","name":"bob","user":"u-bob"}'));
  assert.deepEqual(memberEntries(roster).map((entry) => entry.user), ['u-alice', 'u-bob'], 'joined keeps the user');
});

test("a moderator is one whose token lists the moderators' group; the server decides all the same", () => {
  assert.equal(MODERATOR_GROUP, 'moderators');
  assert.equal(GROUPS_CLAIM, 'cognito:groups');
  assert.equal(isModerator(jwtClaims(jwt({ sub: 'u', 'cognito:groups': ['readers', 'moderators'] }))), true);
  assert.equal(isModerator({ 'cognito:groups': 'readers moderators' }), true, 'one space-separated string');
  assert.deepEqual(tokenGroups({ 'cognito:groups': ['a', 7, null, 'b'] }), ['a', 'b']);
  for (const claims of [null, {}, { 'cognito:groups': ['Moderators'] }, { 'cognito:groups': 'moderatorsx' }, { groups: ['moderators'] },
    { 'cognito:groups': { moderators: true } }]) {
    assert.equal(isModerator(claims), false, JSON.stringify(claims));
  }
  assert.equal(isModerator(jwtClaims('not a token')), false);

  const own = { id: 'm1', from: 'A1', user: 'u-alice', deleted: false };
  const bobs = { id: 'm2', from: 'B2', user: 'u-bob', deleted: false };
  const me = { you: 'A1', user: 'u-alice' };
  assert.equal(mayDelete(own, me), true);
  assert.equal(mayDelete(bobs, me), false);
  assert.equal(mayDelete(bobs, me, true), true, "a moderator deletes others' messages");
  assert.equal(mayChange(bobs, me), false, '… but edits only their own');
  assert.equal(mayDelete({ ...bobs, deleted: true }, me, true), false, 'a tombstone has no buttons');
  assert.equal(mayDelete({ ...bobs, id: null }, me, true), false);
});

test('kick and ban are the documented actions; a ban is 1 to 527040 whole minutes', () => {
  assert.deepEqual(JSON.parse(kickRequest('u-bob')), { action: 'kick', user: 'u-bob' });
  assert.deepEqual(JSON.parse(banRequest('u-bob', 60)), { action: 'ban', user: 'u-bob', minutes: 60 });
  assert.equal(DEFAULT_BAN_MINUTES, 60);
  assert.equal(MAX_BAN_MINUTES, 527_040);
  assert.equal(banMinutes('60'), 60);
  assert.equal(banMinutes(' 1 '), 1);
  assert.equal(banMinutes('527040'), 527_040);
  for (const bad of ['0', '527041', '1.5', '-3', '1e3', '', 'ten', null, '0x10', '99999999']) {
    assert.equal(banMinutes(bad), null, String(bad));
  }
});

test('moderated frames and ban errors are read, never trusted, and said in a short note', () => {
  const kicked = interpret('{"type":"moderated","action":"kick","room":"lobby","user":"u-bob","connections":2}');
  assert.deepEqual(kicked, { kind: 'moderated', action: 'kick', room: 'lobby', user: 'u-bob', until: null, connections: 2 });
  assert.equal(moderatedText(kicked, 'bob'), 'bob was removed from lobby (2 connections closed).');
  assert.equal(moderatedText({ ...kicked, connections: 1 }, 'bob'), 'bob was removed from lobby (1 connection closed).');
  assert.equal(interpret('{"type":"moderated","action":"kick","user":"u","connections":-1}').connections, null);
  assert.equal(interpret('{"type":"moderated","user":"u"}').kind, 'notice', 'no action: nothing the page knows');
  const banned = interpret('{"type":"moderated","action":"ban","room":"lobby","user":"u-bob","until":"2026-01-01T01:00:00Z","connections":1}');
  assert.match(moderatedText(banned, 'bob'), /^bob is banned from lobby until .+\.$/);
  assert.equal(moderatedText({ ...banned, until: null }, 'bob'), 'bob is banned from lobby.');
  assert.equal(moderatedText({ ...banned, action: 'unban' }, 'bob'), 'bob may come back to lobby.');

  const error = interpret('{"type":"error","code":"banned","message":"You are banned from room \\"lobby\\" until 2026-01-01T01:00:00Z.","until":"2026-01-01T01:00:00Z","clientId":"c-1"}');
  assert.deepEqual([error.code, error.until, error.clientId], ['banned', '2026-01-01T01:00:00Z', 'c-1']);
  const entry = outgoing('hi', 'lobby', 'c-1');
  assert.equal(sendRefused(entry, error), 'failed', 'a ban is not retried');
  assert.equal(pendingLabel(entry), `Not sent: ${error.text}`);
});

test('a server that closes the connection soon after letting the page in is retried ever more slowly', () => {
  assert.equal(STABLE_OPEN_MS, 10_000);
  assert.equal(attemptAfterClose(4, STABLE_OPEN_MS), 0, 'a good connection: the backoff starts over');
  assert.equal(attemptAfterClose(4, 300), 4, 'closed at once: the backoff goes on growing');
  assert.equal(attemptAfterClose(4, null), 4, 'never opened');
  // Kicked again and again right after each reconnect: the waits double up to 10 s.
  let attempt = 0;
  const waits = [];
  for (let kick = 0; kick < 6; kick += 1) {
    attempt = attemptAfterClose(attempt, 500) + 1;
    waits.push(backoff(attempt, () => 0.5));
  }
  assert.deepEqual(waits, [500, 1000, 2000, 4000, 8000, 10000]);
  assert.match(closedText(1000), /server closed the connection \(code 1000\)/);
  assert.equal(closedText(1001), null, "API Gateway's own limits are no news");
  assert.equal(closedText(1006), null);
});
