// The chat page in a real headless Chromium against the real local stack: two pages chat
// both ways, HTML is shown as text and never runs, a restarted stack is reconnected to,
// messages over one 32 KB frame are refused in the page, a message the server closes 1009
// on is put back in the box, and a screenshot is kept as an artifact.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const binDir = join(process.env.CARGO_TARGET_DIR ?? join(repo, 'target'), 'debug');
const artifacts = join(repo, 'web', 'test-artifacts');
const table = `web-${process.pid}`;
let port;
let stack;
let browser;

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts chat-local on `port` and resolves once it prints "Ready.". */
function startStack() {
  const args = ['start', '--port', String(port), '--connections-port', '0', '--bin-dir', binDir, '--quiet',
    '--parameter-overrides', `TableName=${table}`];
  if (process.env.DYNAMODB_ENDPOINT) args.push('--dynamodb-endpoint', process.env.DYNAMODB_ENDPOINT);
  const child = spawn(join(binDir, 'chat-local'), args, { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the stack did not get ready in 30 s')), 30_000);
    let seen = '';
    child.stdout.on('data', (chunk) => {
      seen += chunk;
      if (seen.includes('Ready.')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code) => reject(new Error(`the stack exited (${code}) before it was ready:\n${seen}`)));
  });
}

function stopStack(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', resolve);
    child.kill('SIGINT');
  });
}

/** A chat page, online; `init` runs in it before the page's own scripts. */
async function openPage(init) {
  const page = await browser.newPage({ viewport: { width: 420, height: 760 } });
  page.on('dialog', (dialog) => {
    throw new Error(`a dialog opened: ${dialog.message()}`);
  });
  if (init) await page.addInitScript(init);
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.locator('#status[data-state="online"]').waitFor({ timeout: 10_000 });
  return page;
}

async function send(page, text) {
  await page.fill('#message', text);
  await page.press('#message', 'Enter');
}

before(async () => {
  port = await freePort();
  stack = await startStack();
  // Playwright gives every launch a fresh, empty user-data directory of its own.
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic'],
  });
});

after(async () => {
  await browser?.close();
  if (stack) await stopStack(stack);
});

test('two pages chat both ways, own messages set apart', async () => {
  const alice = await openPage();
  const bob = await openPage();
  await send(alice, 'Hello from Alice');
  await bob.locator('#log li.message', { hasText: 'Hello from Alice' }).waitFor();
  await alice.locator('#log li.own', { hasText: 'Hello from Alice' }).waitFor();
  await send(bob, 'Hi Alice, Bob here');
  await alice.locator('#log li.message', { hasText: 'Bob here' }).waitFor();
  await bob.locator('#log li.own', { hasText: 'Bob here' }).waitFor();
  const meta = await alice.locator('#log li.message .meta').first().textContent();
  assert.match(meta, /^User \S{1,6} · \d\d:\d\d/);
  assert.equal(await alice.inputValue('#message'), '', 'Enter sent and cleared the box');

  mkdirSync(artifacts, { recursive: true });
  await alice.screenshot({ path: join(artifacts, 'chat.png') });
  await alice.close();
  await bob.close();
});

test('markup in a message is shown as text and runs nothing', async () => {
  const alice = await openPage();
  const bob = await openPage();
  const attack = '<img src=x onerror=alert(1)>';
  await send(alice, attack);
  const item = bob.locator('#log li.message .body', { hasText: attack });
  await item.waitFor();
  assert.equal(await item.textContent(), attack);
  assert.equal(await bob.locator('#log img').count(), 0, 'no element was created from the message');
  await alice.close();
  await bob.close();
});

test('a 40 KB paste is refused in the page with the reason, kept in the box and not sent', async () => {
  const alice = await openPage();
  const bob = await openPage();
  const paste = 'x'.repeat(40 * 1024);
  await alice.focus('#message');
  await alice.keyboard.insertText(paste);
  await alice.locator('#size[data-over]:not([hidden])', { hasText: '40.1 of 32 KB' }).waitFor();
  await alice.press('#message', 'Enter');
  const reason = 'This message is 40.1 KB; API Gateway takes at most 32 KB in one frame. Shorten it.';
  await alice.locator('#note:not([hidden])', { hasText: reason }).waitFor();
  assert.equal(await alice.inputValue('#message'), paste, 'the text is kept');
  await alice.click('#composer button');
  assert.equal(await alice.inputValue('#message'), paste, 'the Send button refuses it too');

  // What fits one frame exactly still goes through; bob sees it and nothing of the paste.
  const fits = 'y'.repeat(32 * 1024 - '{"action":"onMessage","message":""}'.length);
  await send(alice, fits);
  await bob.locator('#log li.message', { hasText: 'yyyyyyyyyy' }).waitFor();
  assert.equal(await alice.inputValue('#message'), '', 'a message that was sent leaves the box');
  assert.equal(await alice.locator('#note').isHidden(), true, 'the reason went away once the text fit');
  await send(alice, 'small again');
  await bob.locator('#log li.message', { hasText: 'small again' }).waitFor();
  assert.equal(await bob.locator('#log li.message', { hasText: 'xxxxxxxxxx' }).count(), 0, 'nothing oversize was sent');
  await alice.close();
  await bob.close();
});

test('a message the server closes 1009 on is put back in the box, with the reason', async () => {
  // Stands in for a frame API Gateway finds too big: the page's check passes, the wire
  // carries 130 KB, and the stack closes the connection with 1009.
  const page = await openPage(() => {
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
      const inflate = typeof data === 'string' && data.includes('inflated on the wire');
      return send.call(this, inflate ? JSON.stringify({ action: 'onMessage', message: 'z'.repeat(130 * 1024) }) : data);
    };
  });
  await send(page, 'inflated on the wire');
  await page.locator('#note:not([hidden])', { hasText: 'the server closed the connection because a message was too large' })
    .waitFor({ timeout: 10_000 });
  await page.locator('#log li.notice', { hasText: 'close 1009' }).waitFor();
  assert.equal(await page.inputValue('#message'), 'inflated on the wire', 'the unsent text is back in the box');
  await page.locator('#status[data-state="online"]').waitFor({ timeout: 20_000 });
  await send(page, 'after 1009');
  await page.locator('#log li.own', { hasText: 'after 1009' }).waitFor({ timeout: 10_000 });
  await page.close();
});

test('a dropped connection is reconnected after the stack restarts', async () => {
  const page = await openPage();
  await stopStack(stack);
  await page.locator('#status[data-state="offline"]', { hasText: 'Reconnecting in' }).waitFor({ timeout: 10_000 });
  stack = await startStack();
  await page.locator('#status[data-state="online"]').waitFor({ timeout: 20_000 });
  await send(page, 'back again');
  await page.locator('#log li.own', { hasText: 'back again' }).waitFor({ timeout: 10_000 });
  await page.close();
});
