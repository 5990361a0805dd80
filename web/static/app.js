// inboxmq web client: a reference for app teams. Plain JavaScript, no build.
//
// How it talks to the broker (docs/protocol.md, docs/api.md):
// - MQTT 5 over WebSocket with MQTT.js: username = uid, password = access
//   token, client id "{uid}/web", clean start off with a session expiry, so
//   a dropped connection resumes its session and receives what it missed.
//   It subscribes (QoS 1) to inbox/{uid} and broadcast, and sends with a
//   QoS 1 publish to im/sendmsg carrying a cid: the message shows as
//   pending until the MsgSent envelope with that cid brings its msgid.
// - The HTTP API (bearer token): conversation list, unread counts, history
//   pages, mark read, delete; the notice centre (notices.js) lists notices
//   and marks them read.
// Every message is keyed by its msgid, so whatever arrives twice (redelivery
// after a reconnect, a history page overlapping live messages) shows once.
// Message text is only ever set with textContent.
'use strict';

(() => {
  const TOKEN_KEY = 'inboxmq.token';
  const PAGE = 50; // history page size (the API's largest)
  const SESSION_EXPIRY = 7 * 24 * 3600; // seconds; the broker caps it
  const BANNER_MS = 8000;
  const RC_SESSION_TAKEN_OVER = 0x8e;
  // CONNACK codes that mean the token was refused (3.1.1: 4, 5; MQTT 5: 0x86, 0x87).
  const AUTH_REFUSED = new Set([4, 5, 0x86, 0x87]);
  const UID_RE = /^[A-Za-z0-9_.-]{1,64}$/;
  const MSGID_RE = /^[0-9]{1,20}$/;
  const TOKEN_REFUSED = 'The broker refused this token (expired or not valid). Sign in again.';

  const $ = (id) => document.getElementById(id);

  const state = {
    config: null, // GET web-config.json
    me: null, // {uid, nickname, token}
    client: null, // the MQTT.js client while a connection is wanted
    connectedOnce: false,
    convs: new Map(), // peer -> conversation (see conversation())
    seq: 0, // bumped by every live change to the list, to merge API snapshots
    chat: null, // the open conversation's view (see openChat())
    deleted: new Set(), // msgids deleted while the page is open
  };

  // msgids are decimal strings that outgrow 2^53: compare them as BigInt.
  function cmpID(a, b) {
    const x = BigInt(a);
    const y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function str(v) {
    return typeof v === 'string' ? v : v == null ? '' : String(v);
  }

  // ---- screens -------------------------------------------------------------

  function show(screen) {
    for (const id of ['screen-loading', 'screen-login', 'screen-app', 'screen-elsewhere']) {
      $(id).hidden = id !== screen;
    }
  }

  function showLogin(error) {
    show('screen-login');
    $('login-error').textContent = error || '';
    $('login-error').hidden = !error;
    document.title = 'inboxmq';
  }

  function setStatus(s) {
    // Short: it shares a phone-wide bar with the user id. Offline retries by itself.
    const labels = { online: 'Online', connecting: 'Connecting…', offline: 'Offline' };
    $('status').dataset.state = s;
    $('status').textContent = labels[s] || s;
  }

  // ---- signing in and out --------------------------------------------------

  // parseToken reads the claims the page needs. It does not verify the
  // token: the broker does, on every connection and API call.
  function parseToken(token) {
    const parts = token.split('.');
    if (parts.length !== 3) throw new Error('That is not an access token (a JWT has three parts).');
    let claims;
    try {
      const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
      const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
      claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
    } catch {
      throw new Error('That token cannot be read.');
    }
    if (typeof claims.sub !== 'string' || !UID_RE.test(claims.sub)) throw new Error('That token names no valid user (sub).');
    if (typeof claims.exp === 'number' && claims.exp * 1000 <= Date.now()) throw new Error('That token has expired.');
    return { uid: claims.sub, nickname: typeof claims.nickname === 'string' ? claims.nickname : '', token };
  }

  function signIn(token) {
    try {
      state.me = parseToken(token.trim());
    } catch (e) {
      localStorage.removeItem(TOKEN_KEY);
      showLogin(e.message);
      return;
    }
    localStorage.setItem(TOKEN_KEY, state.me.token);
    enterApp();
  }

  async function devLogin(uid) {
    const res = await fetch('dev/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ uid }),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error((data.error && data.error.message) || `dev login failed (${res.status})`);
    return data.token;
  }

  function enterApp() {
    const { uid, nickname } = state.me;
    show('screen-app');
    $('me').textContent = nickname && nickname !== uid ? `${nickname} · ${uid}` : uid;
    state.convs.clear();
    state.deleted.clear();
    state.connectedOnce = false;
    closeChat();
    renderConversations();
    connect();
    refreshConversations();
    notices.clear();
    notices.load();
  }

  // stop ends the connection for good: no reconnecting.
  function stop(disconnectOptions) {
    const c = state.client;
    state.client = null;
    if (!c) return;
    if (disconnectOptions) c.end(false, disconnectOptions);
    else c.end(true);
  }

  function signOut(message) {
    // Session expiry 0 in DISCONNECT drops the broker-side session: the
    // messages stay in the inbox log and the history.
    stop({ reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
    localStorage.removeItem(TOKEN_KEY);
    state.me = null;
    closeChat();
    showLogin(message);
  }

  // loggedInElsewhere stops reconnecting: otherwise this page and the newer
  // login would keep taking the session from each other.
  function loggedInElsewhere(reason) {
    if (!state.client) return;
    stop();
    // The Logout envelope's reason is "logged in elsewhere", or an
    // operator's words when the account was kicked (POST /api/v1/kick).
    const other = reason && reason !== 'logged in elsewhere';
    $('elsewhere-title').textContent = other ? 'Signed out by the server' : 'Logged in elsewhere';
    $('elsewhere-why').hidden = !!other;
    $('elsewhere-reason').textContent = other
      ? `The broker ended this connection: ${reason}.`
      : 'This account signed in on another device or tab.';
    show('screen-elsewhere');
    document.title = `${$('elsewhere-title').textContent} · inboxmq`;
  }

  // ---- MQTT ----------------------------------------------------------------

  function wsURL() {
    const ws = state.config.websocket;
    if (!ws) return '';
    if (ws.url) return ws.url; // web.mqtt_url: the public address, as the operator wrote it
    return `${ws.scheme}://${location.hostname}:${ws.port}${ws.path}`;
  }

  function connect() {
    const url = wsURL();
    if (!url) {
      setStatus('offline');
      banner('This broker has no WebSocket listener (listeners.websocket).', { kind: 'error', label: 'Error' });
      return;
    }
    const { uid, token } = state.me;
    setStatus('connecting');
    const client = mqtt.connect(url, {
      protocolVersion: 5,
      clientId: `${uid}/web`,
      username: uid,
      password: token,
      clean: false,
      properties: { sessionExpiryInterval: SESSION_EXPIRY },
      keepalive: 30,
      connectTimeout: 10000,
      // A little jitter so pages do not all come back in the same second
      // after a broker restart.
      reconnectPeriod: 1500 + Math.floor(Math.random() * 1500),
      reconnectOnConnackError: true,
      resubscribe: false, // done on every connect below
    });
    state.client = client;
    const current = () => state.client === client;

    client.on('connect', () => {
      if (!current()) return;
      setStatus('online');
      // The session keeps the subscriptions; subscribing again is harmless
      // and covers a session the broker no longer had.
      client.subscribe({ [`inbox/${uid}`]: { qos: 1 }, broadcast: { qos: 1 } }, (err, granted) => {
        if (!current()) return;
        const refused = (granted || []).filter((g) => g.qos > 2);
        if (err || refused.length) {
          banner(`Could not subscribe: ${err ? err.message : refused.map((g) => g.topic).join(', ')}`, { kind: 'error', label: 'Error' });
        }
      });
      // After a reconnect, catch up what the session may not replay
      // (a deleted message's new last line, counts changed elsewhere).
      if (state.connectedOnce) resync();
      state.connectedOnce = true;
    });
    client.on('reconnect', () => current() && setStatus('connecting'));
    client.on('offline', () => current() && setStatus('offline'));
    client.on('close', () => current() && setStatus('offline'));
    client.on('disconnect', (packet) => {
      if (current() && packet && packet.reasonCode === RC_SESSION_TAKEN_OVER) loggedInElsewhere('');
    });
    client.on('error', (err) => {
      if (!current()) return;
      if (AUTH_REFUSED.has(err && err.code)) {
        signOut(TOKEN_REFUSED);
        return;
      }
      console.warn('inboxmq: connection error:', err && err.message);
    });
    client.on('message', (topic, payload) => {
      if (current()) onEnvelope(topic, payload);
    });
  }

  function onEnvelope(topic, payload) {
    let env;
    try {
      env = JSON.parse(new TextDecoder().decode(payload));
    } catch {
      console.warn('inboxmq: not JSON on', topic);
      return;
    }
    if (!env || typeof env !== 'object') return;
    const msgid = str(env.msgid);
    switch (env._method_) {
      case 'SendMsg': // a message to me; uid is the sender
        if (MSGID_RE.test(msgid)) {
          addMessage(str(env.uid), { msgid, out: false, ct: str(env.ct), time: serverTime(env), nickname: str(env.nickname) }, false);
        }
        break;
      case 'MsgSent': // my own message, stored: now it has a msgid
        if (MSGID_RE.test(msgid)) {
          addMessage(str(env.to), { msgid, out: true, ct: str(env.ct), time: serverTime(env), cid: str(env.cid) }, false);
        }
        break;
      case 'DelMsg':
        if (MSGID_RE.test(msgid)) removeMessage(msgid);
        break;
      case 'EditMsg': // the sender replaced a message's text (both sides get it)
        if (MSGID_RE.test(msgid)) editMessage(msgid, str(env.ct), serverTime(env));
        break;
      case 'SystemNot':
        banner(str(env.ct), { label: topic === 'broadcast' ? 'Notice to everyone' : 'Notice' });
        notices.refreshSoon();
        break;
      case 'Logout':
        loggedInElsewhere(str(env.reason));
        break;
      case 'Error':
        onRequestError(env);
        break;
      default: // ReadMsg and anything newer: nothing to show
    }
  }

  // serverTime is when the broker stored an envelope (ts, Unix ms): a
  // message that waited while this page was offline keeps its real time.
  // Only a broker without ts falls back to the arrival time.
  function serverTime(env) {
    return Number.isSafeInteger(env.ts) && env.ts > 0 ? env.ts : Date.now();
  }

  function onRequestError(env) {
    const chat = state.chat;
    const cid = str(env.cid);
    const li = chat && cid ? chat.pending.get(cid) : null;
    const why = str(env.detail) || str(env.code) || 'refused';
    if (li) {
      li.classList.remove('pending');
      li.classList.add('failed');
      li.querySelector('.state').textContent = `Not sent: ${why}`;
      return;
    }
    banner(why, { kind: 'error', label: 'Refused' });
  }

  function newCID() {
    const r = new Uint32Array(2);
    crypto.getRandomValues(r);
    return `web-${Date.now().toString(36)}-${r[0].toString(36)}${r[1].toString(36)}`;
  }

  function send(text) {
    const chat = state.chat;
    if (!chat || !state.client) return;
    const cid = newCID();
    const li = messageElement({ out: true, ct: text, time: Date.now() });
    li.classList.add('pending');
    li.dataset.cid = cid;
    li.querySelector('.state').textContent = 'Sending…';
    chat.pending.set(cid, li);
    $('messages').append(li);
    scrollToBottom();
    // While offline MQTT.js keeps the publish and sends it on reconnect;
    // the callback runs on PUBACK, once the broker has stored it.
    state.client.publish('im/sendmsg', JSON.stringify({ uid: chat.peer, msg: text, cid }), { qos: 1 }, (err) => {
      if (err && li.classList.contains('pending')) {
        li.classList.replace('pending', 'failed');
        li.querySelector('.state').textContent = `Not sent: ${err.message}`;
      }
    });
  }

  // ---- HTTP API ------------------------------------------------------------

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${state.me.token}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(`api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const data = await res.json().catch(() => null);
    if (res.status === 401 && state.me) {
      signOut(TOKEN_REFUSED);
    }
    if (!res.ok) {
      const e = new Error((data && data.error && data.error.message) || `HTTP ${res.status}`);
      e.status = res.status;
      throw e;
    }
    return data;
  }

  // ---- conversation list ---------------------------------------------------

  function conversation(peer) {
    let c = state.convs.get(peer);
    if (!c) {
      // last: the newest message; live: incoming msgids counted as unread
      // since the last API snapshot.
      c = { peer, nickname: '', last: null, unread: 0, live: [], touched: 0 };
      state.convs.set(peer, c);
    }
    return c;
  }

  function reading(peer) {
    return !!state.chat && state.chat.peer === peer && document.visibilityState === 'visible';
  }

  // noteMessage updates the list for a message seen live. Messages at or
  // below the conversation's last one are already counted (a redelivery, or
  // part of the snapshot).
  function noteMessage(peer, m) {
    const c = conversation(peer);
    if (m.nickname) c.nickname = m.nickname;
    c.touched = ++state.seq;
    if (c.last && cmpID(m.msgid, c.last.msgid) <= 0) return;
    c.last = { msgid: m.msgid, ct: m.ct, time: m.time, out: m.out };
    if (!m.out && !reading(peer)) {
      c.unread++;
      c.live.push(m.msgid);
    }
    scheduleRender();
  }

  let refreshing = null;
  let refreshAgain = false;

  // refreshConversations loads the list and unread counts and merges them
  // with what arrived live meanwhile.
  async function refreshConversations() {
    if (refreshing) {
      refreshAgain = true;
      return refreshing;
    }
    refreshing = (async () => {
      const seqAtStart = state.seq;
      try {
        const [list, unread] = await Promise.all([api('GET', '/conversations'), api('GET', '/unread')]);
        if (!state.me) return;
        applySnapshot(list.conversations || [], (unread && unread.peers) || {}, seqAtStart);
      } catch (e) {
        console.warn('inboxmq: could not load conversations:', e.message);
      }
    })();
    await refreshing;
    refreshing = null;
    if (refreshAgain) {
      refreshAgain = false;
      refreshConversations();
    }
  }

  let refreshTimer = 0;
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refreshConversations, 300);
  }

  function applySnapshot(list, unreadPeers, seqAtStart) {
    const listed = new Set();
    for (const item of list) {
      const peer = str(item.peer);
      listed.add(peer);
      const c = conversation(peer);
      const l = item.last || {};
      if (!c.nickname && l.nickname) c.nickname = l.nickname;
      const last = { msgid: str(l.msgid), ct: str(l.ct), time: l.time, out: str(l.from) === state.me.uid };
      const unread = peer in unreadPeers ? unreadPeers[peer] : item.unread || 0;
      if (!c.last || cmpID(last.msgid, c.last.msgid) >= 0) {
        c.last = last;
        c.unread = unread;
        c.live = [];
      } else {
        // Newer messages came live after the snapshot was taken.
        c.live = c.live.filter((id) => cmpID(id, last.msgid) > 0);
        c.unread = unread + c.live.length;
      }
      if (reading(peer)) c.unread = 0;
    }
    // A conversation the API no longer lists lost all its messages, unless
    // it changed after the request went out.
    for (const [peer, c] of state.convs) {
      if (!listed.has(peer) && c.touched <= seqAtStart) state.convs.delete(peer);
    }
    renderConversations();
  }

  let renderTimer = 0;
  function scheduleRender() {
    if (!renderTimer) renderTimer = setTimeout(renderConversations, 30);
  }

  // avatar: a colour from the uid (FNV-1a), and the name's first letter,
  // or the last two digits of a numeric name.
  function avatar(target, peer, name) {
    let h = 0x811c9dc5;
    for (const ch of peer) h = Math.imul(h ^ ch.codePointAt(0), 16777619) >>> 0;
    target.style.setProperty('--avatar', `hsl(${h % 360} 45% 42%)`);
    const n = name || peer;
    target.textContent = /^[0-9]+$/.test(n) ? n.slice(-2) : Array.from(n)[0] || '?';
  }

  function timeLabel(ms) {
    if (!ms) return '';
    const d = new Date(ms);
    const now = new Date();
    if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    return d.toLocaleDateString([], { month: 'short', day: 'numeric' });
  }

  function renderConversations() {
    clearTimeout(renderTimer);
    renderTimer = 0;
    const ul = $('conversations');
    const convs = [...state.convs.values()].filter((c) => c.last);
    convs.sort((a, b) => cmpID(b.last.msgid, a.last.msgid));
    let total = 0;
    ul.replaceChildren(
      ...convs.map((c) => {
        total += c.unread;
        const li = el('li', 'conversation');
        li.dataset.peer = c.peer;
        li.tabIndex = 0;
        li.setAttribute('role', 'button');
        if (state.chat && state.chat.peer === c.peer) li.classList.add('active');
        const av = el('span', 'avatar');
        av.setAttribute('aria-hidden', 'true');
        avatar(av, c.peer, c.nickname);
        const body = el('div', 'conv-body');
        const top = el('div', 'conv-top');
        top.append(el('span', 'conv-name', c.nickname && c.nickname !== c.peer ? `${c.nickname} (${c.peer})` : c.peer), el('span', 'conv-time', timeLabel(c.last.time)));
        const bottom = el('div', 'conv-bottom');
        bottom.append(el('span', 'conv-last', (c.last.out ? 'You: ' : '') + c.last.ct));
        if (c.unread > 0) {
          const badge = el('span', 'badge', c.unread > 99 ? '99+' : String(c.unread));
          badge.setAttribute('aria-label', `${c.unread} unread`);
          bottom.append(badge);
        }
        body.append(top, bottom);
        li.append(av, body);
        return li;
      }),
    );
    $('no-conversations').hidden = convs.length > 0;
    document.title = total > 0 ? `(${total}) inboxmq` : 'inboxmq';
  }

  // ---- the open conversation -------------------------------------------------

  function openChat(peer) {
    if (state.chat && state.chat.peer === peer) return;
    closeChat();
    // next: null before the first page, "" when there is nothing earlier.
    // oldest: the oldest msgid loaded from history.
    state.chat = { peer, byId: new Map(), pending: new Map(), next: null, oldest: '', newestIn: '', marked: '', loading: false };
    const c = state.convs.get(peer);
    const name = (c && c.nickname) || peer;
    $('peer-name').textContent = name;
    $('peer-uid').textContent = name !== peer ? peer : '';
    avatar($('peer-avatar'), peer, name);
    $('messages').replaceChildren();
    $('load-earlier').hidden = true;
    $('history-start').hidden = true;
    $('chat-pane').hidden = false;
    $('screen-app').classList.add('chat-open');
    renderConversations();
    loadPage();
    if (matchMedia('(min-width: 760px)').matches) $('text').focus();
  }

  function closeChat() {
    state.chat = null;
    $('chat-pane').hidden = true;
    $('screen-app').classList.remove('chat-open');
    $('messages').replaceChildren();
  }

  async function loadPage() {
    const chat = state.chat;
    if (!chat || chat.loading || chat.next === '') return;
    chat.loading = true;
    $('load-earlier').disabled = true;
    const first = chat.next === null;
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (!first) q.set('before', chat.next);
    try {
      const data = await api('GET', `/conversations/${encodeURIComponent(chat.peer)}/messages?${q}`);
      if (state.chat !== chat) return;
      const sc = $('scroller');
      const fromBottom = sc.scrollHeight - sc.scrollTop;
      const msgs = data.messages || [];
      for (const m of msgs) showMessage(fromAPI(m), true);
      if (msgs.length) chat.oldest = str(msgs[msgs.length - 1].msgid);
      chat.next = str(data.next);
      if (first && chat.next) {
        // Live messages older than the first page arrived before it: they
        // come back with the earlier pages, in place.
        for (const [id, li] of chat.byId) {
          if (cmpID(id, chat.oldest) < 0) {
            li.remove();
            chat.byId.delete(id);
          }
        }
      }
      $('load-earlier').hidden = chat.next === '';
      $('history-start').hidden = chat.next !== '' || chat.byId.size === 0;
      if (first) scrollToBottom();
      else sc.scrollTop = sc.scrollHeight - fromBottom;
      markReadSoon();
    } catch (e) {
      if (state.chat === chat) banner(`Could not load messages: ${e.message}`, { kind: 'error', label: 'Error' });
    } finally {
      chat.loading = false;
      $('load-earlier').disabled = false;
    }
  }

  // Merge the newest page again after a reconnect; duplicates are dropped.
  async function resync() {
    refreshConversations();
    const chat = state.chat;
    if (!chat || chat.next === null) return;
    try {
      const data = await api('GET', `/conversations/${encodeURIComponent(chat.peer)}/messages?limit=${PAGE}`);
      if (state.chat !== chat) return;
      for (const m of data.messages || []) showMessage(fromAPI(m), false);
      markReadSoon();
    } catch (e) {
      console.warn('inboxmq: resync failed:', e.message);
    }
  }

  function fromAPI(m) {
    return { msgid: str(m.msgid), out: str(m.from) === state.me.uid, ct: str(m.ct), time: m.ts || m.time, nickname: str(m.nickname), cid: str(m.cid), edited: m.edited || 0 };
  }

  function addMessage(peer, m, fromHistory) {
    if (!UID_RE.test(peer) || state.deleted.has(m.msgid)) return;
    noteMessage(peer, m);
    if (state.chat && state.chat.peer === peer) {
      showMessage(m, fromHistory);
      markReadSoon();
    }
  }

  function messageElement(m) {
    const li = el('li', `msg ${m.out ? 'out' : 'in'}`);
    const meta = el('div', 'meta');
    meta.append(el('time', 'time'));
    if (m.out) {
      meta.append(el('span', 'state'));
      const del = el('button', 'delete', 'Delete');
      del.type = 'button';
      del.hidden = true;
      meta.append(del);
    }
    li.append(el('div', 'bubble', m.ct), meta);
    setTime(li, m.time);
    if (m.edited) markEdited(li, m.edited);
    return li;
  }

  // setTime shows ms (Unix milliseconds) as the message's time; datetime
  // keeps it exact for tools and tests.
  function setTime(li, ms) {
    const when = li.querySelector('.time');
    when.textContent = timeLabel(ms);
    if (Number.isFinite(ms)) when.dateTime = new Date(ms).toISOString();
  }

  // markEdited labels a message as edited, with the edit's time on hover.
  function markEdited(li, ms) {
    let tag = li.querySelector('.edited');
    if (!tag) {
      tag = el('span', 'edited muted', 'edited');
      li.querySelector('.meta').append(tag);
    }
    tag.title = `edited ${new Date(ms).toLocaleString()}`;
  }

  // editMessage shows a message's new text where it is on screen; the
  // conversation list's last line comes with the next refresh.
  function editMessage(msgid, ct, ms) {
    const chat = state.chat;
    const li = chat && chat.byId.get(msgid);
    if (li) {
      li.querySelector('.bubble').textContent = ct;
      markEdited(li, ms);
    }
    scheduleRefresh();
  }

  function nearBottom() {
    const sc = $('scroller');
    return sc.scrollHeight - sc.scrollTop - sc.clientHeight < 80;
  }

  function scrollToBottom() {
    const sc = $('scroller');
    sc.scrollTop = sc.scrollHeight;
  }

  // showMessage puts m in the open conversation, once, in msgid order.
  function showMessage(m, fromHistory) {
    const chat = state.chat;
    if (chat.byId.has(m.msgid) || state.deleted.has(m.msgid)) return;
    // Older than the loaded history: it will come with its page.
    if (!fromHistory && chat.oldest && chat.next !== '' && cmpID(m.msgid, chat.oldest) < 0) return;
    const stick = !fromHistory && (nearBottom() || m.out);
    let li = m.out && m.cid ? chat.pending.get(m.cid) : null;
    if (li) {
      chat.pending.delete(m.cid);
      li.classList.remove('pending', 'failed');
      li.querySelector('.state').textContent = '';
      setTime(li, m.time); // the broker's time replaces the moment of sending
      li.remove();
    } else {
      li = messageElement(m);
    }
    li.dataset.msgid = m.msgid;
    if (m.out) li.querySelector('.delete').hidden = false;
    chat.byId.set(m.msgid, li);
    if (!m.out && (!chat.newestIn || cmpID(m.msgid, chat.newestIn) > 0)) chat.newestIn = m.msgid;
    insertSorted(li, m.msgid);
    regroupSoon();
    if (stick) scrollToBottom();
  }

  // regroup marks messages followed by one from the same side in the same
  // minute: their time is shown once, under the last of the run.
  let groupTimer = 0;
  function regroupSoon() {
    if (!groupTimer) groupTimer = setTimeout(regroup, 0);
  }

  function regroup() {
    groupTimer = 0;
    const items = $('messages').children;
    for (let i = 0; i < items.length; i++) {
      const a = items[i];
      const b = items[i + 1];
      const same = !!b && a.dataset.msgid !== undefined && b.dataset.msgid !== undefined &&
        a.classList.contains('out') === b.classList.contains('out') &&
        a.querySelector('.time').textContent === b.querySelector('.time').textContent;
      a.classList.toggle('cont', same);
    }
  }

  // insertSorted keeps confirmed messages in msgid order, pending ones last.
  function insertSorted(li, msgid) {
    const items = $('messages').children;
    let hi = items.length;
    while (hi > 0 && items[hi - 1].dataset.msgid === undefined) hi--;
    let lo = 0;
    const key = BigInt(msgid);
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (BigInt(items[mid].dataset.msgid) < key) lo = mid + 1;
      else hi = mid;
    }
    $('messages').insertBefore(li, items[lo] || null);
  }

  function removeMessage(msgid) {
    state.deleted.add(msgid);
    const chat = state.chat;
    const li = chat && chat.byId.get(msgid);
    if (li) {
      li.remove();
      chat.byId.delete(msgid);
      regroupSoon();
    }
    // The last line and the unread counts may have changed.
    scheduleRefresh();
  }

  async function deleteMessage(msgid) {
    try {
      await api('DELETE', `/messages/${encodeURIComponent(msgid)}`);
      removeMessage(msgid);
    } catch (e) {
      if (e.status === 404) removeMessage(msgid);
      else banner(`Could not delete: ${e.message}`, { kind: 'error', label: 'Error' });
    }
  }

  let readTimer = 0;
  function markReadSoon() {
    clearTimeout(readTimer);
    readTimer = setTimeout(markRead, 250);
  }

  // markRead tells the broker (and so the peer) what this page has shown.
  function markRead() {
    const chat = state.chat;
    if (!chat || document.visibilityState !== 'visible') return;
    const c = state.convs.get(chat.peer);
    if (c && c.unread) {
      c.unread = 0;
      c.live = [];
      renderConversations();
    }
    const newest = chat.newestIn;
    if (!newest || (chat.marked && cmpID(newest, chat.marked) <= 0)) return;
    chat.marked = newest;
    api('POST', `/conversations/${encodeURIComponent(chat.peer)}/read`, { msgid: newest }).catch((e) => {
      chat.marked = '';
      console.warn('inboxmq: mark read failed:', e.message);
    });
  }

  // ---- notices ---------------------------------------------------------------

  function banner(text, { kind = 'notice', label = 'Notice' } = {}) {
    const box = $('banners');
    const b = el('div', kind === 'error' ? 'banner error' : 'banner');
    const body = el('div', 'banner-body');
    body.append(el('div', 'banner-label', label), el('div', 'banner-text', text));
    const close = el('button', 'banner-close', '×');
    close.type = 'button';
    close.setAttribute('aria-label', 'Dismiss');
    close.addEventListener('click', () => b.remove());
    b.append(body, close);
    box.append(b);
    while (box.children.length > 3) box.firstElementChild.remove();
    setTimeout(() => b.remove(), BANNER_MS);
  }

  // The notice centre (notices.js), wired to this page's helpers.
  let notices;

  // ---- wiring ------------------------------------------------------------------

  function wire() {
    // eslint-disable-next-line no-undef
    notices = noticeCentre({ $, el, str, api, timeLabel, banner });
    $('token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      signIn($('token').value);
    });
    $('dev-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const uid = $('dev-uid').value.trim();
      try {
        signIn(await devLogin(uid));
      } catch (err) {
        showLogin(err.message);
      }
    });
    $('signout').addEventListener('click', () => signOut(''));
    $('elsewhere-signout').addEventListener('click', () => signOut(''));
    $('resume').addEventListener('click', () => enterApp());
    $('back').addEventListener('click', () => {
      closeChat();
      renderConversations();
    });
    $('new-chat').addEventListener('submit', (e) => {
      e.preventDefault();
      const peer = $('new-peer').value.trim();
      if (!UID_RE.test(peer)) return;
      if (peer === state.me.uid) {
        banner('That is your own user id.', { kind: 'error', label: 'Error' });
        return;
      }
      $('new-peer').value = '';
      openChat(peer);
    });
    const pick = (e) => {
      const li = e.target.closest('.conversation');
      if (li) openChat(li.dataset.peer);
    };
    $('conversations').addEventListener('click', pick);
    $('conversations').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        pick(e);
      }
    });
    // Tapping one of my messages shows its actions (Delete).
    $('messages').addEventListener('click', (e) => {
      const li = e.target.closest('.msg');
      if (!li || !li.dataset.msgid) return;
      if (e.target.closest('.delete')) {
        deleteMessage(li.dataset.msgid);
        return;
      }
      if (!li.classList.contains('out')) return;
      const was = li.classList.contains('selected');
      for (const other of $('messages').querySelectorAll('.msg.selected')) other.classList.remove('selected');
      li.classList.toggle('selected', !was);
    });
    $('load-earlier').addEventListener('click', () => loadPage());
    $('scroller').addEventListener('scroll', () => {
      const chat = state.chat;
      if (chat && chat.next && $('scroller').scrollTop < 60) loadPage();
    });
    const text = $('text');
    const grow = () => {
      text.style.height = 'auto';
      text.style.height = `${text.scrollHeight + 2}px`;
    };
    text.addEventListener('input', grow);
    text.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        $('composer').requestSubmit();
      }
    });
    $('composer').addEventListener('submit', (e) => {
      e.preventDefault();
      if (!text.value.trim()) return;
      send(text.value);
      text.value = '';
      grow();
    });
    document.addEventListener('visibilitychange', markReadSoon);
    // No reconnect() on the window's "online" event: MQTT.js's reconnect()
    // starts over with empty stores, dropping the publishes it still holds.
  }

  async function boot() {
    wire();
    try {
      const res = await fetch('web-config.json', { cache: 'no-store' });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      state.config = await res.json();
    } catch (e) {
      showLogin(`Could not load the page settings: ${e.message}`);
      return;
    }
    $('dev-form').hidden = !state.config.dev_login;
    const saved = localStorage.getItem(TOKEN_KEY);
    if (saved) signIn(saved);
    else showLogin('');
  }

  boot();
})();
