// The chat page: connects, shows the conversation, sends on Enter, reconnects after drops.
// Every text from the network is rendered with textContent, never as HTML. A message is
// only taken out of the box once it went out on an open socket, and put back if the server
// closes with 1009 (too big) before it came back.

import { backoff, chatRequest, clock, defaultUrl, frameBytes, interpret, refusal, shortId, sizeHint } from './chat.js';

const $ = (selector) => document.querySelector(selector);
const status = $('#status');
const log = $('#log');
const form = $('#composer');
const input = $('#message');
const note = $('#note');
const size = $('#size');
const urlForm = $('#server');
const urlInput = $('#url');

let socket = null;
let attempt = 0;
let retryTimer = null;
let ownId = null;
/** Messages sent and not yet seen coming back: {text, ws}. */
const pending = [];

function setStatus(state, text) {
  status.dataset.state = state;
  status.textContent = text;
}

function showNote(text) {
  note.textContent = text ?? '';
  note.hidden = !text;
}

function showSize() {
  const hint = sizeHint(input.value);
  size.textContent = hint?.text ?? '';
  size.hidden = !hint;
  if (hint?.over) size.dataset.over = '';
  else delete size.dataset.over;
}

function append(kind, parts) {
  const item = document.createElement('li');
  item.className = kind;
  if (parts.meta) {
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.textContent = parts.meta;
    item.append(meta);
  }
  const body = document.createElement('div');
  body.className = 'body';
  body.textContent = parts.text;
  item.append(body);
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(item);
  if (atBottom || kind === 'own') item.scrollIntoView({ block: 'end' });
}

function receive(data) {
  const frame = interpret(data);
  if (frame.kind === 'message') {
    const index = pending.findIndex((sent) => sent.text === frame.text);
    if (ownId === null && index !== -1) ownId = frame.from;
    const own = frame.from === ownId;
    if (own && index !== -1) pending.splice(index, 1);
    const who = own ? 'You' : `User ${shortId(frame.from)}`;
    append(own ? 'own' : 'message', { meta: `${who} · ${clock(frame.sentAt)}`, text: frame.text });
  } else if (frame.kind === 'error') {
    append('error', { meta: `Error · ${frame.code}`, text: frame.text });
  } else {
    append('notice', { text: frame.text });
  }
}

function connect() {
  clearTimeout(retryTimer);
  const url = urlInput.value.trim();
  if (!url) {
    setStatus('offline', 'Not connected: enter the WebSocket URL of your chat API.');
    return;
  }
  setStatus('connecting', attempt ? `Reconnecting to ${url} (attempt ${attempt})…` : `Connecting to ${url}…`);
  let ws;
  try {
    ws = new WebSocket(url);
  } catch (error) {
    setStatus('offline', `Cannot connect: ${error.message}`);
    return;
  }
  socket = ws;
  ws.addEventListener('open', () => {
    if (socket !== ws) return;
    attempt = 0;
    ownId = null;
    setStatus('online', `Connected to ${url}`);
  });
  ws.addEventListener('message', (event) => {
    if (socket === ws) receive(typeof event.data === 'string' ? event.data : '[binary frame]');
  });
  ws.addEventListener('close', (event) => {
    if (socket !== ws) return;
    socket = null;
    // What went out on this socket and never came back will not come back now.
    const unanswered = pending.filter((sent) => sent.ws === ws).map((sent) => sent.text);
    pending.splice(0, pending.length, ...pending.filter((sent) => sent.ws !== ws));
    if (event.code === 1009) restoreTooBig(unanswered);
    attempt += 1;
    const delay = backoff(attempt);
    const why = event.code === 1009 ? 'the message was too big' : `code ${event.code}`;
    setStatus('offline', `Connection lost (${why}). Reconnecting in ${(delay / 1000).toFixed(1)} s…`);
    retryTimer = setTimeout(connect, delay);
  });
}

/** After close 1009: says so, and puts the biggest of the `unanswered` messages back in the box. */
function restoreTooBig(unanswered) {
  let lost = null;
  for (const sent of unanswered) {
    if (lost === null || frameBytes(sent) > frameBytes(lost)) lost = sent;
  }
  const text = 'The server closed the connection because a message was too large (close 1009).';
  append('notice', { text });
  if (lost === null) {
    showNote(text);
    return;
  }
  const typed = input.value;
  if (typed !== lost) input.value = typed.trim() === '' ? lost : `${lost}\n\n${typed}`;
  showNote(`${text} It was not delivered and is back in the box; shorten it and send it again.`);
  showSize();
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = input.value;
  const problem = refusal(text);
  if (problem) {
    showNote(problem);
    return;
  }
  if (!socket || socket.readyState !== WebSocket.OPEN) {
    showNote('Not connected yet; your message is still here, send it again once connected.');
    return;
  }
  showNote(null);
  socket.send(chatRequest(text));
  pending.push({ text, ws: socket });
  input.value = '';
  showSize();
  input.focus();
});

input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

input.addEventListener('input', () => {
  showSize();
  if (!note.hidden) showNote(refusal(input.value) === null ? null : note.textContent);
});

urlForm.addEventListener('submit', (event) => {
  event.preventDefault();
  attempt = 0;
  pending.length = 0;
  if (socket) {
    const old = socket;
    socket = null;
    old.close();
  }
  connect();
});

urlInput.value = defaultUrl(window.location);
connect();
