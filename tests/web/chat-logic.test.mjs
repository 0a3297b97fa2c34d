// The browser client's logic (web/chat.js) without a browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoff, chatRequest, defaultUrl, interpret, refusal, shortId, MAX_MESSAGE_BYTES } from '../../web/chat.js';

test('requests are the documented onMessage frame', () => {
  assert.deepEqual(JSON.parse(chatRequest('Hello everyone')), { action: 'onMessage', message: 'Hello everyone' });
});

test('empty and oversize messages are refused with a reason', () => {
  assert.match(refusal('   '), /Write something/);
  assert.equal(refusal('hi'), null);
  assert.match(refusal('x'.repeat(MAX_MESSAGE_BYTES)), /Too long to send/);
  // Multi-byte characters count as bytes, not characters.
  assert.match(refusal('é'.repeat(MAX_MESSAGE_BYTES / 2)), /Too long/);
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
