// inboxmq web client: the notice centre. Loaded before app.js, which
// creates it with its helpers (noticeCentre(deps)) and calls load() after
// sign-in and refreshSoon() when a notice arrives live (the banner stays:
// the centre is where notices are found again later).
//
// It lists GET /api/v1/notices grouped by category (msgtype), newest group
// first, with unread counts per category, and marks everything read with
// POST /api/v1/notices/read. Unread is what GET /api/v1/unread says:
// notices.{msgtype} unread targeted notices and broadcast unread notices to
// everyone. A read mark is a position in the log, so the unread ones are
// the newest: the newest n targeted notices of a category, and the newest
// b broadcast ones.
'use strict';

// eslint-disable-next-line no-unused-vars
function noticeCentre({ $, el, str, api, timeLabel, banner }) {
  let notices = []; // newest first, as the API lists them
  let unread = { notices: {}, broadcast: 0 };
  let loading = null;
  let again = false;
  let timer = 0;

  function category(t) {
    return t === 0 ? 'General' : `Category ${t}`;
  }

  // unreadIDs picks the unread notices out of the list (see above).
  function unreadIDs() {
    const left = { ...unread.notices };
    let bc = unread.broadcast || 0;
    const ids = new Set();
    for (const n of notices) {
      if (n.broadcast) {
        if (bc > 0) {
          ids.add(n.msgid);
          bc--;
        }
      } else if ((left[n.msgtype] || 0) > 0) {
        ids.add(n.msgid);
        left[n.msgtype]--;
      }
    }
    return ids;
  }

  function render() {
    const ids = unreadIDs();
    const groups = new Map(); // msgtype -> notices, in order of their newest
    for (const n of notices) {
      if (!groups.has(n.msgtype)) groups.set(n.msgtype, []);
      groups.get(n.msgtype).push(n);
    }
    const box = $('notice-groups');
    box.replaceChildren();
    for (const [t, list] of groups) {
      const g = el('section', 'notice-group');
      g.dataset.msgtype = String(t);
      const count = list.filter((n) => ids.has(n.msgid)).length;
      const head = el('h2', 'notice-group-head');
      const badge = el('span', 'badge notice-count', String(count));
      badge.hidden = count === 0;
      head.append(el('span', 'notice-cat', category(t)), badge);
      const ul = el('ul', 'notices');
      for (const n of list) {
        const li = el('li', ids.has(n.msgid) ? 'notice unread' : 'notice');
        li.dataset.msgid = n.msgid;
        const meta = [timeLabel(n.ts || n.time), n.broadcast ? 'to everyone' : '', n.event].filter(Boolean).join(' · ');
        li.append(el('div', 'notice-text', n.ct), el('div', 'notice-meta muted', meta));
        ul.append(li);
      }
      g.append(head, ul);
      box.append(g);
    }
    $('no-notices').hidden = notices.length > 0;
    const total = ids.size;
    $('notices-badge').textContent = String(total);
    $('notices-badge').hidden = total === 0;
    $('notices-read').disabled = total === 0;
  }

  async function load() {
    if (loading) {
      again = true;
      return loading;
    }
    loading = (async () => {
      try {
        const [list, u] = await Promise.all([api('GET', '/notices'), api('GET', '/unread')]);
        notices = (list.notices || []).map((n) => ({
          msgid: str(n.msgid),
          ct: str(n.ct),
          msgtype: Number.isSafeInteger(n.msgtype) ? n.msgtype : 0,
          event: str(n.event),
          ts: n.ts,
          time: n.time,
          broadcast: !!n.broadcast,
        }));
        unread = { notices: (u && u.notices) || {}, broadcast: (u && u.broadcast) || 0 };
        render();
      } catch (e) {
        console.warn('inboxmq: could not load notices:', e.message);
      }
    })();
    await loading;
    loading = null;
    if (again) {
      again = false;
      load();
    }
  }

  function refreshSoon() {
    clearTimeout(timer);
    timer = setTimeout(load, 200);
  }

  async function markAllRead() {
    if (!notices.length) return;
    try {
      await api('POST', '/notices/read', { msgid: notices[0].msgid });
    } catch (e) {
      banner(`Could not mark notices read: ${e.message}`, { kind: 'error', label: 'Error' });
    }
    await load();
  }

  function toggle(open) {
    $('notice-pane').hidden = !open;
    $('notices-toggle').setAttribute('aria-expanded', String(open));
    if (open) load();
  }

  function clear() {
    clearTimeout(timer);
    notices = [];
    unread = { notices: {}, broadcast: 0 };
    toggle(false);
    render();
  }

  $('notices-toggle').addEventListener('click', () => toggle($('notice-pane').hidden));
  $('notices-close').addEventListener('click', () => toggle(false));
  $('notices-read').addEventListener('click', markAllRead);

  return { load, refreshSoon, clear };
}
