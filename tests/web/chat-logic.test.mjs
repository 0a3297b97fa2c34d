// The browser client's logic (web/chat.js) without a browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  afterClose, backoff, chatRequest, cleanName, configFor, connectProtocols, connectUrl, defaultUrl, fragmentToken, frameBytes,
  historyRequest, initialRoom, interpret, joinRequest, jwtClaims, kb, memberEntries, mergeHistory, messageKey, newRoster,
  pageWithRoom, parseConfig, parseTokenAnswer, presenceText, rateLimitText, refusal, roomRefusal, rosterSummary,
  senderLabel, shortId, sizeHint, socketKey, tokenExpired, tokenMayGoTo, tokenName, tokenRequestUrl, updateRoster,
  whoRequest, withParam, DEFAULT_ROOM, HISTORY_LIMIT, MAX_FRAME_BYTES, MAX_ROOM_CHARS, NAME_CLAIMS, TOKEN_RETRIES,
} from '../../web/chat.js';

/** The bytes of `{"action":"onMessage","message":""}` around the text. */
const ENVELOPE = 35;

test('requests are the documented onMessage frame', () => {
  assert.deepEqual(JSON.parse(chatRequest('Hello everyone')), { action: 'onMessage', message: 'Hello everyone' });
});

test('a frame is counted in UTF-8 bytes of the whole request, JSON escapes included', () => {
  assert.equal(MAX_FRAME_BYTES, 32768);
  assert.equal(frameBytes(''), ENVELOPE);
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
  assert.equal(room % 3, 0);
  assert.equal(refusal('€'.repeat(room / 3)), null);
  assert.match(refusal(`${'€'.repeat(room / 3)}x`), /^This message is 32\.1 KB;/);
  // Escapes count too: 22,000 characters but 33,000 bytes of text.
  assert.match(refusal('a"'.repeat(11_000)), /^This message is 32\.3 KB; API Gateway takes at most 32 KB in one frame/);
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
    kind: 'message', id: 'm1', room: 'lobby', from: 'A1', name: 'alice', text: 'hi', sentAt: '2026-01-01T00:00:00Z',
  });
  const older = interpret('{"type":"message","from":"A1","message":"hi"}');
  assert.equal(older.id, null, 'an older server sends no id');
  assert.equal(older.room, null, 'nor a room');

  assert.deepEqual(interpret('{"type":"joined","room":"rust","from":"B2","name":"bob"}'),
    { kind: 'joined', room: 'rust', from: 'B2', name: 'bob' });
  assert.deepEqual(interpret('{"type":"left","room":"lobby","from":"B2"}'), { kind: 'left', room: 'lobby', from: 'B2', name: null });

  const members = interpret(JSON.stringify({
    type: 'members', room: 'lobby', you: 'A1', members: [{ from: 'A1', name: 'alice' }, null, 'x', { from: 'B2', name: 7 }], more: false,
  }));
  assert.deepEqual(members, {
    kind: 'members', room: 'lobby', you: 'A1', members: [{ from: 'A1', name: 'alice' }, { from: 'B2', name: null }], more: false,
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
  assert.deepEqual(limited, { kind: 'error', code: 'rate_limited', text: 'slow down', retryAfterMs: 1200 });
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
    { from: 'C3', label: 'zoe', own: true },
    { from: 'X9', label: '<b>x</b>', own: false },
    { from: 'A1', label: 'Alice', own: false },
    { from: 'B2', label: 'bob', own: false },
    { from: 'R1kmxc2VNjMCFIA=', label: 'User jMCFIA', own: false },
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
