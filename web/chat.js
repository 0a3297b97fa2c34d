// The chat client's logic, free of the DOM so it can be tested on its own: where to
// connect, how big a message may be (one 32 KB frame), how long to wait before
// reconnecting, and what a server frame means.

/**
 * API Gateway's limit on one WebSocket frame: a bigger frame closes the connection with 1009.
 * Browsers send each message as one frame, so this caps a message; the 128 KB message quota
 * and the broadcast's few hundred bytes of "type", "from" and "sentAt" stay well under it.
 */
export const MAX_FRAME_BYTES = 32 * 1024;

/** From this many bytes on the composer shows how much of the frame a message uses. */
export const HINT_FROM_BYTES = 24 * 1024;

const encoder = new TextEncoder();

/** The request that sends `text` to everyone. */
export function chatRequest(text) {
  return JSON.stringify({ action: 'onMessage', message: text });
}

/** The bytes on the wire for `text`: its request as UTF-8, JSON escapes included. */
export function frameBytes(text) {
  return encoder.encode(chatRequest(text)).length;
}

/** `bytes` in KB with one decimal, rounded up so that anything over the limit never reads as 32.0. */
export function kb(bytes) {
  return (Math.ceil((bytes * 10) / 1024) / 10).toFixed(1);
}

/** Why `text` cannot be sent, or null when it can. */
export function refusal(text) {
  if (text.trim() === '') return 'Write something first.';
  const bytes = frameBytes(text);
  if (bytes > MAX_FRAME_BYTES) {
    return `This message is ${kb(bytes)} KB; API Gateway takes at most ${MAX_FRAME_BYTES / 1024} KB in one frame. Shorten it.`;
  }
  return null;
}

/** The composer's size indicator for `text`: null while it is small, else {text, over}. */
export function sizeHint(text) {
  const bytes = frameBytes(text);
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
 * What a server frame means: {kind: 'message', from, text, sentAt}, {kind: 'error', code, text},
 * or {kind: 'notice', text} for API Gateway's own frames and anything unexpected.
 */
export function interpret(data) {
  let frame;
  try {
    frame = JSON.parse(data);
  } catch {
    return { kind: 'notice', text: String(data) };
  }
  if (frame && frame.type === 'message' && typeof frame.message === 'string') {
    return { kind: 'message', from: String(frame.from ?? ''), text: frame.message, sentAt: frame.sentAt };
  }
  if (frame && frame.type === 'error') {
    return { kind: 'error', code: String(frame.code ?? 'error'), text: String(frame.message ?? '') };
  }
  if (frame && typeof frame.message === 'string') {
    return { kind: 'error', code: 'gateway', text: `The API answered: ${frame.message}` };
  }
  return { kind: 'notice', text: String(data) };
}

/** Local time of an RFC 3339 timestamp, as HH:MM. */
export function clock(sentAt) {
  const date = new Date(sentAt);
  if (Number.isNaN(date.getTime())) return '';
  return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}
