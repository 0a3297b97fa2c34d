// The chat page in a real headless Chromium against the real local stack: two pages chat
// both ways, HTML is shown as text and never runs, a restarted stack is reconnected to,
// messages over one 32 KB frame are refused in the page, a message the server closes 1009
// on is put back in the box, a name chosen in the page labels its messages, and a screenshot
// is kept as an artifact. Rooms: a message reaches its own room only, a room's history shows on
// entry, member lists follow who comes and goes, and the room switcher moves a page (each test
// in rooms of its own), and a page cut off catches up once back, in seq order, and delivers what
// was written offline, each once. A second stack in AuthMode=jwt signs pages in through its
// issuer's sign-in page (authorization code + PKCE), sends a handed-over token only once the user
// signs in, refuses a badly signed one without a reconnect loop, and takes a pasted token. A third in
// AuthMode=cognito: people sign up through the sign-in page and chat under their names, sign
// out (here and at the issuer), renew a token that expires during the session without losing
// the conversation, and a sign-in that fails says so. A fourth in AuthMode=jwt trusts an issuer the
// test serves itself (tests/web/test-issuer.mjs), which the page signs in at the same way. The
// stack's own metrics page (/@local/metrics) charts the messages sent and their deliveries, live.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startIssuer } from './test-issuer.mjs';

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

/**
 * Starts chat-local (on `port` with `table` unless told otherwise) and resolves once it prints
 * "Ready."; `options` come before --bin-dir, `overrides` after TableName.
 */
function startStack({ on = port, tableName = table, options = [], overrides = [] } = {}) {
  const args = ['start', '--port', String(on), '--connections-port', '0', '--lambda-port', '0', '--s3-port', '0', ...options, '--bin-dir', binDir, '--quiet',
    '--parameter-overrides', `TableName=${tableName}`, ...overrides];
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

/**
 * A chat page at `url` (the open stack's by default), in a browser context of its own (its own
 * localStorage and sessionStorage); `init` runs in it before the page's own scripts.
 */
async function newPage(init, url = `http://127.0.0.1:${port}/`) {
  const page = await browser.newPage({ viewport: { width: 420, height: 760 } });
  page.on('dialog', (dialog) => {
    throw new Error(`a dialog opened: ${dialog.message()}`);
  });
  if (init) await page.addInitScript(init);
  await page.goto(url);
  return page;
}

async function waitOnline(page) {
  await page.locator('#status[data-state="online"]').waitFor({ timeout: 10_000 });
}

/** A chat page, online. */
async function openPage(init, url) {
  const page = await newPage(init, url);
  await waitOnline(page);
  return page;
}

/** The meta line ("name · HH:MM") of the message with `text` in it, once it arrived. */
async function metaOf(page, text) {
  const meta = page.locator('#log li.message', { hasText: text }).locator('.meta');
  await meta.waitFor({ timeout: 10_000 });
  return meta.textContent();
}

async function send(page, text) {
  await page.fill('#message', text);
  await page.press('#message', 'Enter');
}

/** Serves web/ as a plain static host would (no configuration, no headers); its URL. */
async function staticHost() {
  const types = { html: 'text/html', js: 'text/javascript', css: 'text/css' };
  const server = createHttpServer(async (request, response) => {
    const name = new URL(request.url, 'http://x').pathname.slice(1) || 'index.html';
    try {
      if (!/^[a-z-]+\.(html|js|css)$/.test(name)) throw new Error('not a page file');
      const body = await readFile(join(repo, 'web', name));
      response.writeHead(200, { 'content-type': types[name.split('.').pop()] });
      response.end(body);
    } catch {
      response.writeHead(404);
      response.end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => server.close());
  return `http://127.0.0.1:${server.address().port}`;
}

/**
 * A page at `url` signed in as `name` through its issuer: Sign in goes to the issuer's sign-in
 * page (a new name signs up), which sends the browser back with a code the page trades (PKCE).
 */
async function signedInAtIssuer(name, url, init) {
  const page = await newPage(init, url);
  await page.locator('#status[data-state="signed-out"]', { hasText: 'Sign in' }).waitFor({ timeout: 10_000 });
  assert.equal(await page.textContent('#join'), 'Sign in');
  assert.equal(await page.locator('#token-field').isHidden(), true, 'the issuer signs in: no paste box');
  assert.equal(await page.locator('#name').isHidden(), true, 'the issuer asks the name');
  await page.click('#join');
  await page.waitForURL(/\/oauth2\/authorize\?/, { timeout: 10_000 });
  const authorize = new URL(page.url());
  assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
  assert.equal(authorize.searchParams.get('response_type'), 'code');
  assert.ok(authorize.searchParams.get('state') && authorize.searchParams.get('nonce'));
  await page.fill('#username', name);
  await page.click('#sign-in');
  await waitOnline(page);
  await page.locator('#who', { hasText: `Signed in as ${name}` }).waitFor();
  assert.equal(new URL(page.url()).searchParams.has('code'), false, 'the code left the address bar');
  return page;
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
  // A guest's name from the server (User <short id> from a server that sends no names).
  assert.match(meta, /^(guest-\S+|User \S{1,6}) · \d\d:\d\d/);
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

  // What fits one frame exactly (with the clientId the page sends, as long as a UUID) still goes
  // through; bob sees it and nothing of the paste.
  const envelope = `{"action":"onMessage","message":"","clientId":"${'u'.repeat(36)}"}`;
  const fits = 'y'.repeat(32 * 1024 - envelope.length);
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

test('in open mode a name chosen in the page labels its messages, and is remembered', async () => {
  const carol = await openPage();
  const dave = await openPage();
  assert.equal(await carol.locator('#token-field').isHidden(), true, 'open mode has no token box');
  assert.equal(await carol.locator('#direct').isHidden(), true, 'open mode has no direct messages');
  assert.equal(await carol.textContent('#join'), 'Join');
  // No name yet: the page connected at once and the server named a guest.
  await send(carol, 'before choosing a name');
  assert.match(await metaOf(dave, 'before choosing a name'), /^guest-\S+ · \d\d:\d\d/);
  await carol.locator('#who', { hasText: 'You are guest-' }).waitFor({ timeout: 10_000 });

  await carol.fill('#name', 'carol');
  await carol.press('#name', 'Enter');
  await carol.locator('#who', { hasText: 'You are carol' }).waitFor({ timeout: 10_000 });
  await waitOnline(carol);
  await send(carol, 'Carol has a name now');
  assert.match(await metaOf(dave, 'Carol has a name now'), /^carol · \d\d:\d\d/);
  await carol.locator('#log li.own', { hasText: 'Carol has a name now' }).waitFor();

  // Remembered: after a reload the page joins as carol again by itself.
  await carol.reload();
  assert.equal(await carol.inputValue('#name'), 'carol');
  await waitOnline(carol);
  await carol.locator('#who', { hasText: 'You are carol' }).waitFor({ timeout: 10_000 });
  await send(carol, 'Carol after a reload');
  assert.match(await metaOf(dave, 'Carol after a reload'), /^carol · /);
  await carol.close();
  await dave.close();
});

test('the local metrics page charts the messages sent and their deliveries, live', async () => {
  const alice = await openPage();
  const bob = await openPage();
  const texts = ['counted once', 'counted twice', 'counted thrice'];
  for (const text of texts) {
    await send(alice, text);
    await bob.locator('#log li.message', { hasText: text }).waitFor({ timeout: 10_000 });
  }

  // The functions' EMF lines reach the stack as they print them, and the page polls every 2 s.
  const page = await newPage(undefined, `http://127.0.0.1:${port}/@local/metrics`);
  const widget = page.locator('section.widget[data-widget="messages"]');
  await widget.locator('h2', { hasText: 'Messages and deliveries' }).waitFor({ timeout: 10_000 });
  await page.waitForFunction((sent) => {
    const drawn = (name) => document.querySelector(`section[data-widget="messages"] svg path[data-series="${name}"]`);
    const kept = drawn('MessagesKept');
    const deliveries = drawn('Deliveries');
    return kept !== null && deliveries !== null && Number(kept.dataset.total) >= sent
      && Number(deliveries.dataset.total) >= sent && Number(kept.dataset.points) >= 1
      && /^M[\d.]+ [\d.]+/.test(kept.getAttribute('d'));
  }, texts.length, { timeout: 20_000 });
  assert.equal(await widget.getAttribute('data-state'), 'data');
  assert.equal(await page.locator('#status').getAttribute('data-state'), 'live');
  const total = await widget.locator('svg path[data-series="MessagesKept"]').getAttribute('data-total');
  assert.match(await widget.locator('.legend li[data-series="MessagesKept"]').textContent(), new RegExp(`MessagesKept ${total}$`));
  // The connections the two pages opened, as API Gateway counts them.
  const connects = page.locator('section[data-widget="connections"] svg path[data-series="$connect"]');
  assert.ok(Number(await connects.getAttribute('data-total')) >= 2);
  // Every widget of the dashboard is there, each with its chart or "no data yet".
  assert.deepEqual(await page.locator('section.widget h2').allTextContents(), ['Connections', 'Messages and deliveries',
    'Fan-out duration', 'Gone, throttled, undelivered', 'Authorizer', 'History reads and chunks', 'Function durations',
    'Cold starts and errors']);
  for (const section of await page.locator('section.widget').all()) {
    const empty = (await section.getAttribute('data-state')) === 'empty';
    assert.equal(await section.locator(empty ? 'p.empty' : 'svg.chart').count(), 1);
  }
  await page.locator('section[data-widget="history"] p[data-dropped]', { hasText: /^Dropped chunks: \d+$/ }).waitFor();

  // Live: another message raises the total without a reload.
  await send(alice, 'counted again');
  await bob.locator('#log li.message', { hasText: 'counted again' }).waitFor({ timeout: 10_000 });
  await page.waitForFunction((before) => Number(document.querySelector(
    'section[data-widget="messages"] svg path[data-series="MessagesKept"]')?.dataset.total) > before, Number(total), { timeout: 20_000 });
  for (const open of [page, alice, bob]) await open.close();
});

describe('rooms, presence and history', () => {
  const soon = { timeout: 10_000 };
  let rooms = 0;

  /** A room name no other test (nor another run of this file) uses. */
  function freshRoom(label) {
    rooms += 1;
    return `${label}-${process.pid}-${rooms}`;
  }

  /**
   * A page on the open stack in `room` as `name` (remembered in its localStorage before the page
   * loads, as the Name field would), online and with the room's member list in, its own entry
   * marked; window.sockets counts the WebSockets it opens.
   */
  async function inRoom(room, name) {
    const init = `localStorage.setItem('chat.name', ${JSON.stringify(name)});
      window.sockets = 0;
      window.WebSocket = class extends window.WebSocket {
        constructor(...args) {
          super(...args);
          window.sockets += 1;
        }
      };`;
    const page = await openPage(init, `http://127.0.0.1:${port}/?room=${room}`);
    await page.locator('#members li.own', { hasText: name }).waitFor(soon);
    assert.equal(await page.inputValue('#room'), room, 'the switcher shows the room');
    return page;
  }

  /** The texts of the chat messages in `page`'s log, in order. */
  function messageTexts(page) {
    return page.locator('#log li.message .body, #log li.own .body').allTextContents();
  }

  /** Waits until `page` lists `name` as a member (or, with gone, no longer does). */
  async function member(page, name, { gone = false } = {}) {
    await page.locator('#members li', { hasText: name }).waitFor({ ...soon, state: gone ? 'detached' : 'visible' });
  }

  test("a message reaches its own room's pages and no other", async () => {
    const alpha = freshRoom('alpha');
    const beta = freshRoom('beta');
    const a = await inRoom(alpha, 'amy');
    const b = await inRoom(beta, 'bea');
    const c = await inRoom(alpha, 'cal');
    await send(c, 'for alpha only');
    assert.match(await metaOf(a, 'for alpha only'), /^cal · \d\d:\d\d/);
    await c.locator('#log li.own', { hasText: 'for alpha only' }).waitFor(soon);
    // What beta says afterwards reaches beta; alpha's message had its chance to arrive by then.
    await send(b, 'for beta only');
    await b.locator('#log li.own', { hasText: 'for beta only' }).waitFor(soon);
    await send(c, 'alpha again');
    await a.locator('#log li.message', { hasText: 'alpha again' }).waitFor(soon);
    assert.deepEqual(await messageTexts(b), ['for beta only'], 'beta saw nothing of alpha');
    assert.deepEqual(await messageTexts(a), ['for alpha only', 'alpha again'], 'alpha saw nothing of beta');
    await a.locator('#member-count[data-count="2"]').waitFor(soon);
    await b.locator('#member-count[data-count="1"]').waitFor(soon);
    assert.equal(await b.locator('#members li', { hasText: 'amy' }).count(), 0, "alpha's members are not beta's");
    assert.equal(await b.locator('#log li.presence').count(), 0, "nor are alpha's comings");
    for (const page of [a, b, c]) await page.close();
  });

  test("a room's recent messages show on entry, in order and once", async () => {
    const room = freshRoom('history');
    const a = await inRoom(room, 'ada');
    await send(a, 'history one');
    await a.locator('#log li.own', { hasText: 'history one' }).waitFor(soon);
    await send(a, 'history two');
    await a.locator('#log li.own', { hasText: 'history two' }).waitFor(soon);

    const d = await inRoom(room, 'dov');
    await d.locator('#log li.message', { hasText: 'history two' }).waitFor(soon);
    assert.deepEqual(await messageTexts(d), ['history one', 'history two']);
    assert.match(await metaOf(d, 'history one'), /^ada · \d\d:\d\d/);
    // New messages come after the history, and nothing shows twice.
    await send(a, 'history three');
    await d.locator('#log li.message', { hasText: 'history three' }).waitFor(soon);
    assert.deepEqual(await messageTexts(d), ['history one', 'history two', 'history three']);
    // The page that sent them shows each once too.
    assert.deepEqual(await messageTexts(a), ['history one', 'history two', 'history three']);
    await a.close();
    await d.close();
  });

  test('a page cut off catches up in seq order and delivers what was written meanwhile, each once', async () => {
    const room = freshRoom('offline');
    // amy's page reaches the stack through a proxy (routeWebSocket) the test controls: it can
    // stop passing the stack's frames to the page (deaf), cut the connection, refuse new ones
    // while the browser is offline, and hold one frame back until another overtook it.
    const proxy = { offline: false, deaf: false, route: null, hold: null, releaseAfter: null, held: [], overtaken: false };
    const amy = await browser.newPage({ viewport: { width: 420, height: 760 } });
    amy.on('dialog', (dialog) => {
      throw new Error(`a dialog opened: ${dialog.message()}`);
    });
    await amy.addInitScript("localStorage.setItem('chat.name', 'amy');");
    await amy.routeWebSocket(/^wss?:/, (ws) => {
      if (proxy.offline) {
        // No network: the handshake fails, and the page tries again later.
        ws.close({ code: 3001, reason: 'offline' });
        return;
      }
      const server = ws.connectToServer();
      proxy.route = { ws, server };
      ws.onMessage((message) => server.send(message));
      server.onMessage((message) => {
        if (proxy.deaf || proxy.route?.ws !== ws) return;
        const text = String(message);
        if (proxy.hold && text.includes(proxy.hold)) {
          proxy.held.push(message);
          return;
        }
        ws.send(message);
        if (proxy.releaseAfter && text.includes(proxy.releaseAfter) && proxy.held.length) {
          proxy.overtaken = true;
          for (const late of proxy.held.splice(0)) ws.send(late);
        }
      });
    });
    await amy.goto(`http://127.0.0.1:${port}/?room=${room}`);
    await waitOnline(amy);
    await amy.locator('#members li.own', { hasText: 'amy' }).waitFor(soon);
    const bob = await inRoom(room, 'bob');
    await member(amy, 'bob');

    const cut = async () => {
      proxy.offline = true;
      await amy.context().setOffline(true);
      const { ws, server } = proxy.route;
      proxy.route = null;
      // The stack sees the connection go, and the page loses it.
      await server.close({ code: 1001, reason: 'network lost' }).catch(() => {});
      await ws.close({ code: 3000, reason: 'network lost' }).catch(() => {});
    };

    await send(bob, 'bob before');
    await amy.locator('#log li.message', { hasText: 'bob before' }).waitFor(soon);

    // amy's message reaches the stack (bob sees it), but its answer never reaches amy: the
    // connection is cut with it still pending.
    proxy.deaf = true;
    await send(amy, 'amy in flight');
    await bob.locator('#log li.message', { hasText: 'amy in flight' }).waitFor(soon);
    await cut();
    await amy.locator('#status[data-state="offline"]').waitFor(soon);
    await amy.locator('#log li.pending', { hasText: 'amy in flight' }).waitFor(soon);

    // Offline: bob goes on talking; amy writes two messages, kept in the page as pending.
    for (const text of ['bob 2', 'bob 3', 'bob 4', 'bob 5']) {
      await send(bob, text);
      await bob.locator('#log li.own', { hasText: text }).waitFor(soon);
    }
    await send(amy, 'amy offline one');
    await send(amy, 'amy offline two');
    const pending = amy.locator('#log li.pending');
    await pending.nth(2).waitFor(soon);
    assert.deepEqual(await pending.locator('.body').allTextContents(), ['amy in flight', 'amy offline one', 'amy offline two']);
    assert.match(await pending.first().locator('.meta').textContent(), /sending…/);
    assert.equal(await amy.inputValue('#message'), '', 'sent from the box, kept as pending');
    assert.deepEqual(await messageTexts(amy), ['bob before'], 'nothing of what bob said yet');

    // Back online: amy reconnects, shows what bob said, and delivers what was pending.
    proxy.deaf = false;
    proxy.offline = false;
    await amy.context().setOffline(false);
    await waitOnline(amy);
    await amy.locator('#log li.own', { hasText: 'amy offline two' }).waitFor({ timeout: 20_000 });
    await bob.locator('#log li.message', { hasText: 'amy offline two' }).waitFor(soon);
    await amy.waitForFunction(() => document.querySelector('#log li.pending') === null, null, soon);

    // A frame that arrives after one sent later goes in its place all the same.
    proxy.hold = 'bob 6 (held back)';
    proxy.releaseAfter = 'bob 7 (overtakes)';
    await send(bob, 'bob 6 (held back)');
    await bob.locator('#log li.own', { hasText: 'bob 6' }).waitFor(soon);
    await send(bob, 'bob 7 (overtakes)');
    await amy.locator('#log li.message', { hasText: 'bob 6' }).waitFor(soon);
    await amy.locator('#log li.message', { hasText: 'bob 7' }).waitFor(soon);
    assert.equal(proxy.overtaken, true, 'bob 7 reached the page before bob 6');

    // Anything shown twice would have had time to come.
    await amy.waitForTimeout(1_500);
    const expected = ['bob before', 'amy in flight', 'bob 2', 'bob 3', 'bob 4', 'bob 5', 'amy offline one', 'amy offline two',
      'bob 6 (held back)', 'bob 7 (overtakes)'];
    assert.deepEqual(await messageTexts(amy), expected, "amy's page: in seq order, each once");
    assert.deepEqual(await messageTexts(bob), expected, "bob's page: amy's messages each once");
    assert.deepEqual(await amy.locator('#log li.own .body').allTextContents(), ['amy in flight', 'amy offline one', 'amy offline two']);
    assert.equal(await amy.locator('#log li.pending, #log li.failed').count(), 0);
    await amy.close();
    await bob.close();
  });

  test('member lists follow a page coming and going', async () => {
    const room = freshRoom('members');
    const a = await inRoom(room, 'ann');
    const b = await inRoom(room, 'ben');
    await member(a, 'ben');
    await b.locator('#member-count[data-count="2"]').waitFor(soon);

    const c = await inRoom(room, 'cat');
    for (const page of [a, b]) {
      await member(page, 'cat');
      await page.locator('#member-count[data-count="3"]').waitFor(soon);
      await page.locator('#log li.presence', { hasText: 'cat joined' }).waitFor(soon);
    }
    assert.deepEqual((await c.locator('#members li').allTextContents()).sort(), ['ann', 'ben', 'cat (you)']);
    assert.equal(await c.locator('#log li.presence').count(), 0, 'a page is not told of its own arrival');

    await c.close();
    for (const page of [a, b]) {
      await member(page, 'cat', { gone: true });
      await page.locator('#member-count[data-count="2"]').waitFor(soon);
      await page.locator('#log li.presence', { hasText: 'cat left' }).waitFor(soon);
    }
    assert.equal(await a.locator('#members li.own').textContent(), 'ann (you)');
    assert.equal(await a.locator('#members button').count(), 0, 'open mode: no Message, Kick or Ban');
    await a.close();
    await b.close();
  });

  test('the room switcher moves a page without reconnecting: the old room sees it leave, the new one arrive', async () => {
    const from = freshRoom('from');
    const to = freshRoom('to');
    const mover = await inRoom(from, 'max');
    const stayer = await inRoom(from, 'sue');
    const host = await inRoom(to, 'tom');
    await member(mover, 'sue');
    await send(stayer, 'said before the move');
    await mover.locator('#log li.message', { hasText: 'said before the move' }).waitFor(soon);
    await send(host, 'waiting in the new room');
    await host.locator('#log li.own', { hasText: 'waiting in the new room' }).waitFor(soon);

    // A name the server would refuse is refused in the page, with the reason, and changes nothing.
    await mover.fill('#room', 'no such room!');
    await mover.click('#switch-room');
    await mover.locator('#room-note:not([hidden])', { hasText: 'a space is not allowed' }).waitFor(soon);
    assert.equal(new URL(mover.url()).searchParams.get('room'), from);
    await member(mover, 'sue');

    await mover.fill('#room', to);
    await mover.press('#room', 'Enter');
    await member(stayer, 'max', { gone: true });
    await stayer.locator('#log li.presence', { hasText: 'max left' }).waitFor(soon);
    await member(host, 'max');
    await host.locator('#log li.presence', { hasText: 'max joined' }).waitFor(soon);

    // The moved page: the new room's members and history, nothing of the old room, the URL says so.
    await member(mover, 'tom');
    await mover.locator('#members li.own', { hasText: 'max' }).waitFor(soon);
    await mover.locator('#member-count[data-count="2"]').waitFor(soon);
    await member(mover, 'sue', { gone: true });
    await mover.locator('#log li.message', { hasText: 'waiting in the new room' }).waitFor(soon);
    assert.equal(await mover.locator('#log li', { hasText: 'said before the move' }).count(), 0, 'the log was cleared');
    assert.equal(new URL(mover.url()).searchParams.get('room'), to);
    assert.equal(await mover.inputValue('#room'), to);
    assert.equal(await mover.locator('#room-note').isHidden(), true);
    assert.equal(await mover.locator('#status').getAttribute('data-state'), 'online');
    assert.equal(await mover.evaluate(() => window.sockets), 1, 'moved on the same connection');

    // It now talks to the new room only.
    await send(mover, 'max in the new room');
    await host.locator('#log li.message', { hasText: 'max in the new room' }).waitFor(soon);
    await send(stayer, 'sue stayed');
    await stayer.locator('#log li.own', { hasText: 'sue stayed' }).waitFor(soon);
    await send(host, 'tom answers');
    await mover.locator('#log li.message', { hasText: 'tom answers' }).waitFor(soon);
    assert.equal(await stayer.locator('#log li', { hasText: 'max in the new room' }).count(), 0);
    assert.equal(await mover.locator('#log li', { hasText: 'sue stayed' }).count(), 0);
    for (const page of [mover, stayer, host]) await page.close();
  });
});

describe('a stack in AuthMode=jwt, signing in at its issuer', () => {
  let jwtStack;
  let jwtPort;
  let issuerPort;
  const pageUrl = () => `http://127.0.0.1:${jwtPort}/`;

  /**
   * A token of the development issuer's for `name` with one character of its signature changed:
   * its header (the issuer's real `kid`), payload and expiry are good, so only the server's
   * signature check can refuse it (a made-up `kid` would be refused as an unknown key instead).
   */
  async function forged(name) {
    const response = await fetch(`http://127.0.0.1:${issuerPort}/token?name=${name}`);
    assert.equal(response.status, 200);
    const [header, payload, signature] = (await response.json()).token.split('.');
    const at = 10;
    const changed = signature[at] === 'A' ? 'B' : 'A';
    return `${header}.${payload}.${signature.slice(0, at)}${changed}${signature.slice(at + 1)}`;
  }

  /** Counts the WebSockets the page opens, in window.sockets. */
  function countSockets() {
    window.sockets = 0;
    const Native = window.WebSocket;
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        window.sockets += 1;
      }
    };
  }

  /** A page on the jwt stack, signed in as `name` at its (development) issuer. */
  async function signedIn(name) {
    return signedInAtIssuer(name, pageUrl());
  }

  const soon = { timeout: 10_000 };
  let rooms = 0;

  /** A room name no other test (nor another run of this file) uses. */
  function freshRoom(label) {
    rooms += 1;
    return `${label}-${process.pid}-${rooms}`;
  }

  /** A token of the development issuer's for `name`, in `groups` (comma-separated) when given. */
  async function issuerToken(name, groups = null) {
    const query = new URLSearchParams({ name, ...(groups ? { groups } : {}) });
    const response = await fetch(`http://127.0.0.1:${issuerPort}/token?${query}`);
    assert.equal(response.status, 200);
    return (await response.json()).token;
  }

  /**
   * A page on the jwt stack in `room`, signed in as `name` (in `groups`) with a token handed over
   * as `#token=`: sent nowhere until Sign in binds it to the stack's socket; online, with its own
   * member entry in.
   */
  async function handedOver(name, room, { groups = null, init } = {}) {
    const token = await issuerToken(name, groups);
    const page = await newPage(init, `${pageUrl()}?room=${room}#token=${token}`);
    await page.locator('#status[data-state="signed-out"]', { hasText: 'Sign in to' }).waitFor(soon);
    await page.click('#join');
    await waitOnline(page);
    await page.locator('#members li.own', { hasText: name }).waitFor(soon);
    return page;
  }

  /**
   * Lets `page` open dialogs (confirm, prompt), each answered by accepting with `value`; what they
   * asked ({message, proposed}: a prompt's default value), in order.
   */
  function acceptDialogs(page, value) {
    const seen = [];
    page.removeAllListeners('dialog');
    page.on('dialog', (dialog) => {
      seen.push({ message: dialog.message(), proposed: dialog.defaultValue() });
      dialog.accept(value).catch(() => {});
    });
    return seen;
  }

  before(async () => {
    jwtPort = await freePort();
    issuerPort = await freePort();
    jwtStack = await startStack({
      on: jwtPort, tableName: `web-jwt-${process.pid}`, options: ['--issuer-port', String(issuerPort)],
      overrides: ['AuthMode=jwt'],
    });
  });

  after(async () => {
    if (jwtStack) await stopStack(jwtStack);
  });

  test('alice and bob sign in by name and see each other\'s messages under their names', async () => {
    const alice = await signedIn('alice');
    const bob = await signedIn('bob');
    await send(alice, 'Hello Bob, Alice here');
    assert.match(await metaOf(bob, 'Alice here'), /^alice · \d\d:\d\d/);
    await alice.locator('#log li.own', { hasText: 'Alice here' }).waitFor();
    await send(bob, 'Hi Alice, Bob here');
    assert.match(await metaOf(alice, 'Bob here'), /^bob · \d\d:\d\d/);
    await bob.locator('#log li.own', { hasText: 'Bob here' }).waitFor();

    // The token stays out of sight: not in the address bar, not in the page's text.
    const token = await alice.evaluate(() => sessionStorage.getItem('chat.token'));
    assert.match(token ?? '', /^[\w-]+\.[\w-]+\.[\w-]+$/, 'the page holds a JWT for the session');
    assert.equal(alice.url().includes(token), false);
    assert.equal((await alice.textContent('body')).includes(token), false);

    mkdirSync(artifacts, { recursive: true });
    await alice.screenshot({ path: join(artifacts, 'chat-signed-in.png') });
    await alice.close();
    await bob.close();
  });

  test('a refused token says so, is not retried in a loop, and signing in again works', async () => {
    const bad = await forged('mallory');
    const page = await newPage(countSockets, `${pageUrl()}#token=${bad}`);
    // A handed-over token is sent nowhere until the user signs in to the socket the page names.
    await page.locator('#status[data-state="signed-out"]', { hasText: `Sign in to ws://127.0.0.1:${jwtPort}/` })
      .waitFor({ timeout: 10_000 });
    assert.equal(await page.evaluate(() => window.sockets), 0, 'nothing connected before the click');
    await page.click('#join');
    await page.locator('#status[data-state="signed-out"]', { hasText: 'Sign-in refused: get a new token' })
      .waitFor({ timeout: 10_000 });
    assert.equal(page.url().includes('token='), false, 'the token left the address bar');
    assert.equal((await page.textContent('#status')).includes(bad), false, 'the status does not show the token');
    await page.waitForTimeout(3_000);
    assert.equal(await page.evaluate(() => window.sockets), 1, 'one refused handshake, no reconnect loop');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('chat.token')), null, 'the refused token is dropped');

    await page.click('#join');
    await page.waitForURL(/\/oauth2\/authorize\?/, { timeout: 10_000 });
    await page.fill('#username', 'erin');
    await page.click('#sign-in');
    await waitOnline(page);
    await page.locator('#who', { hasText: 'Signed in as erin' }).waitFor();
    await send(page, 'erin got in');
    await page.locator('#log li.own', { hasText: 'erin got in' }).waitFor({ timeout: 10_000 });
    await page.close();
  });

  test('on a static host that cannot tell the mode, a pasted token signs in', async () => {
    // Served by a plain static host (no chat-config.json, no security headers) and pointed at
    // the jwt stack: the page cannot tell how it signs in, so it offers a token box.
    const host = await staticHost();
    const page = await newPage(countSockets, `${host}/?ws=ws://127.0.0.1:${jwtPort}`);
    await page.locator('#status[data-state="signed-out"]', { hasText: 'Could not connect' }).waitFor({ timeout: 10_000 })
      .catch(async (error) => {
        throw new Error(`${error.message}\nstatus: ${await page.textContent('#status')}`);
      });
    assert.equal(await page.locator('#token-field').isVisible(), true, 'the token box is offered');
    await page.waitForTimeout(1_500);
    assert.equal(await page.evaluate(() => window.sockets), 1, 'refused without a token, and not retried');

    // The issuer answers cross-origin reads from the stack's own page only, not this host.
    const response = await fetch(`http://127.0.0.1:${issuerPort}/token?name=frank`,
      { headers: { origin: new URL(host).origin } });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('access-control-allow-origin'), null);
    const own = `http://127.0.0.1:${jwtPort}`;
    const fromPage = await fetch(`http://127.0.0.1:${issuerPort}/.well-known/openid-configuration`,
      { headers: { origin: own } });
    assert.equal(fromPage.headers.get('access-control-allow-origin'), own);
    const { token, name } = await response.json();
    assert.equal(name, 'frank');
    const socketUrls = [];
    page.on('websocket', (ws) => socketUrls.push(ws.url()));
    await page.fill('#token', token);
    await page.click('#join');
    await waitOnline(page);
    await page.locator('#who', { hasText: 'Signed in as frank' }).waitFor();
    // The token went in Sec-WebSocket-Protocol, and the server answered the chat protocol.
    assert.equal(socketUrls.length, 1);
    assert.equal(socketUrls[0].includes('token'), false, `no token in ${socketUrls[0]}`);
    assert.equal(socketUrls[0].includes(token.slice(0, 20)), false);
    assert.equal(await page.inputValue('#token'), '', 'the pasted token leaves the box');
    const bob = await signedIn('bob');
    await send(page, 'frank pasted a token');
    assert.match(await metaOf(bob, 'frank pasted a token'), /^frank · /);
    await bob.close();
    await page.close();
  });

  test('alice writes to bob from the member list; bob sees it unread, opens it, and answers', async () => {
    const room = freshRoom('dm');
    const alice = await handedOver('alice', room);
    const bob = await handedOver('bob', room);
    await alice.locator('#members li', { hasText: 'bob' }).waitFor(soon);
    assert.equal(await alice.locator('#direct').isVisible(), true, 'signed in: direct messages are offered');

    await alice.getByRole('button', { name: 'Message bob directly' }).click();
    await alice.locator('#dm-view').waitFor(soon);
    assert.equal(await alice.textContent('#dm-title'), 'Direct messages with bob');
    assert.equal(await alice.locator('#log').isHidden(), true, 'the room log makes way');
    await send(alice, 'Psst, bob <b>only you</b>');
    assert.match(await alice.locator('#dm-log li.own', { hasText: 'Psst, bob' }).locator('.meta').textContent(), /^You · \d\d:\d\d/);
    await alice.waitForFunction(() => document.querySelector('#dm-log li.pending') === null, null, soon);

    // bob, in the room: the conversation is listed, unread, with alice's name and her text.
    const listed = bob.locator('#conversations li.unread', { hasText: 'alice' });
    await listed.waitFor(soon);
    assert.match(await listed.textContent(), /Psst, bob <b>only you<\/b>/);
    assert.equal(await bob.textContent('#direct-heading'), 'Direct messages (1 unread)');
    assert.equal(await bob.locator('#log li', { hasText: 'Psst' }).count(), 0, 'not said in the room');
    assert.equal(await bob.locator('#log').isVisible(), true, 'bob stays in the room until he opens it');

    await listed.getByRole('button').click();
    const received = bob.locator('#dm-log li.message', { hasText: 'Psst, bob' });
    await received.waitFor(soon);
    assert.match(await received.locator('.meta').textContent(), /^alice · \d\d:\d\d/);
    assert.equal(await received.locator('.body').textContent(), 'Psst, bob <b>only you</b>', 'as text');
    assert.equal(await bob.locator('#dm-log b').count(), 0);
    await bob.locator('#conversations li.unread').waitFor({ ...soon, state: 'detached' });
    assert.equal(await bob.textContent('#direct-heading'), 'Direct messages');

    await send(bob, 'Hi alice, got it');
    assert.match(await alice.locator('#dm-log li.message', { hasText: 'got it' }).locator('.meta').textContent(), /^bob · /);
    await bob.locator('#dm-log li.own', { hasText: 'got it' }).waitFor(soon);
    assert.deepEqual(await bob.locator('#dm-log li .body').allTextContents(), ['Psst, bob <b>only you</b>', 'Hi alice, got it']);
    // alice has the conversation open: nothing unread, and its last message listed.
    assert.equal(await alice.locator('#conversations li.unread').count(), 0);
    await alice.locator('#conversations li', { hasText: 'got it' }).waitFor(soon);
    mkdirSync(artifacts, { recursive: true });
    await bob.screenshot({ path: join(artifacts, 'chat-direct.png') });

    // Back in the room, the box speaks to the room again.
    await bob.click('#back-to-room');
    await bob.locator('#log').waitFor(soon);
    await send(bob, 'bob in the room again');
    await bob.locator('#log li.own', { hasText: 'bob in the room again' }).waitFor(soon);
    await alice.locator('#log li.message', { hasText: 'bob in the room again' }).waitFor({ ...soon, state: 'attached' });
    assert.equal(await alice.locator('#dm-log li', { hasText: 'bob in the room again' }).count(), 0);
    await alice.close();
    await bob.close();
  });

  test("bob typing in the room shows on alice's page, until his message comes", async () => {
    const room = freshRoom('typing');
    const alice = await handedOver('alice', room);
    const bob = await handedOver('bob', room);
    await alice.locator('#members li', { hasText: 'bob' }).waitFor(soon);
    await bob.fill('#message', 'I am writing some');
    await alice.locator('#typing', { hasText: 'bob is typing…' }).waitFor(soon);
    assert.equal(await bob.textContent('#typing'), '', 'nobody is told of their own typing');
    await bob.press('#message', 'Enter');
    await alice.locator('#log li.message', { hasText: 'I am writing some' }).waitFor(soon);
    await alice.waitForFunction(() => document.querySelector('#typing').textContent === '', null, soon);
    await alice.close();
    await bob.close();
  });

  test('an edit and a delete by alice change the message on bob\'s page', async () => {
    const room = freshRoom('edit');
    const alice = await handedOver('alice', room);
    const bob = await handedOver('bob', room);
    await send(alice, 'first draft');
    const onBob = bob.locator('#log li.message', { hasText: 'first draft' });
    await onBob.waitFor(soon);
    assert.equal(await onBob.getByRole('button').count(), 0, "bob may not change alice's message");

    const own = alice.locator('#log li.own', { hasText: 'first draft' });
    await own.getByRole('button', { name: 'Edit your message “first draft”' }).click();
    const editor = alice.locator('#log li.own .editor');
    await editor.fill('final words');
    await editor.press('Enter');
    const edited = bob.locator('#log li.message', { hasText: 'final words' });
    await edited.waitFor(soon);
    assert.equal(await edited.locator('.meta .edited').textContent(), '(edited)');
    assert.equal(await bob.locator('#log li', { hasText: 'first draft' }).count(), 0, 'the old text is gone');

    const asked = acceptDialogs(alice);
    await alice.locator('#log li.own', { hasText: 'final words' })
      .getByRole('button', { name: 'Delete your message “final words”' }).click();
    await bob.locator('#log li.message .body.deleted', { hasText: 'message deleted' }).waitFor(soon);
    assert.equal(await bob.locator('#log li', { hasText: 'final words' }).count(), 0, 'a tombstone, nothing of the text');
    assert.equal(asked.length, 1, 'alice confirmed the deletion');
    await alice.close();
    await bob.close();
  });

  test("a moderator kicks and bans bob from the member list; bob's page says it was disconnected", async () => {
    const room = freshRoom('kick');
    const mona = await handedOver('mona', room, { groups: 'moderators' });
    const bob = await handedOver('bob', room, { init: countSockets });
    const alice = await handedOver('alice', room);
    await mona.locator('#member-count[data-count="3"]').waitFor(soon);
    await alice.locator('#members li', { hasText: 'bob' }).waitFor(soon);
    assert.equal(await alice.getByRole('button', { name: /^(Kick|Ban) / }).count(), 0, 'not a moderator: no Kick or Ban');
    assert.equal(await mona.getByRole('button', { name: /^(Kick|Ban) mona/ }).count(), 0, 'nor for oneself');

    // A moderator may delete anyone's message (the server says so too), and edit none but their own.
    await send(bob, 'bob says something');
    const bobs = mona.locator('#log li.message', { hasText: 'bob says something' });
    await bobs.getByRole('button', { name: 'Delete bob’s message “bob says something”' }).waitFor(soon);
    assert.equal(await bobs.getByRole('button', { name: /^Edit/ }).count(), 0);
    assert.equal(await alice.locator('#log li.message', { hasText: 'bob says something' }).getByRole('button').count(), 0);

    await mona.getByRole('button', { name: `Kick bob out of ${room}` }).click();
    await mona.locator('#mod-note', { hasText: `bob was removed from ${room} (1 connection closed).` }).waitFor(soon);
    const disconnected = bob.locator('#log li.notice', { hasText: 'Disconnected: the server closed the connection (code 1000)' });
    await disconnected.waitFor(soon);
    // A kick is not a ban: the page connects again by itself, once, after a short wait.
    await waitOnline(bob);
    await alice.locator('#log li.presence', { hasText: 'bob joined' }).waitFor(soon);
    assert.equal(await bob.evaluate(() => window.sockets), 2, 'one reconnect');

    // Ban: for how long is asked (60 minutes proposed), then bob is banned and kicked again.
    await mona.locator('#member-count[data-count="3"]').waitFor(soon);
    const asked = acceptDialogs(mona, '5');
    await mona.getByRole('button', { name: `Ban bob from ${room}` }).click();
    await mona.locator('#mod-note', { hasText: /^bob is banned from \S+ until .+\. bob was removed from \S+ \(1 connection closed\)\.$/ })
      .waitFor(soon);
    assert.match(asked[0]?.message ?? '', /^Ban bob from .+ for how many minutes/);
    assert.equal(asked[0]?.proposed, '60');
    await bob.locator('#log li.notice', { hasText: 'Disconnected' }).nth(1).waitFor(soon);
    // Banned, the server refuses the handshake: the page does not get back in, and backs off.
    await bob.locator('#status[data-state="offline"]', { hasText: 'Could not connect' }).waitFor(soon);
    await bob.waitForTimeout(1_500);
    assert.equal(await bob.locator('#status').getAttribute('data-state'), 'offline');
    assert.ok(await bob.evaluate(() => window.sockets) <= 5, 'no reconnect loop');
    for (const page of [mona, bob, alice]) await page.close();
  });
});

test('the hosted page carries its security headers and may connect to its own API only', async () => {
  const response = await fetch(`http://127.0.0.1:${port}/`);
  const csp = response.headers.get('content-security-policy');
  assert.match(csp, /frame-ancestors 'none'/);
  assert.match(csp, new RegExp(`connect-src 'self' ws://127.0.0.1:${port}`));
  assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
  // Pointed at another API, the browser refuses the socket, and the page says why.
  const other = await freePort();
  const page = await newPage(undefined, `http://127.0.0.1:${port}/?ws=ws://127.0.0.1:${other}`);
  await page.locator('#status', { hasText: 'may only connect to its own chat API' }).waitFor({ timeout: 10_000 });
  await page.close();
});

describe('a stack in AuthMode=cognito, its user pool stood in for by the development issuer', () => {
  let cognitoStack;
  let cognitoPort;
  const pageUrl = () => `http://127.0.0.1:${cognitoPort}/`;

  before(async () => {
    cognitoPort = await freePort();
    cognitoStack = await startStack({
      on: cognitoPort, tableName: `web-cognito-${process.pid}`,
      // Tokens that expire 65 s after they are made: the page renews them 60 s early.
      options: ['--issuer-port', '0', '--issuer-token-seconds', '65'],
      overrides: ['AuthMode=cognito'],
    });
  });

  after(async () => {
    if (cognitoStack) await stopStack(cognitoStack);
  });

  test('two people sign up through the sign-in page, chat under their names, and sign out', async () => {
    const sockets = [];
    // Signed in from a link to a room: back from the issuer, the page is in that room.
    const ada = await signedInAtIssuer('ada', `${pageUrl()}?room=garden`);
    const grace = await signedInAtIssuer('grace', `${pageUrl()}?room=garden`);
    for (const page of [ada, grace]) {
      assert.equal(await page.inputValue('#room'), 'garden');
      assert.equal(new URL(page.url()).searchParams.get('room'), 'garden');
    }
    ada.on('websocket', (ws) => sockets.push(ws.url()));
    await send(ada, 'Hello Grace');
    assert.match(await metaOf(grace, 'Hello Grace'), /^ada · /);
    await send(grace, 'Hello Ada');
    assert.match(await metaOf(ada, 'Hello Ada'), /^grace · /);
    const token = await ada.evaluate(() => sessionStorage.getItem('chat.token'));
    assert.equal(sockets.every((url) => !url.includes(token.slice(0, 20))), true, 'no token in a URL');
    assert.equal(await ada.evaluate((t) => Object.values(localStorage).some((v) => v.includes(t)), token), false,
      'tokens are in sessionStorage only');

    // Sign out: here and at the issuer, which sends the browser back to the page, signed out.
    await grace.click('#signout');
    await grace.waitForURL((url) => url.toString().startsWith(pageUrl()), { timeout: 10_000 });
    await grace.locator('#status[data-state="signed-out"]', { hasText: 'Sign in' }).waitFor({ timeout: 10_000 });
    assert.equal(await grace.evaluate(() => sessionStorage.getItem('chat.token')), null);
    assert.equal(await grace.evaluate(() => sessionStorage.getItem('chat.refresh')), null);
    // Without signing in again, no connection is let in.
    const refused = await grace.evaluate(async (url) => new Promise((resolve) => {
      const ws = new WebSocket(url);
      ws.onopen = () => resolve('open');
      ws.onclose = () => resolve('closed');
    }), `ws://127.0.0.1:${cognitoPort}/Test`);
    assert.equal(refused, 'closed');
    await ada.close();
    await grace.close();
  });

  test('a token that expires during the session is renewed without losing the conversation', async () => {
    const lin = await signedInAtIssuer('lin', pageUrl());
    const max = await signedInAtIssuer('max', pageUrl());
    await send(lin, 'before the renewal');
    await metaOf(max, 'before the renewal');
    const first = await lin.evaluate(() => sessionStorage.getItem('chat.token'));
    // 65 s tokens are renewed 60 s before they expire: about 5 s after sign-in.
    await lin.waitForFunction((old) => sessionStorage.getItem('chat.token') !== old, first, { timeout: 20_000 });
    await waitOnline(lin);
    await send(lin, 'after the renewal');
    assert.match(await metaOf(max, 'after the renewal'), /^lin · /);
    await lin.locator('#log li', { hasText: 'before the renewal' }).waitFor();
    assert.equal(await lin.locator('#log li', { hasText: 'before the renewal' }).count(), 1, 'shown once');
    await lin.close();
    await max.close();
  });

  test('a sign-in that comes back with an error, or for another tab, says so', async () => {
    const page = await newPage(undefined, `${pageUrl()}?error=access_denied&error_description=nope&state=forged`);
    await page.locator('#status[data-state="signed-out"]', { hasText: 'Sign-in failed' }).waitFor({ timeout: 10_000 });
    assert.equal(new URL(page.url()).searchParams.has('error'), false, 'the answer left the address bar');
    await page.close();
  });
});

describe('AuthMode=jwt against an issuer the test serves itself', () => {
  let issuer;
  let ownStack;
  let ownPort;

  before(async () => {
    ownPort = await freePort();
    issuer = await startIssuer({ clientId: 'web-client', redirectUris: [`http://127.0.0.1:${ownPort}/`] });
    ownStack = await startStack({
      on: ownPort, tableName: `web-own-issuer-${process.pid}`,
      overrides: ['AuthMode=jwt', `JwtIssuer=${issuer.url}`, 'JwtAudience=web-client'],
    });
  });

  after(async () => {
    if (ownStack) await stopStack(ownStack);
    await issuer?.close();
  });

  test('the page signs in with the code flow and PKCE, reads the issuer from discovery, and chats', async () => {
    const page = await newPage(undefined, `http://127.0.0.1:${ownPort}/`);
    await page.locator('#status[data-state="signed-out"]', { hasText: 'Sign in' }).waitFor({ timeout: 10_000 });
    await page.click('#join');
    // The issuer signs Tess in at once and sends the browser back with a code.
    await waitOnline(page);
    await page.locator('#who', { hasText: 'Signed in as Tess' }).waitFor();
    assert.equal(issuer.trades, 1, 'one code traded, its PKCE verifier checked');
    await send(page, 'signed in elsewhere');
    await page.locator('#log li.own', { hasText: 'signed in elsewhere' }).waitFor({ timeout: 10_000 });
    // Signing out goes through the issuer's end_session_endpoint and back to the page.
    await page.click('#signout');
    await page.locator('#status[data-state="signed-out"]', { hasText: 'Sign in' }).waitFor({ timeout: 10_000 });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('chat.token')), null);
    await page.close();
  });
});
