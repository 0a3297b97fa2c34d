// The browser client's logic (web/chat.js) without a browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  backoff, chatRequest, defaultUrl, frameBytes, interpret, kb, refusal, shortId, sizeHint, MAX_FRAME_BYTES,
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
