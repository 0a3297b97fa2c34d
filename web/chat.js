// The chat client's logic, free of the DOM so it can be tested on its own: where to
// connect, how big a message may be, how long to wait before reconnecting, and what a
// server frame means.

/** API Gateway's limit on one WebSocket message. */
export const MAX_MESSAGE_BYTES = 128 * 1024;

/** Room the server needs around the text for "type", "from" and "sentAt" in the broadcast. */
export const FRAME_OVERHEAD_BYTES = 256;

const encoder = new TextEncoder();

/** The request that sends `text` to everyone. */
export function chatRequest(text) {
  return JSON.stringify({ action: 'onMessage', message: text });
}

/** Why `text` cannot be sent, or null when it can. */
export function refusal(text) {
  if (text.trim() === '') return 'Write something first.';
  const bytes = encoder.encode(chatRequest(text)).length;
  const limit = MAX_MESSAGE_BYTES - FRAME_OVERHEAD_BYTES;
  if (bytes > limit) {
    const kb = (n) => (n / 1024).toFixed(1);
    return `Too long to send: ${kb(bytes)} KB, and a chat message may be at most ${kb(limit)} KB. Split it into smaller parts.`;
  }
  return null;
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
