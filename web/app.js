// The chat page: signs in, connects, shows the conversation, sends on Enter, reconnects after drops.
// Every text from the network is rendered with textContent, never as HTML.
//
// What the user sends goes into an outbox with a clientId of its own and shows as pending
// ("sending…") until the server's frame for it comes back; it is sent one at a time, in order,
// whenever the socket is open, and sent again with the same clientId after a reconnect (the
// server keeps a clientId once, and answers a repeat with the original frame). rate_limited
// sends it again when the server says; a refusal (too large, invalid) marks it failed. A
// message the server closes with 1009 (too big) on is put back in the box instead.
//
// Each room's messages are shown in the room's order, by their `seq`, each once, wherever the
// frame falls in time; the page remembers up to where it has every message (lastSeq), and after
// a reconnect (or on coming back to a room) asks history for what came after it, page by page,
// before it sends what is pending. A frame that leaves a hole is waited on briefly (frames may
// simply arrive out of order), then history fills it; what expired meanwhile is said to be gone.
//
// Who you are depends on the server's sign-in mode, read from /chat-config.json next to the
// page (the local stack serves it): 'open' connects with `?name=` (none: the server names a
// guest), 'jwt' gets a token for your name from the stack's token endpoint and connects with
// `?token=`. Elsewhere (a static host in front of AWS) the mode is unknown: the page connects
// with a token handed over as `#token=…` or pasted, else by name. A token is kept in memory and
// sessionStorage only, and never shown or logged; the name is remembered in localStorage.
//
// A token is kept with the socket (scheme://host/path) it was got for or first used with, and
// sent by itself only to that socket: a link's `?ws=` may name any server, and must not make the
// page hand it the tab's token. For any other socket the page waits for Sign in / Join, which
// binds the token to it. A handed-over token is bound by that first click too.
//
// The page is in one room at a time, the one its URL's `?room=` names (lobby without one). It
// connects with `?room=`, moves with a `join` action (no reconnect), and on every connect and
// every move asks who is there and what was said: history goes in seq order around what arrives
// meanwhile, each message once (by id and seq), and nothing of another room is shown. Rooms
// left keep their messages in the page, for when it comes back.
//
// The user's own messages (ownMessage in chat.js: by user id signed in, by connection in open
// mode) have Edit and Delete buttons; the server's `edited` and `deleted` frames change the
// message in the timeline, wherever it is. Typing in the box tells the room (at most every 2 s),
// and a line under the messages says who else is typing in it.
//
// Signed in, the page also has direct messages: each other signed-in member has a Message button,
// and the Direct messages list holds the conversations seen this session (name, last message,
// unread marked). Opening one shows its own log instead of the room's; the box then sends `dm`
// to that user (no typing notices), through an outbox of its own, acknowledged by clientId as in
// rooms; each conversation is a timeline like a room's, caught up by seq from `history` with
// `with`. A page whose token lists the moderators' group offers Kick and Ban next to members and
// Delete on everyone's messages: the server decides, the page only shows the buttons. A socket
// the server closes (a kick) is said in the log and reconnected with a growing backoff when it
// keeps being closed soon after opening.

import {
  addConversation, afterClose, applyChange, applyGap, attemptAfterClose, backoff, banMinutes, banRequest,
  catchUpRequest, changeOf, chatRequest, cleanName, closedText, clock, configFor, connectProtocols, connectUrl,
  conversationChanged, conversationKey, conversationLabel, conversationPreview, defaultUrl, deleteRequest, dmRequest,
  dmSeen, editedTitle, editRequest, fillHole, fragmentToken, frameBytes, gapText, hasHole, historyRequest, initialRoom,
  interpret, isModerator, joinRequest, jwtClaims, kickRequest, mayChange, mayDelete, memberActions, memberEntries,
  mergeHistory, messageKey, moderatedText, newConversationTimeline, newRoster, newTimeline, newTyping, nextHistoryPage,
  nextToSend, outboxFromJson, outboxJson, outgoing, ownDm, ownMessage, pageWithRoom, parseConfig, parseTokenAnswer,
  pendingLabel, placeIndex, placeMessage, presenceText, rateLimitText, readConversation, refusal, roomRefusal,
  rosterSummary, sendRefused, senderLabel, shortId, sizeHint, socketKey, startTimeline, tokenExpired, tokenMayGoTo,
  tokenName, tokenRequestUrl, typingDone, typingDue, typingRequest, typingSeen, typingText, typingWakeIn, unreadCount,
  updateRoster, whoRequest, CATCH_UP_LIMIT, DEFAULT_BAN_MINUTES, DELETED_TEXT, MAX_BAN_MINUTES,
} from './chat.js';
import {
  authorizeUrl, callbackOf, challengeOf, codeRequest, discoveryUrl, endpoints, logoutUrl, randomString,
  refreshRequest, renewIn, tokensOf, withoutCallback,
} from './oidc.js';

const $ = (selector) => document.querySelector(selector);
const status = $('#status');
const log = $('#log');
const form = $('#composer');
const input = $('#message');
const note = $('#note');
const size = $('#size');
const urlForm = $('#server');
const urlInput = $('#url');
const signinForm = $('#signin');
const nameInput = $('#name');
const tokenField = $('#token-field');
const tokenInput = $('#token');
const joinButton = $('#join');
const signOutButton = $('#signout');
const who = $('#who');
const roomForm = $('#room-form');
const roomInput = $('#room');
const roomNote = $('#room-note');
const memberCount = $('#member-count');
const memberList = $('#members');
const typingLine = $('#typing');
const modNote = $('#mod-note');
const direct = $('#direct');
const directHeading = $('#direct-heading');
const conversationList = $('#conversations');
const dmView = $('#dm-view');
const dmTitle = $('#dm-title');
const dmLog = $('#dm-log');
const backToRoom = $('#back-to-room');
const roomPlaceholder = input.placeholder;

const NAME_KEY = 'chat.name';
const TOKEN_KEY = 'chat.token';
const TOKEN_NAME_KEY = 'chat.tokenName';
const TOKEN_FOR_KEY = 'chat.tokenFor';
/** The refresh token of an issuer sign-in (sessionStorage: this tab only). */
const REFRESH_KEY = 'chat.refresh';
/** A sign-in under way at the issuer: {verifier, state, nonce, redirectUri, returnTo}, this tab only. */
const PENDING_SIGNIN_KEY = 'chat.signin';
/** The messages still to deliver (outboxJson), this tab only: they survive a reload too. */
const OUTBOX_KEY = 'chat.outbox';

let socket = null;
let attempt = 0;
let retryTimer = null;
let ownId = null;
/** Signed in: the page's user id (the `user` of its own `members` entry), null until known or in open mode. */
let ownUser = null;
/** How the page's own server signs users in; configFor() narrows it to the URL in use. */
let config = parseConfig(null);
/** The sign-in token (JWT) and the name its issuer gave, or null. */
let token = null;
let tokenLabel = null;
/** The socket (socketKey) the token may be sent to without asking, or null until a click binds it. */
let tokenFor = null;
/** The timer that renews an issuer sign-in's tokens before the ID token expires. */
let renewTimer = null;
/** Bumped whenever a connection is dropped on purpose, so that a slower sign-in gives up. */
let generation = 0;
/** What #who says before the server's own name for us is known: 'You are' or 'Signed in as'. */
let whoPrefix = 'You are';
/**
 * Messages written and not yet seen coming back, oldest first (see outgoing() in chat.js), each
 * with `ws`, the socket it last went out on; kept across reconnects (and in sessionStorage).
 */
const outbox = [];
/** The clientId of every message this page wrote: their frames (in history too) are its own. */
const ownClientIds = new Set();
/** Every connection id this page has had: their messages (in history too) are its own. */
const ownIds = new Set();
/** The room the page is in; the URL, the room box, the log and the member list are about it. */
let currentRoom = null;
/** Who is in it (see updateRoster). */
let roster = newRoster(null);
/** Each room's messages as the page has them (see newTimeline), kept when the page leaves the room. */
const timelines = new Map();
/** The server (socketKey) the timelines are of. */
let timelinesFor = null;
/** The current room's timeline. */
let timeline = newTimeline(null);
/** The log item of each message shown, by messageKey (this room's). */
const items = new Map();
/** The log item of each pending message shown, by clientId (this room's). */
const pendingItems = new Map();
/** History requests sent for this room on this connection and not answered yet. */
let historyOpen = 0;
/** Whether the room's catch-up (history since lastSeq) is done on this connection: pending messages wait for it. */
let caughtUp = false;
/** Gives up waiting for the catch-up (a server that does not answer it). */
let catchUpTimer = null;
/** How long to wait for the catch-up before sending what is pending anyway. */
const CATCH_UP_WAIT_MS = 5_000;
/** Waits for a hole's frames to arrive out of order before history is asked to fill it. */
let holeTimer = null;
/** How long a hole may stay before history is asked. */
const HOLE_WAIT_MS = 1_000;
/** The next send from the outbox, once a wait (rate limit, backoff) is over. */
let flushTimer = null;
/** How long a sent message may go unanswered before it is sent again (same clientId: kept once). */
const ANSWER_WAIT_MS = 10_000;
/** The room a `join` left, until the server moves us (our own `joined`) or refuses the name. */
let joinFrom = null;
/** While waiting for our own `joined` to ask the new room: the timer that asks anyway. */
let joinTimer = null;
/** How long to wait for our own `joined` before asking the new room anyway. */
const JOIN_WAIT_MS = 3_000;
/** Until when (ms) the server said it takes no messages from us (rate_limited). */
let quietUntil = 0;
/** Who else is typing in the room (see newTyping), and the timer that takes them off the line. */
let typing = newTyping(null);
let typingTimer = null;
/** When (ms) the page last told the room the user is typing, or null. */
let typingSentAt = null;
/** When (ms) the current socket opened: one closed soon after does not start the backoff over. */
let openedAt = 0;
/** Whether the open connection was let in with a token: direct messages are for signed-in users only. */
let signedIn = false;
/**
 * Whether the page's token lists the moderators' group (isModerator): it then shows Kick, Ban and
 * Delete on others' messages. The server decides who may do what; this only shows buttons.
 */
let moderator = false;
/** The user the direct conversations below are of: another user signing in starts them afresh. */
let directUser = null;
/** The direct conversations seen this session (see addConversation in chat.js). */
let conversations = [];
/** Each conversation's messages (see newConversationTimeline), by the other user's id. */
const dmTimelines = new Map();
/** The user whose conversation is shown instead of the room, or null for the room. */
let openWith = null;
/** The conversations asked for history on this connection (by user id). */
const dmAsked = new Set();
/** The log item of each message of the open conversation, by messageKey, and of each pending one, by clientId. */
const dmItems = new Map();
const dmPendingItems = new Map();
/**
 * Direct messages written and not seen coming back, oldest first: outgoing() entries whose room
 * is the conversationKey, with `to` (the user) and `ws` (the socket they last went out on).
 */
const dmOutbox = [];
/** The next send from the direct outbox, once a wait is over. */
let dmFlushTimer = null;
/**
 * Who a moderator's buttons were pressed on, by user id: {label} their name for the answer,
 * {kick} whether to kick once banned, {before} the ban's note the kick's follows.
 */
const moderating = new Map();

function setStatus(state, text) {
  status.dataset.state = state;
  status.textContent = text;
}

function showNote(text) {
  note.textContent = text ?? '';
  note.hidden = !text;
}

function showWho(text) {
  who.textContent = text ?? '';
  who.hidden = !text;
}

function showRoomNote(text) {
  roomNote.textContent = text ?? '';
  roomNote.hidden = !text;
}

function showSize() {
  const hint = sizeHint(input.value, openWith);
  size.textContent = hint?.text ?? '';
  size.hidden = !hint;
  if (hint?.over) size.dataset.over = '';
  else delete size.dataset.over;
}

/** Storage may be unavailable (privacy settings, sandboxed frames); the page works without it. */
function stored(storage, key) {
  try {
    return storage.getItem(key);
  } catch {
    return null;
  }
}

function store(storage, key, value) {
  try {
    if (value) storage.setItem(key, value);
    else storage.removeItem(key);
  } catch {
    // Not remembered, still used.
  }
}

function storedName() {
  return (stored(localStorage, NAME_KEY) ?? '').trim();
}

/** Keeps token `value`, bound to WebSocket URL `target` (null: to none yet, a click binds it). */
function keepToken(value, name, target) {
  token = value;
  tokenLabel = name || tokenName(value);
  store(sessionStorage, TOKEN_KEY, value);
  store(sessionStorage, TOKEN_NAME_KEY, tokenLabel);
  bindToken(target);
}

/** From now on the token goes by itself to `target`'s socket, and to no other. */
function bindToken(target) {
  tokenFor = target === null ? null : socketKey(target);
  store(sessionStorage, TOKEN_FOR_KEY, tokenFor);
}

function forgetToken() {
  clearTimeout(renewTimer);
  store(sessionStorage, REFRESH_KEY, null);
  token = null;
  tokenLabel = null;
  store(sessionStorage, TOKEN_KEY, null);
  store(sessionStorage, TOKEN_NAME_KEY, null);
  bindToken(null);
}

/** The sign-in mode for the URL under Server. */
function currentMode() {
  return configFor(config, urlInput.value.trim(), window.location);
}

/** Fits the sign-in form to `mode`: a token box unless names are open or the stack issues tokens. */
function showSignIn(mode) {
  tokenField.hidden = mode.authMode === 'open' || (mode.authMode === 'jwt' && (mode.tokenUrl !== null || mode.issuer !== null));
  // Signing in at an issuer, the issuer asks who you are.
  nameInput.hidden = mode.issuer != null;
  nameInput.labels.forEach((label) => { label.hidden = mode.issuer != null; });
  joinButton.textContent = joinLabel(mode);
  signOutButton.hidden = mode.authMode === 'open' || token === null;
}

function joinLabel(mode) {
  return mode.authMode === 'jwt' ? 'Sign in' : 'Join';
}

/** Stops connecting and asks the user to sign in, saying why. */
function signedOut(text) {
  clearTimeout(retryTimer);
  setStatus('signed-out', text);
  showWho(null);
  showSignIn(currentMode());
}

function logItem(kind, parts) {
  const item = document.createElement('li');
  item.className = kind;
  if (parts.meta) {
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.textContent = parts.meta;
    if (parts.title) meta.title = parts.title;
    item.append(meta);
  }
  const body = document.createElement('div');
  body.className = 'body';
  body.textContent = parts.text;
  item.append(body);
  return item;
}

function atBottom() {
  return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
}

/** The first of the pending (or failed) messages at the bottom of the log, or null. */
function firstOutgoing() {
  return log.querySelector(':scope > li.outgoing');
}

/** Adds `item` at the end of the log, above the pending messages (they stay at the bottom). */
function appendItem(item) {
  const below = firstOutgoing();
  if (below) below.before(item);
  else log.append(item);
}

function append(kind, parts) {
  const item = logItem(kind, parts);
  const follow = atBottom();
  appendItem(item);
  if (follow || kind === 'own') item.scrollIntoView({ block: 'end' });
  return item;
}

/** Who the page is, for ownMessage(): its current connection id and, signed in, its user id. */
function self() {
  return { you: ownId, user: ownUser };
}

/**
 * Whether `message` is one this page sent (from one of its connections, or with one of its
 * clientIds), or, signed in, one its user sent from elsewhere.
 */
function isOwn(message) {
  return ownIds.has(message.from) || (message.clientId !== null && ownClientIds.has(message.clientId))
    || ownMessage(message, self());
}

function messageItem(message) {
  const item = logItem('message', { meta: senderLabel(message), text: message.text });
  fillMessage(item, message);
  return item;
}

/**
 * Shows `message` in its log `item`: who and when (and "(edited)"), its text or a tombstone, and
 * Edit and Delete for the user's own (Delete on any for a moderator). An edit under way stays,
 * unless the message may no longer be edited; focus in what goes away moves to the log.
 */
function fillMessage(item, message) {
  const body = showSaid(item, message, isOwn(message));
  const focused = item.contains(document.activeElement) ? document.activeElement : null;
  const actions = item.querySelector('.actions');
  const editor = item.querySelector('.editor');
  const edit = mayChange(message, self());
  const buttons = [edit && 'edit', mayDelete(message, self(), moderator) && 'delete'].filter(Boolean).join(' ');
  if (editor && !edit) {
    editor.remove();
    body.hidden = false;
  }
  if (!buttons) {
    actions?.remove();
  } else if (actions?.dataset.buttons === buttons) {
    labelActions(actions, message);
  } else if (!(editor && edit)) {
    const fresh = messageActions(message, buttons);
    if (actions) actions.replaceWith(fresh);
    else item.append(fresh);
  }
  if (focused && !item.contains(focused)) log.focus({ preventScroll: true });
}

/**
 * Shows in `item` who said `message` ("You" when `own`) and when, "(edited)", and its text or a
 * tombstone; its body element.
 */
function showSaid(item, message, own) {
  item.className = own ? 'own' : 'message';
  const meta = item.querySelector('.meta');
  meta.textContent = `${own ? 'You' : senderLabel(message)} · ${clock(message.sentAt)}`;
  meta.title = `Connection ${message.from}`;
  if (message.editedAt && !message.deleted) {
    const mark = document.createElement('span');
    mark.className = 'edited';
    mark.textContent = '(edited)';
    mark.title = editedTitle(message.editedAt);
    meta.append(' ', mark);
  }
  const body = item.querySelector('.body');
  body.textContent = message.deleted ? DELETED_TEXT : message.text;
  body.classList.toggle('deleted', message.deleted === true);
  return body;
}

/** A button of a message's own: a real <button>, so keyboards reach it. */
function actionButton(text, onClick) {
  const button = document.createElement('button');
  button.type = 'button';
  button.textContent = text;
  button.addEventListener('click', onClick);
  return button;
}

/** The buttons `buttons` ('edit', 'delete', space-separated) for `message`. */
function messageActions(message, buttons) {
  const actions = document.createElement('div');
  actions.className = 'actions';
  actions.dataset.buttons = buttons;
  const wanted = buttons.split(' ');
  if (wanted.includes('edit')) actions.append(actionButton('Edit', () => startEdit(message.id)));
  if (wanted.includes('delete')) actions.append(actionButton('Delete', () => deleteMessage(message.id)));
  labelActions(actions, message);
  return actions;
}

/** Names the message's buttons for assistive technology by whose it is and the start of its (current) text. */
function labelActions(actions, message) {
  const whose = isOwn(message) ? 'your message' : `${senderLabel(message)}’s message`;
  const about = `${whose} “${cleanName(message.text, 40)}”`;
  for (const button of actions.querySelectorAll('button')) button.setAttribute('aria-label', `${button.textContent} ${about}`);
}

/** The current room's message with `id` as the timeline has it now, and its log item; null when it has none. */
function shownMessage(id) {
  const key = messageKey({ id });
  const entry = timeline.placed.find((placed) => placed.key === key);
  const item = items.get(key);
  return entry && item ? { message: entry.message, item } : null;
}

/** Turns the text of the user's message `id` into a box holding it: Enter saves, Escape cancels. */
function startEdit(id) {
  const shown = shownMessage(id);
  if (!shown || shown.item.querySelector('.editor')) return;
  const { message, item } = shown;
  const editor = document.createElement('textarea');
  editor.className = 'editor';
  editor.value = message.text;
  editor.rows = Math.min(6, message.text.split('\n').length);
  editor.setAttribute('aria-label', 'Edit your message: Enter saves, Shift+Enter adds a line, Escape cancels');
  editor.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') {
      event.preventDefault();
      stopEdit(id);
    } else if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      saveEdit(id, editor.value);
    }
  });
  item.querySelector('.actions')?.remove();
  const body = item.querySelector('.body');
  body.hidden = true;
  body.after(editor);
  editor.focus();
}

/** Ends the edit of message `id`: its text (as the timeline has it now) and buttons are back, focus on Edit. */
function stopEdit(id) {
  const shown = shownMessage(id);
  if (!shown) return;
  shown.item.querySelector('.editor')?.remove();
  shown.item.querySelector('.body').hidden = false;
  fillMessage(shown.item, shown.message);
  (shown.item.querySelector('.actions button') ?? log).focus({ preventScroll: true });
}

/** Whether the socket is open; says so when it is not and `what` could not be sent. */
function online(what) {
  if (socket && socket.readyState === WebSocket.OPEN) return true;
  showNote(`Not connected: ${what} was not sent. Try again once the page is back online.`);
  return false;
}

/** Sends the edit of message `id` to `text`; the server's `edited` frame changes it in the log. */
function saveEdit(id, text) {
  const shown = shownMessage(id);
  if (!shown || text === shown.message.text) {
    stopEdit(id);
    return;
  }
  const problem = refusal(text);
  if (problem) {
    showNote(problem);
    return;
  }
  if (!online('the edit')) return;
  socket.send(editRequest(id, text));
  stopEdit(id);
}

/** Deletes the user's message `id`, once they confirm; the server's `deleted` frame changes it in the log. */
function deleteMessage(id) {
  if (!shownMessage(id) || !window.confirm('Delete this message? Everyone in the room will see it was deleted.')) return;
  if (online('the deletion')) socket.send(deleteRequest(id));
}

/** Shows each message of the room again: who the page is changed, and with it which messages are its own. */
function refreshMessages() {
  for (const { key, message } of timeline.placed) {
    const item = items.get(key);
    if (item) fillMessage(item, message);
  }
}

/**
 * An `edited` or `deleted` frame (or a changed message in a `history` answer): the message with
 * its id changes in its room's timeline, and in the log when it is this room's.
 */
function receiveChange(change) {
  const room = change.room ?? currentRoom;
  const target = room === currentRoom ? timeline : timelines.get(room);
  const changed = target ? applyChange(target, change) : null;
  const item = changed && target === timeline ? items.get(changed.key) : null;
  if (item) fillMessage(item, changed.message);
}

/** Shows the line of who is typing as `state` says, and takes each one off once their time is up. */
function showTyping(state) {
  typing = state;
  const now = Date.now();
  const text = typingText(typing, now);
  if (typingLine.textContent !== text) typingLine.textContent = text;
  clearTimeout(typingTimer);
  const wait = typingWakeIn(typing, now);
  typingTimer = wait === null ? null : setTimeout(() => showTyping(typing), wait);
}

/** The user typed in the box: the room is told, at most every TYPING_EVERY_MS (not what is typed to one person). */
function sendTyping() {
  const now = Date.now();
  if (openWith !== null || !typingDue(input.value, typingSentAt, now)) return;
  if (!socket || socket.readyState !== WebSocket.OPEN || joinFrom !== null) return;
  socket.send(typingRequest());
  typingSentAt = now;
}

/** The server's name for us (a guest's, or the name as it cleaned it) is the one to show. */
function showOwnName(name) {
  if (cleanName(name ?? '')) showWho(`${whoPrefix} ${cleanName(name)}`);
}

function learnOwnId(id) {
  const changed = id !== ownId;
  ownId = id;
  ownIds.add(id);
  if (changed) refreshMessages();
}

/** Signed in: the page's user id is known; its messages from anywhere are its own. */
function learnOwnUser(user) {
  if (user === ownUser) return;
  ownUser = user;
  // The conversations the page has are another user's: not this one's to see.
  if (directUser !== null && user !== directUser) resetDirect();
  directUser = user;
  refreshMessages();
  showMembers();
}

/** Puts `item` before the log item of the `index`-th placed message of the timeline, or at the end. */
function insertAt(index, item) {
  const next = timeline.placed[index];
  const before = next ? items.get(next.key) : null;
  if (before) before.before(item);
  else appendItem(item);
}

/**
 * A chat frame, live or from history: the pending message it answers (by clientId) is done, and
 * a message of this room not shown yet goes in its place by seq. Its log item, or null.
 */
function showMessage(message, live) {
  if (message.clientId !== null && ownClientIds.has(message.clientId)) {
    ownIds.add(message.from);
    delivered(message.clientId);
  } else if (message.clientId === null && live && message.from === ownId) {
    // A server that echoes no clientId: our own connection's frame with the text on the wire.
    const sent = outbox.find((entry) => entry.state === 'sent' && entry.ws === socket && entry.text === message.text);
    if (sent) delivered(sent.clientId);
  }
  if (message.room !== null && message.room !== currentRoom) return null;
  const index = placeMessage(timeline, message, { live });
  if (index === -1) return null;
  const item = messageItem(message);
  items.set(messageKey(message), item);
  insertAt(index + 1, item);
  return item;
}

function receive(data) {
  const frame = interpret(data);
  if (frame.kind === 'message') {
    const entry = frame.clientId === null ? null : outbox.find((sent) => sent.clientId === frame.clientId);
    // A server that says no `you` in its members answer: our own message tells who we are.
    if (ownId === null && entry?.ws === socket && entry?.state === 'sent') learnOwnId(frame.from);
    if (ownUser === null && frame.user && entry?.ws === socket && entry?.state === 'sent') learnOwnUser(frame.user);
    if (frame.from === ownId) showOwnName(frame.name);
    showTyping(typingDone(typing, frame.from));
    const follow = atBottom();
    const item = showMessage(frame, true);
    if (!item) return;
    if (follow || isOwn(frame)) item.scrollIntoView({ block: 'end' });
    if (hasHole(timeline)) watchHole();
  } else if (frame.kind === 'dm') {
    receiveDm(frame, { live: true, news: true });
  } else if (frame.kind === 'history' && frame.with !== null) {
    receiveDmHistory(frame);
  } else if (frame.kind === 'history') {
    receiveHistory(frame);
  } else if (frame.kind === 'moderated') {
    receiveModerated(frame);
  } else if (frame.kind === 'members') {
    if (frame.you) learnOwnId(frame.you);
    roster = updateRoster(roster, frame);
    showMembers();
    if (roster.known) {
      const me = roster.members.find((member) => member.from === ownId);
      showOwnName(me?.name);
      if (me?.user) learnOwnUser(me.user);
    }
  } else if (frame.kind === 'joined' || frame.kind === 'left') {
    receivePresence(frame);
  } else if ((frame.kind === 'edited' || frame.kind === 'deleted') && frame.with !== null) {
    receiveDmChange(frame);
  } else if (frame.kind === 'edited' || frame.kind === 'deleted') {
    receiveChange(frame);
  } else if (frame.kind === 'typing') {
    if (frame.room === currentRoom && !ownIds.has(frame.from)) showTyping(typingSeen(typing, frame));
  } else if (frame.kind === 'error' && frame.clientId !== null) {
    sendAnswered(frame);
  } else if (frame.kind === 'error' && frame.code === 'rate_limited') {
    rateLimited(frame);
  } else if (frame.kind === 'error') {
    if (frame.code === 'invalid_room') roomRefused(frame.text);
    // A ban, or a moderator action refused: the server's words say what happened.
    if (frame.code === 'banned') showNote(frame.text);
    else if (frame.code === 'not_allowed') showModNote(frame.text);
    append('error', { meta: `Error · ${frame.code}`, text: frame.text });
  } else {
    append('notice', { text: frame.text });
  }
}

/**
 * Shows what a `history` answer has that the log has not, each in its place by seq; says when
 * older messages are gone (gap); asks for the next page while there is more; and once the last
 * answer is in, the room is caught up.
 */
function receiveHistory(frame) {
  if (frame.room !== currentRoom) return;
  historyOpen = Math.max(0, historyOpen - 1);
  const follow = atBottom();
  const first = !timeline.started;
  const missing = frame.gap ? applyGap(timeline, frame.oldest) : 0;
  const fresh = mergeHistory(timeline.keys, frame.messages, currentRoom);
  if (first && frame.truncated && fresh.length > 0) log.prepend(logItem('notice', { text: 'Older messages are not shown.' }));
  for (const message of fresh) showMessage(message, false);
  // Messages the page has already, edited or deleted since it got them.
  for (const message of frame.messages) {
    const change = fresh.includes(message) ? null : changeOf(message);
    if (change) receiveChange(change);
  }
  if (first) startTimeline(timeline, true);
  if (missing > 0) {
    // Where the gone messages would have been: before the first one kept.
    insertAt(placeIndex(timeline.placed, timeline.epoch, frame.oldest - 1), logItem('notice', { text: gapText(missing) }));
  }
  if (follow) log.scrollTop = log.scrollHeight;
  const after = nextHistoryPage(frame);
  if (after !== null && askHistory(historyRequest(CATCH_UP_LIMIT, after))) return;
  if (historyOpen === 0) caughtUpNow();
}

/** Sends a history request for this room (on an open socket); whether it went. */
function askHistory(request) {
  if (!socket || socket.readyState !== WebSocket.OPEN) return false;
  socket.send(request);
  historyOpen += 1;
  return true;
}

/** The room's history is in (or was waited for long enough): holes are looked at, pending messages go. */
function caughtUpNow() {
  clearTimeout(catchUpTimer);
  catchUpTimer = null;
  if (!timeline.started) startTimeline(timeline);
  caughtUp = true;
  if (hasHole(timeline)) watchHole();
  flush();
}

/** A hole in the room's seqs: waits a moment for the frames on their way, then asks history to fill it. */
function watchHole() {
  if (holeTimer !== null || historyOpen > 0 || !caughtUp) return;
  holeTimer = setTimeout(() => {
    holeTimer = null;
    if (historyOpen > 0 || !caughtUp || joinFrom !== null || !socket || socket.readyState !== WebSocket.OPEN) return;
    const step = fillHole(timeline);
    if (step?.after !== undefined) askHistory(historyRequest(CATCH_UP_LIMIT, step.after));
    else if (hasHole(timeline)) watchHole();
  }, HOLE_WAIT_MS);
}

/** Someone entered or left a room: the member list follows, and the log says so (for this room only). */
function receivePresence(frame) {
  if (frame.room !== currentRoom) return;
  roster = updateRoster(roster, frame);
  showMembers();
  if (frame.kind === 'joined' && frame.from === ownId) {
    // The server moved us: the new room can be asked now, and answers for it.
    joinFrom = null;
    if (joinTimer !== null) askRoom();
    return;
  }
  // An earlier connection of ours leaving after a reconnect is no news.
  if (ownIds.has(frame.from)) return;
  append('presence', { text: presenceText(frame) });
}

function showMembers() {
  memberCount.textContent = rosterSummary(roster);
  if (roster.known) memberCount.dataset.count = String(roster.members.length);
  else delete memberCount.dataset.count;
  memberList.replaceChildren(...memberEntries(roster).map((entry) => {
    const item = document.createElement('li');
    item.textContent = entry.label;
    item.title = `Connection ${entry.from}`;
    if (entry.own) {
      item.className = 'own';
      const mark = document.createElement('span');
      mark.className = 'you';
      mark.textContent = ' (you)';
      item.append(mark);
    }
    const offers = memberActions(entry, { signedIn, ownUser, moderator });
    if (offers.message) {
      item.append(memberButton('Message', `Message ${entry.label} directly`, () => openConversation(entry.user, entry.label)));
    }
    if (offers.moderate) {
      item.append(
        memberButton('Kick', `Kick ${entry.label} out of ${roster.room}`, () => kick(entry.user, entry.label)),
        memberButton('Ban', `Ban ${entry.label} from ${roster.room}`, () => ban(entry.user, entry.label)),
      );
    }
    return item;
  }));
}

/** A small button next to a member, named for assistive technology by `label`. */
function memberButton(text, label, onClick) {
  const button = actionButton(text, onClick);
  button.className = 'member-action';
  button.setAttribute('aria-label', label);
  return button;
}

/** The note under the member list on what a moderator's action did (or why it was refused). */
function showModNote(text) {
  modNote.textContent = text ?? '';
  modNote.hidden = !text;
}

/** A moderator's Kick: the user's connections in this room are closed (they may come back). */
function kick(user, label) {
  if (!online('the kick')) return;
  moderating.set(user, { label, kick: false, before: null });
  socket.send(kickRequest(user));
}

/** A moderator's Ban: for how many minutes is asked, then the user is banned from this room and, once that is done, kicked. */
function ban(user, label) {
  const answer = window.prompt(`Ban ${label} from ${currentRoom} for how many minutes (1 to ${MAX_BAN_MINUTES})?`,
    String(DEFAULT_BAN_MINUTES));
  if (answer === null) return;
  const minutes = banMinutes(answer);
  if (minutes === null) {
    showModNote(`Not banned: give the minutes as a whole number from 1 to ${MAX_BAN_MINUTES}.`);
    return;
  }
  if (!online('the ban')) return;
  moderating.set(user, { label, kick: true, before: null });
  socket.send(banRequest(user, minutes));
}

/**
 * The server did a moderator's action: the note says so; a ban asked with Ban is followed by the
 * kick, whose note comes after the ban's.
 */
function receiveModerated(frame) {
  const asked = moderating.get(frame.user);
  const label = asked?.label ?? `User ${shortId(frame.user)}`;
  const text = moderatedText(frame, label);
  showModNote(frame.action === 'kick' && asked?.before ? `${asked.before} ${text}` : text);
  moderating.set(frame.user, { label, kick: false, before: null });
  if (frame.action === 'ban' && asked?.kick && socket && socket.readyState === WebSocket.OPEN) {
    moderating.set(frame.user, { label, kick: false, before: text });
    socket.send(kickRequest(frame.user));
  }
}

/** Shows the Direct messages list (signed in only): each conversation as a button, the open one marked, unread ones too. */
function showConversations() {
  direct.hidden = !signedIn;
  const unread = unreadCount(conversations);
  directHeading.textContent = unread ? `Direct messages (${unread} unread)` : 'Direct messages';
  if (conversations.length === 0) {
    const none = document.createElement('li');
    none.className = 'none';
    none.textContent = 'None yet: press Message next to someone.';
    conversationList.replaceChildren(none);
    return;
  }
  conversationList.replaceChildren(...conversations.map((conversation) => {
    const item = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'conversation';
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = conversationLabel(conversation);
    const preview = document.createElement('span');
    preview.className = 'preview';
    preview.textContent = conversationPreview(conversation);
    button.append(name, preview);
    if (conversation.unread) {
      item.className = 'unread';
      const mark = document.createElement('span');
      mark.className = 'unread-mark';
      mark.textContent = 'unread';
      button.append(mark);
    }
    if (conversation.user === openWith) button.setAttribute('aria-current', 'true');
    button.addEventListener('click', () => openConversation(conversation.user));
    item.append(button);
    return item;
  }));
}

/** The timeline of the conversation with `user`, made when first needed. */
function dmTimeline(user) {
  if (!dmTimelines.has(user)) dmTimelines.set(user, newConversationTimeline(user));
  return dmTimelines.get(user);
}

/** Forgets every direct conversation (another user signed in, or signed out). */
function resetDirect() {
  showRoomView();
  conversations = [];
  dmTimelines.clear();
  dmAsked.clear();
  for (const entry of dmOutbox.splice(0)) ownClientIds.delete(entry.clientId);
  showConversations();
}

/** Shows the conversation with `user` (`name` from the member list) instead of the room, read, and asks what was said. */
function openConversation(user, name = null) {
  conversations = readConversation(addConversation(conversations, user, name), user);
  openWith = user;
  const target = dmTimeline(user);
  const label = conversationLabel(conversations.find((conversation) => conversation.user === user));
  dmTitle.textContent = `Direct messages with ${label}`;
  backToRoom.textContent = `Back to ${currentRoom}`;
  dmItems.clear();
  dmPendingItems.clear();
  dmLog.replaceChildren();
  for (const { key, message } of target.placed) {
    const item = dmItem(message);
    dmItems.set(key, item);
    dmLog.append(item);
  }
  for (const entry of dmOutbox) if (entry.to === user) showDmPending(entry);
  log.hidden = true;
  typingLine.hidden = true;
  dmView.hidden = false;
  input.placeholder = `Message ${label} — Enter sends, Shift+Enter adds a line`;
  dmLog.scrollTop = dmLog.scrollHeight;
  showConversations();
  showSize();
  askDm(user);
  input.focus();
}

/** Back to the room: its log, its typing line, the box sends to it. */
function showRoomView() {
  openWith = null;
  dmView.hidden = true;
  log.hidden = false;
  typingLine.hidden = false;
  input.placeholder = roomPlaceholder;
  showConversations();
  showSize();
}

/** Asks for the conversation with `user` once per connection: its recent messages, or what came after the last seq. */
function askDm(user) {
  if (dmAsked.has(user) || !socket || socket.readyState !== WebSocket.OPEN) return;
  dmAsked.add(user);
  socket.send(catchUpRequest(dmTimeline(user)));
}

/** The log item of a direct message (edited and deleted as the server says; the page offers neither). */
function dmItem(message) {
  const item = logItem('message', { meta: senderLabel(message), text: message.text });
  showSaid(item, message, ownDm(message));
  return item;
}

/**
 * An `edited` or `deleted` frame of a direct message (or a changed one in a conversation's
 * history): the message changes in its conversation, its preview and, when open, its log.
 */
function receiveDmChange(change) {
  const target = dmTimelines.get(change.with);
  const changed = target ? applyChange(target, change) : null;
  conversations = conversationChanged(conversations, change);
  showConversations();
  const item = changed && change.with === openWith ? dmItems.get(changed.key) : null;
  if (item) showSaid(item, changed.message, ownDm(changed.message));
}

/**
 * A direct message, live or from history: the pending one it answers is done, its conversation
 * is listed (unread when it is `news` from the other person and not open), and it goes in its
 * place by seq, shown when its conversation is open.
 */
function receiveDm(message, { live, news }) {
  if (message.clientId !== null && ownClientIds.has(message.clientId)) dmDelivered(message.clientId);
  const user = message.with;
  const open = user === openWith;
  conversations = dmSeen(conversations, message, { open, news });
  showConversations();
  const target = dmTimeline(user);
  const index = placeMessage(target, message, { live });
  if (index === -1 || !open) return;
  const follow = dmLog.scrollHeight - dmLog.scrollTop - dmLog.clientHeight < 40;
  const item = dmItem(message);
  dmItems.set(messageKey(message), item);
  const next = target.placed[index + 1];
  const before = next ? dmItems.get(next.key) : dmLog.querySelector(':scope > li.outgoing');
  if (before) before.before(item);
  else dmLog.append(item);
  if (follow || ownDm(message)) item.scrollIntoView({ block: 'end' });
}

/**
 * A conversation's `history` answer: what the page has not shown goes in its place (news when
 * it catches up a conversation the page had, not its first look back); the next page is asked
 * while there is more.
 */
function receiveDmHistory(frame) {
  const user = frame.with;
  const target = dmTimeline(user);
  const first = !target.started;
  if (frame.gap) applyGap(target, frame.oldest);
  const fresh = mergeHistory(target.keys, frame.messages, null);
  for (const message of fresh) receiveDm(message, { live: false, news: !first });
  // Messages the page has already, edited or deleted since it got them.
  for (const message of frame.messages) {
    const change = fresh.includes(message) ? null : changeOf(message);
    if (change) receiveDmChange(change);
  }
  if (first) startTimeline(target, true);
  const after = nextHistoryPage(frame);
  if (after !== null && socket && socket.readyState === WebSocket.OPEN) socket.send(historyRequest(CATCH_UP_LIMIT, after, user));
}

/** The log item of a pending direct message in the open conversation: marked "sending…" (or why it failed). */
function showDmPending(entry) {
  if (entry.to !== openWith) return null;
  return showPendingIn(entry, dmPendingItems, dmLog, forgetDm);
}

/** Takes the direct message with `clientId` out of the direct outbox and its pending item out of the log. */
function forgetDm(clientId) {
  const index = dmOutbox.findIndex((entry) => entry.clientId === clientId);
  if (index !== -1) dmOutbox.splice(index, 1);
  dmPendingItems.get(clientId)?.remove();
  dmPendingItems.delete(clientId);
}

/** The server's frame for a pending direct message came: it is done, and the next one may go. */
function dmDelivered(clientId) {
  if (!dmOutbox.some((entry) => entry.clientId === clientId)) return;
  forgetDm(clientId);
  flushDms();
}

/**
 * Sends the next pending direct message of each conversation, if the socket is open and the
 * server takes messages from us now; one at a time per conversation, in the order written.
 */
function flushDms() {
  clearTimeout(dmFlushTimer);
  dmFlushTimer = null;
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  const now = Date.now();
  let wait = quietUntil - now;
  if (wait <= 0) {
    wait = null;
    for (const key of new Set(dmOutbox.map((entry) => entry.room))) {
      const next = nextToSend(dmOutbox, key, now);
      if (next?.entry) sendEntry(next.entry, dmRequest(next.entry.to, next.entry.text, next.entry.clientId), flushDms);
      else if (next) wait = Math.min(wait ?? Infinity, next.waitMs);
    }
  }
  if (wait !== null) dmFlushTimer = setTimeout(flushDms, wait);
}

/** Writes `text` to the open conversation's user: pending until the server's frame for it comes back. */
function sendDm(text) {
  const entry = { ...outgoing(text, conversationKey(openWith)), to: openWith };
  dmOutbox.push(entry);
  ownClientIds.add(entry.clientId);
  const wait = quietUntil - Date.now();
  showNote(wait > 0 ? `${rateLimitText(wait)} Your message will be sent then.` : null);
  showDmPending(entry)?.scrollIntoView({ block: 'end' });
  flushDms();
}

/**
 * Asks the server who is in the room and what was said there (on an open socket): the recent
 * messages on a first visit, else everything after the last seq the page has; pending messages
 * wait until that is in.
 */
function askRoom() {
  clearTimeout(joinTimer);
  joinTimer = null;
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  roster = updateRoster(roster, { kind: 'who' });
  socket.send(whoRequest());
  notCaughtUp();
  askHistory(catchUpRequest(timeline));
  catchUpTimer = setTimeout(caughtUpNow, CATCH_UP_WAIT_MS);
}

/** Forgets the catch-up of this room on this connection: a new one is needed before pending messages go. */
function notCaughtUp() {
  caughtUp = false;
  historyOpen = 0;
  clearTimeout(catchUpTimer);
  catchUpTimer = null;
  clearTimeout(holeTimer);
  holeTimer = null;
  clearTimeout(flushTimer);
  flushTimer = null;
}

/** The log item of a pending message: set apart, marked "sending…" (or why it failed). */
function showPending(entry) {
  return showPendingIn(entry, pendingItems, log, forgetOutgoing);
}

/**
 * The item of pending `entry` in log `into` (kept in `items` by clientId); a failed one offers to
 * put its text back in the box, `forget` taking it out of its outbox.
 */
function showPendingIn(entry, items, into, forget) {
  let item = items.get(entry.clientId);
  if (!item) {
    item = logItem('outgoing pending', { meta: `You · ${pendingLabel(entry)}`, text: entry.text });
    items.set(entry.clientId, item);
    into.append(item);
  }
  item.className = `outgoing ${entry.state === 'failed' ? 'failed' : 'pending'}`;
  item.querySelector('.meta').textContent = `You · ${pendingLabel(entry)}`;
  if (entry.state === 'failed' && !item.querySelector('button')) {
    const edit = document.createElement('button');
    edit.type = 'button';
    edit.className = 'edit';
    edit.textContent = 'Back to the box';
    edit.addEventListener('click', () => {
      forget(entry.clientId);
      putBack(entry.text);
      input.focus();
    });
    item.append(edit);
  }
  return item;
}

/** Takes the message with `clientId` out of the outbox and its pending item out of the log. */
function forgetOutgoing(clientId) {
  const index = outbox.findIndex((entry) => entry.clientId === clientId);
  if (index !== -1) outbox.splice(index, 1);
  pendingItems.get(clientId)?.remove();
  pendingItems.delete(clientId);
  saveOutbox();
}

function saveOutbox() {
  store(sessionStorage, OUTBOX_KEY, outbox.some((entry) => entry.state !== 'failed') ? outboxJson(outbox) : null);
}

/** The server's frame for a pending message came: it is done, and the next one may go. */
function delivered(clientId) {
  if (!outbox.some((entry) => entry.clientId === clientId)) return;
  forgetOutgoing(clientId);
  flush();
}

/**
 * Sends the next pending message of this room, if the socket is open, the room caught up and the
 * server takes messages from us now; one at a time, so they are kept in the order written.
 */
function flush() {
  clearTimeout(flushTimer);
  flushTimer = null;
  if (!socket || socket.readyState !== WebSocket.OPEN || !caughtUp || joinFrom !== null) return;
  const now = Date.now();
  if (now < quietUntil) {
    flushTimer = setTimeout(flush, quietUntil - now);
    return;
  }
  const next = nextToSend(outbox, currentRoom, now);
  if (next === null) return;
  if (next.entry === undefined) {
    flushTimer = setTimeout(flush, next.waitMs);
    return;
  }
  const { entry } = next;
  sendEntry(entry, chatRequest(entry.text, entry.clientId), flush);
}

/**
 * Sends outbox `entry` as `request` on the open socket. No answer in time (a lost frame): it
 * waits to go again, and `again` sends it; the server keeps each clientId once.
 */
function sendEntry(entry, request, again) {
  const ws = socket;
  ws.send(request);
  entry.state = 'sent';
  entry.ws = ws;
  entry.tries += 1;
  const tries = entry.tries;
  setTimeout(() => {
    if (entry.state !== 'sent' || entry.tries !== tries || entry.ws !== socket) return;
    entry.state = 'waiting';
    again();
  }, ANSWER_WAIT_MS);
}

/** An error frame answering one of our messages (by its clientId), to the room or direct. */
function sendAnswered(frame) {
  const toRoom = outbox.find((sent) => sent.clientId === frame.clientId);
  const entry = toRoom ?? dmOutbox.find((sent) => sent.clientId === frame.clientId);
  // Answers a message already delivered (a repeat sent meanwhile): nothing to do.
  if (!entry) return;
  if (frame.code === 'rate_limited') quietUntil = Date.now() + (frame.retryAfterMs ?? 1_000);
  const outcome = sendRefused(entry, frame);
  if (frame.code === 'rate_limited') showNote(`${rateLimitText(frame.retryAfterMs)} Your message will be sent then.`);
  // A banned user's message: the server's words say until when.
  if (frame.code === 'banned') showNote(frame.text);
  if (outcome === 'failed' && toRoom) {
    if (entry.room === currentRoom) showPending(entry);
    saveOutbox();
  } else if (outcome === 'failed') {
    showDmPending(entry);
  }
  flush();
  flushDms();
}

/**
 * Makes `room` the page's room: the URL, the room box, its log (what the page has of it) and
 * member list. The server is told separately (join, or ?room= on the next connect).
 */
function enterRoom(room) {
  currentRoom = room;
  roomInput.value = room;
  history.replaceState(history.state, '', pageWithRoom(window.location, room));
  if (!timelines.has(room)) timelines.set(room, newTimeline(room));
  timeline = timelines.get(room);
  notCaughtUp();
  log.replaceChildren();
  items.clear();
  pendingItems.clear();
  for (const { key, message } of timeline.placed) {
    const item = messageItem(message);
    items.set(key, item);
    log.append(item);
  }
  for (const entry of outbox) if (entry.room === room) showPending(entry);
  log.scrollTop = log.scrollHeight;
  roster = { ...newRoster(room), you: ownId };
  showMembers();
  showTyping(newTyping(room));
}

/** Moves the page to the room typed in the room box, if the server would take the name. */
function switchRoom(typed) {
  const room = typed.trim();
  const problem = roomRefusal(room);
  if (problem) {
    showRoomNote(problem);
    return;
  }
  showRoomNote(null);
  roomInput.value = room;
  if (openWith !== null) showRoomView();
  if (room === currentRoom) return;
  const from = currentRoom;
  enterRoom(room);
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(joinRequest(room));
    joinFrom = from;
    // Asked at once, `who` might be answered for the room being left; our own `joined` says
    // when the move is done. Without our id yet (no `members` answer) it cannot be recognised.
    if (ownId === null) askRoom();
    else {
      clearTimeout(joinTimer);
      joinTimer = setTimeout(askRoom, JOIN_WAIT_MS);
    }
  } else if (socket) {
    // Still connecting, with the old room in the URL: connect again, to the new one.
    drop();
    connect();
  }
}

/** The server refused the room a `join` asked for: back to the room the connection is still in. */
function roomRefused(text) {
  if (joinFrom === null) return;
  showRoomNote(`The server refused the room name "${currentRoom}": ${text}`);
  const back = joinFrom;
  joinFrom = null;
  enterRoom(back);
  askRoom();
}

/**
 * A rate_limited error without a clientId (an older server): it answers the message on the wire,
 * which goes again once the server takes messages again.
 */
function rateLimited(frame) {
  const entry = outbox.find((sent) => sent.state === 'sent' && sent.ws === socket && sent.room === currentRoom);
  if (entry) {
    sendAnswered({ ...frame, clientId: entry.clientId });
    return;
  }
  quietUntil = Date.now() + (frame.retryAfterMs ?? 1_000);
  showNote(rateLimitText(frame.retryAfterMs));
}

/** Puts unsent `text` back in the box, before anything typed since. */
function putBack(text) {
  const typed = input.value;
  if (typed !== text) input.value = typed.trim() === '' ? text : `${text}\n\n${typed}`;
  showSize();
}

/** Closes the current socket (it reconnects no more) and gives up any sign-in under way. */
function drop() {
  clearTimeout(retryTimer);
  generation += 1;
  notCaughtUp();
  // What went out on it and was not answered goes again on the next connection.
  for (const entry of [...outbox, ...dmOutbox]) if (entry.state === 'sent') entry.state = 'waiting';
  if (socket) {
    const old = socket;
    socket = null;
    old.close();
  }
}

/** A new connection, as whoever the form and the token now say. */
function connectFresh() {
  drop();
  attempt = 0;
  connect();
}

function connect() {
  clearTimeout(retryTimer);
  const url = urlInput.value.trim();
  const mode = currentMode();
  showSignIn(mode);
  if (!url) {
    setStatus('offline', 'Not connected: enter the WebSocket URL of your chat API.');
    return;
  }
  const withToken = mode.authMode !== 'open' && token !== null;
  if (mode.authMode === 'jwt' && !withToken) {
    signedOut(mode.issuer ? 'Press Sign in to sign in or sign up.'
      : mode.tokenUrl ? 'Sign in: enter your name and press Sign in.' : 'Sign in: paste a sign-in token and press Sign in.');
    return;
  }
  if (withToken && tokenExpired(token)) {
    forgetToken();
    signedOut(expiredText(mode));
    return;
  }
  if (withToken && !tokenMayGoTo(tokenFor, url)) {
    // Not the socket the token is for (a link's ?ws= can name any server): the user decides.
    const target = socketKey(url);
    if (target === null) setStatus('offline', 'Cannot connect: the WebSocket URL must start with ws:// or wss://.');
    else signedOut(`Sign in to ${target}: press ${joinLabel(mode)} to send your sign-in token to this server.`);
    return;
  }
  const name = withToken ? null : storedName();
  const protocols = withToken ? connectProtocols(token) : undefined;
  if (protocols === null) {
    forgetToken();
    signedOut('That is not a sign-in token (a JWT): sign in again.');
    return;
  }
  const server = socketKey(url);
  if (server !== timelinesFor) {
    // Another server numbers its rooms' messages its own way: what the page has is not its.
    if (timelinesFor !== null) {
      timelines.clear();
      enterRoom(currentRoom);
    }
    timelinesFor = server;
  }
  setStatus('connecting', attempt ? `Reconnecting to ${url} (attempt ${attempt})…` : `Connecting to ${url}…`);
  let ws;
  try {
    // The token travels in Sec-WebSocket-Protocol, never in the URL.
    ws = new WebSocket(connectUrl(url, withToken ? {} : { name }, currentRoom), protocols);
  } catch (error) {
    // The browser's message quotes the URL, and with it the token: say only what is wrong.
    setStatus('offline', withToken ? 'Cannot connect: the WebSocket URL is not valid.' : `Cannot connect: ${error.message}`);
    return;
  }
  socket = ws;
  let opened = false;
  ws.addEventListener('open', () => {
    if (socket !== ws) return;
    opened = true;
    // The backoff starts over once this connection proves good (see attemptAfterClose).
    openedAt = Date.now();
    ownId = null;
    ownUser = null;
    typingSentAt = null;
    const wasModerator = moderator;
    signedIn = withToken;
    moderator = withToken && isModerator(jwtClaims(token));
    if (moderator !== wasModerator) refreshMessages();
    showConversations();
    if (!signedIn && openWith !== null) showRoomView();
    setStatus('online', `Connected to ${url}`);
    // In the room of the URL it connected with: ask who is there and what was said since the
    // last message the page has (a reconnect keeps the log, and shows what was missed in place).
    joinFrom = null;
    roster = newRoster(currentRoom);
    showMembers();
    askRoom();
    // The conversations the page had are caught up (the open one asked now if it never was), and what was written goes.
    dmAsked.clear();
    for (const [user, conversation] of dmTimelines) if (conversation.started || user === openWith) askDm(user);
    flushDms();
    whoPrefix = withToken ? 'Signed in as' : 'You are';
    if (withToken) showWho(tokenLabel ? `Signed in as ${tokenLabel}` : 'Signed in');
    else showWho(name ? `You are ${cleanName(name)}` : 'You are a guest (the server picks your name)');
  });
  ws.addEventListener('message', (event) => {
    if (socket === ws) receive(typeof event.data === 'string' ? event.data : '[binary frame]');
  });
  ws.addEventListener('close', (event) => {
    if (socket !== ws) return;
    socket = null;
    notCaughtUp();
    // What went out on this socket and never came back goes again on the next connection (the
    // server keeps each clientId once), unless the server closed on it for being too big.
    const unanswered = outbox.filter((sent) => sent.state === 'sent' && sent.ws === ws);
    for (const entry of unanswered) entry.state = 'waiting';
    for (const entry of dmOutbox) if (entry.state === 'sent' && entry.ws === ws) entry.state = 'waiting';
    if (event.code === 1009) restoreTooBig(unanswered);
    const closed = opened ? closedText(event.code) : null;
    if (closed) append('notice', { text: closed });
    attempt = attemptAfterClose(attempt, opened ? Date.now() - openedAt : null);
    const action = afterClose({
      opened, attempt, authMode: mode.authMode, withToken, expired: withToken && tokenExpired(token),
    });
    if (action === 'expired') {
      forgetToken();
      signedOut(expiredText(mode));
    } else if (action === 'refused') {
      // A token refused on its first try is no good; one that failed after a drop may be (the
      // server was down), and Sign in tries it again.
      if (withToken && attempt === 0) forgetToken();
      signedOut(refusedText(mode, withToken, attempt, event.code));
    } else {
      attempt += 1;
      const delay = backoff(attempt);
      const why = event.code === 1009 ? 'the message was too big' : `code ${event.code}`;
      const what = closed ? 'Disconnected by the server' : opened ? 'Connection lost' : 'Could not connect';
      setStatus('offline', `${what} (${why}). Reconnecting in ${(delay / 1000).toFixed(1)} s…`);
      retryTimer = setTimeout(connect, delay);
    }
  });
}

function expiredText(mode) {
  return mode.tokenUrl
    ? 'Your sign-in expired: get a new token by pressing Sign in.'
    : `Your sign-in expired: get a new token, paste it and press ${joinLabel(mode)}.`;
}

/** Why a connection that never opened was given up on, and what to do. */
function refusedText(mode, withToken, tries, code) {
  const closed = `the handshake closed with code ${code}`;
  if (!withToken) {
    return `Could not connect (${closed}): the server refused the handshake or cannot be reached. `
      + 'If it needs sign-in, paste a token and press Join; otherwise check the URL under Server and press Connect.';
  }
  if (tries > 0) {
    return `Could not reconnect after ${tries + 1} attempts (${closed}): the server refused your sign-in `
      + `or cannot be reached. Press ${joinLabel(mode)} to try again`
      + `${mode.tokenUrl ? ' with a new token' : ', or paste a new token first'}.`;
  }
  return mode.tokenUrl
    ? `Sign-in refused: get a new token by pressing Sign in (${closed}).`
    : `Sign-in refused: get a new token, paste it and press ${joinLabel(mode)} (${closed}).`;
}

/** Gets a token for `name` from the stack's token endpoint, then connects with it. */
async function signIn(tokenUrl, name) {
  drop();
  const mine = generation;
  // The token is for the socket it was asked for, should the URL under Server change meanwhile.
  const target = urlInput.value.trim();
  setStatus('connecting', name ? `Signing in as ${cleanName(name)}…` : 'Signing in…');
  let answer = null;
  let problem = null;
  try {
    const response = await fetch(tokenRequestUrl(tokenUrl, name), { cache: 'no-store', credentials: 'omit' });
    if (response.ok) {
      answer = parseTokenAnswer(await response.json().catch(() => null));
      if (!answer) problem = 'the token endpoint sent no token';
    } else {
      const detail = (await response.text().catch(() => '')).trim().slice(0, 200);
      problem = `the token endpoint answered ${response.status}${detail ? `: ${detail}` : ''}`;
    }
  } catch {
    problem = `cannot reach the token endpoint at ${tokenUrl}`;
  }
  if (mine !== generation) return;
  if (problem) {
    signedOut(`Sign-in failed: ${problem}.`);
    return;
  }
  keepToken(answer.token, answer.name, target);
  connectFresh();
}

/** The issuer's endpoints, from its discovery document; a clear error when it cannot be read. */
async function issuerEndpoints(issuer) {
  let discovery = null;
  try {
    const response = await fetch(discoveryUrl(issuer), { cache: 'no-store', credentials: 'omit' });
    discovery = response.ok ? await response.json() : null;
  } catch {
    discovery = null;
  }
  const found = endpoints(discovery);
  if (!found) throw new Error(`cannot read the sign-in issuer's discovery document at ${discoveryUrl(issuer)}`);
  return found;
}

/** This page's address as the issuer's app client knows it (callback and sign-out URL): its root. */
function pageAddress() {
  return `${window.location.origin}/`;
}

/** Sends the browser to the issuer to sign in (or up), with PKCE, state and nonce. */
async function startIssuerSignIn(mode) {
  drop();
  setStatus('connecting', 'Going to the sign-in page…');
  try {
    const { authorize } = await issuerEndpoints(mode.issuer);
    const pending = {
      verifier: randomString(48), state: randomString(), nonce: randomString(), redirectUri: pageAddress(),
      returnTo: window.location.pathname + window.location.search,
    };
    store(sessionStorage, PENDING_SIGNIN_KEY, JSON.stringify(pending));
    const challenge = await challengeOf(pending.verifier);
    window.location.assign(authorizeUrl(authorize, {
      clientId: mode.clientId, redirectUri: pending.redirectUri, state: pending.state, nonce: pending.nonce, challenge,
    }));
  } catch (error) {
    signedOut(`Sign-in failed: ${error.message}.`);
  }
}

/** Asks the issuer's token endpoint; {idToken, refreshToken} or {problem}. */
async function tokenEndpoint(url, body, expect) {
  try {
    const response = await fetch(url, {
      method: 'POST', body, credentials: 'omit', cache: 'no-store',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    });
    return tokensOf(await response.json().catch(() => null), expect);
  } catch {
    return { problem: `cannot reach the token endpoint at ${url}` };
  }
}

/** The browser is back from the issuer (`back` from callbackOf): trade the code, then connect. */
async function finishIssuerSignIn(mode, back) {
  let pending = null;
  try {
    pending = JSON.parse(stored(sessionStorage, PENDING_SIGNIN_KEY) ?? 'null');
  } catch {
    pending = null;
  }
  store(sessionStorage, PENDING_SIGNIN_KEY, null);
  history.replaceState(null, '', pending?.returnTo ?? withoutCallback(window.location));
  // Back where the sign-in started: its room and server, not the callback's bare address.
  const ws = new URLSearchParams(window.location.search).get('ws');
  if (ws) urlInput.value = ws;
  enterRoom(initialRoom(window.location).room);
  if (!pending || back.state !== pending.state) {
    signedOut('Sign-in failed: the answer is not for a sign-in this tab started (state). Press Sign in to try again.');
    return false;
  }
  if (back.error) {
    signedOut(`Sign-in failed: ${back.error}${back.description ? ` (${back.description})` : ''}. Press Sign in to try again.`);
    return false;
  }
  setStatus('connecting', 'Signing in…');
  let answer;
  try {
    const { token: url } = await issuerEndpoints(mode.issuer);
    const body = codeRequest({ code: back.code, verifier: pending.verifier, clientId: mode.clientId, redirectUri: pending.redirectUri });
    answer = await tokenEndpoint(url, body, { nonce: pending.nonce });
  } catch (error) {
    answer = { problem: error.message };
  }
  if (answer.problem) {
    signedOut(`Sign-in failed: ${answer.problem}. Press Sign in to try again.`);
    return false;
  }
  keepIssuerTokens(mode, answer);
  return true;
}

/** Keeps an issuer's tokens for this tab and schedules their renewal. */
function keepIssuerTokens(mode, { idToken, refreshToken }) {
  keepToken(idToken, null, urlInput.value.trim());
  store(sessionStorage, REFRESH_KEY, refreshToken);
  scheduleRenewal(mode);
}

/** Renews the tokens before the ID token expires, then reconnects with the fresh one. */
function scheduleRenewal(mode) {
  clearTimeout(renewTimer);
  const wait = token && mode.issuer ? renewIn(token) : null;
  if (wait === null || !stored(sessionStorage, REFRESH_KEY)) return;
  renewTimer = setTimeout(async () => {
    const refreshToken = stored(sessionStorage, REFRESH_KEY);
    let answer;
    try {
      const { token: url } = await issuerEndpoints(mode.issuer);
      answer = await tokenEndpoint(url, refreshRequest({ refreshToken, clientId: mode.clientId }), { refreshToken });
    } catch (error) {
      answer = { problem: error.message };
    }
    if (answer.problem) {
      drop();
      forgetToken();
      signedOut(`Your sign-in could not be renewed (${answer.problem}): press Sign in.`);
      return;
    }
    keepIssuerTokens(mode, answer);
    // The open socket was let in with the old token; a fresh connection carries the new one
    // (the conversation stays: what was said meanwhile comes back from history).
    connectFresh();
  }, wait);
}

/** After close 1009: says so, and puts the biggest of the `unanswered` messages back in the box. */
function restoreTooBig(unanswered) {
  let lost = null;
  for (const sent of unanswered) {
    if (lost === null || frameBytes(sent.text) > frameBytes(lost.text)) lost = sent;
  }
  const text = 'The server closed the connection because a message was too large (close 1009).';
  append('notice', { text });
  if (lost === null) {
    showNote(text);
    return;
  }
  // Sent again it would close the connection again: it leaves the outbox for the box.
  forgetOutgoing(lost.clientId);
  putBack(lost.text);
  showNote(`${text} It was not delivered and is back in the box; shorten it and send it again.`);
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = input.value;
  const problem = refusal(text, openWith);
  if (problem) {
    showNote(problem);
    return;
  }
  if (openWith !== null) {
    sendDm(text);
    input.value = '';
    showSize();
    input.focus();
    return;
  }
  // Kept in the page and shown as pending until the server's frame for it comes back: sent
  // now if it can be, else once the connection is back (or the server takes messages again).
  const entry = outgoing(text, currentRoom);
  outbox.push(entry);
  ownClientIds.add(entry.clientId);
  saveOutbox();
  const wait = quietUntil - Date.now();
  showNote(wait > 0 ? `${rateLimitText(wait)} Your message will be sent then.` : null);
  showPending(entry).scrollIntoView({ block: 'end' });
  input.value = '';
  showSize();
  input.focus();
  flush();
});

input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

input.addEventListener('input', () => {
  showSize();
  if (!note.hidden) showNote(refusal(input.value, openWith) === null ? null : note.textContent);
  sendTyping();
});

backToRoom.addEventListener('click', () => {
  showRoomView();
  input.focus();
});

roomForm.addEventListener('submit', (event) => {
  event.preventDefault();
  switchRoom(roomInput.value);
});

roomInput.addEventListener('input', () => {
  if (!roomNote.hidden && roomRefusal(roomInput.value.trim()) === null) showRoomNote(null);
});

urlForm.addEventListener('submit', (event) => {
  event.preventDefault();
  connectFresh();
});

signinForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const mode = currentMode();
  const name = nameInput.value.trim();
  store(localStorage, NAME_KEY, name);
  const pasted = tokenInput.value.trim();
  tokenInput.value = '';
  const target = urlInput.value.trim();
  if (mode.authMode === 'open') connectFresh();
  else if (pasted) {
    keepToken(pasted, null, target);
    connectFresh();
  } else if (token !== null && !tokenExpired(token) && !tokenMayGoTo(tokenFor, target)) {
    // The token held for another socket, or handed over, goes to this one because the user said so.
    bindToken(target);
    connectFresh();
  } else if (mode.authMode === 'jwt' && mode.issuer) startIssuerSignIn(mode);
  else if (mode.authMode === 'jwt' && mode.tokenUrl) signIn(mode.tokenUrl, name);
  else if (token !== null) connectFresh();
  else if (mode.authMode === 'jwt') {
    drop();
    signedOut('Paste a sign-in token, then press Sign in.');
  } else connectFresh();
});

signOutButton.addEventListener('click', async () => {
  const mode = currentMode();
  drop();
  forgetToken();
  // What was written and not delivered goes nowhere now, not even as whoever signs in next;
  // nor are the direct conversations theirs to see.
  for (const entry of [...outbox]) forgetOutgoing(entry.clientId);
  signedIn = false;
  moderator = false;
  directUser = null;
  resetDirect();
  showMembers();
  refreshMessages();
  if (mode.issuer) {
    // Signed out here; then at the issuer too, which sends the browser back to this page.
    try {
      const { logout } = await issuerEndpoints(mode.issuer);
      window.location.assign(logoutUrl(logout, { clientId: mode.clientId, logoutUri: pageAddress() }));
      return;
    } catch {
      // The issuer's session stays; this page is signed out all the same.
    }
  }
  signedOut(currentMode().authMode === 'jwt' ? 'Signed out. Sign in again to chat.' : 'Signed out. Join again to chat.');
});

// The hosted page may connect to its own API only (its Content-Security-Policy): a ?ws= naming
// another is refused by the browser, which otherwise just never opens the socket.
document.addEventListener('securitypolicyviolation', (event) => {
  if (!event.violatedDirective.startsWith('connect-src')) return;
  drop();
  setStatus('offline', `Cannot connect: this page may only connect to its own chat API, not ${event.blockedURI}.`);
});

async function loadConfig() {
  try {
    const response = await fetch('chat-config.json', { cache: 'no-store' });
    return parseConfig(response.ok ? await response.json() : null);
  } catch {
    return parseConfig(null);
  }
}

urlInput.value = defaultUrl(window.location);
nameInput.value = storedName();
const handed = fragmentToken(window.location.hash);
if (handed) {
  // Bound to no socket yet: the link that handed it over may also have chosen ?ws=.
  keepToken(handed, null, null);
  // Out of the address bar and the history, so it is not bookmarked or shared by accident.
  history.replaceState(null, '', window.location.pathname + window.location.search);
} else if (stored(sessionStorage, TOKEN_KEY)) {
  token = stored(sessionStorage, TOKEN_KEY);
  tokenLabel = stored(sessionStorage, TOKEN_NAME_KEY) || tokenName(token);
  tokenFor = stored(sessionStorage, TOKEN_FOR_KEY);
}
// What was written before a reload and not delivered yet: sent again (same clientId) once connected.
for (const entry of outboxFromJson(stored(sessionStorage, OUTBOX_KEY))) {
  outbox.push(entry);
  ownClientIds.add(entry.clientId);
}
const start = initialRoom(window.location);
if (start.problem) showRoomNote(`The link's room cannot be used: ${start.problem} You are in ${start.room}.`);
enterRoom(start.room);
config = await loadConfig();
// The stack's own configuration names its WebSocket API (on AWS the page is on another host).
if (config.webSocketUrl && !new URLSearchParams(window.location.search).has('ws')) urlInput.value = config.webSocketUrl;
const startMode = currentMode();
const back = startMode.issuer ? callbackOf(window.location.search) : null;
// The local token endpoint issues a token for any name: one remembered signs in again by itself.
if (back) {
  if (await finishIssuerSignIn(startMode, back)) connectFresh();
} else if (startMode.authMode === 'jwt' && startMode.tokenUrl && (token === null || tokenExpired(token)) && storedName()) {
  signIn(startMode.tokenUrl, storedName());
} else {
  if (startMode.issuer) scheduleRenewal(startMode);
  connect();
}
