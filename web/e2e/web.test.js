// End-to-end tests of the web client: the real binary, headless Chromium,
// two or more browser contexts per test (one per user or device).
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import mqtt from 'mqtt';
import {
  ADMIN_PASSWORD,
  apiGet,
  artifacts,
  devToken,
  freePort,
  launchBrowser,
  mosquittoPub,
  openPage,
  resetArtifacts,
  shot,
  signIn,
  startBroker,
  texts,
  until,
} from './harness.js';
import { vendoredBundle, vendoredPath } from './vendor.js';

let broker;
let browser;
const contexts = [];

before(async () => {
  resetArtifacts();
  broker = await startBroker();
  browser = await launchBrowser();
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  if (broker) {
    // The broker's log beside the screenshots, for when a test failed.
    writeFileSync(join(artifacts, 'broker.log'), broker.log());
    await broker.stop();
  }
});

// user signs in and registers the context for cleanup.
async function user(uid, options) {
  const u = await signIn(browser, broker.url, uid, options);
  contexts.push(u.context);
  return u;
}

function noErrors(...users) {
  for (const u of users) assert.deepEqual(u.errors, [], `page errors of ${u.uid}`);
}

async function openChat(u, peer) {
  const conv = u.page.locator(`#conversations li[data-peer="${peer}"]`);
  if (await conv.count()) await conv.click();
  else {
    await u.page.fill('#new-peer', peer);
    await u.page.click('#new-chat button');
  }
  await u.page.waitForSelector('#chat-pane:not([hidden])');
}

async function send(u, text) {
  await u.page.fill('#text', text);
  await u.page.press('#text', 'Enter');
}

// waitMessage waits until the open conversation shows text, confirmed
// (with a msgid), and returns the msgid.
function waitMessage(u, text) {
  return until(
    u.page,
    (t) => {
      const li = [...document.querySelectorAll('#messages .msg[data-msgid]')].find((e) => e.querySelector('.bubble').textContent === t);
      return li && li.dataset.msgid;
    },
    text,
  );
}

function badge(u, peer) {
  return u.page.$eval(`#conversations li[data-peer="${peer}"]`, (li) => li.querySelector('.badge')?.textContent ?? '').catch(() => null);
}

test('the page is served with its security headers', async () => {
  const res = await fetch(broker.url);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
  const port = broker.websocket.split(':').pop();
  assert.match(res.headers.get('content-security-policy'), new RegExp(`connect-src 'self' ws://127\\.0\\.0\\.1:${port};`));
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
  const conf = await (await fetch(new URL('web-config.json', broker.url))).json();
  assert.deepEqual(conf, { websocket: { scheme: 'ws', port: Number(port), path: '/mqtt' }, dev_login: true });
});

test('vendored MQTT.js matches the pinned package', () => {
  assert.ok(readFileSync(vendoredPath, 'utf8') === vendoredBundle(), 'web/static/vendor/mqtt.min.js is stale: run "npm run vendor" in web/e2e');
});

test('two users sign in and chat both ways; a deleted message vanishes for both', { timeout: 60000 }, async () => {
  const alice = await user('20001');
  const bob = await user('20002');
  await shot(alice.page, 'chat-signed-in');

  await openChat(alice, '20002');
  await send(alice, 'Hello Bob, café at 10?');
  const m1 = await waitMessage(alice, 'Hello Bob, café at 10?');
  await shot(alice.page, 'chat-alice-sent');

  // Bob's list shows the conversation with one unread message.
  await until(bob.page, () => document.querySelector('#conversations li[data-peer="20001"] .badge')?.textContent === '1');
  await shot(bob.page, 'chat-bob-unread-badge');
  await openChat(bob, '20001');
  assert.equal(await waitMessage(bob, 'Hello Bob, café at 10?'), m1);
  await send(bob, 'Sure!\nSee you there.');
  const m2 = await waitMessage(bob, 'Sure!\nSee you there.');
  assert.equal(await waitMessage(alice, 'Sure!\nSee you there.'), m2);
  await send(alice, 'Great');
  await waitMessage(bob, 'Great');
  await shot(alice.page, 'chat-alice-conversation');
  await shot(bob.page, 'chat-bob-conversation');

  // Opening the conversation marked it read on the broker.
  const bobToken = await bob.page.evaluate(() => localStorage.getItem('inboxmq.token'));
  for (let i = 0; ; i++) {
    const unread = await apiGet(broker.url, bobToken, '/unread');
    if (!unread.peers['20001']) break;
    assert.ok(i < 50, `bob still has unread messages: ${JSON.stringify(unread)}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  // Alice deletes her first message: it vanishes on both screens.
  await alice.page.click(`#messages li[data-msgid="${m1}"] .bubble`);
  await shot(alice.page, 'chat-alice-delete-action');
  await alice.page.click(`#messages li[data-msgid="${m1}"] .delete`);
  await alice.page.waitForSelector(`#messages li[data-msgid="${m1}"]`, { state: 'detached' });
  await bob.page.waitForSelector(`#messages li[data-msgid="${m1}"]`, { state: 'detached' });
  assert.deepEqual(await texts(bob.page), ['Sure!\nSee you there.', 'Great']);
  await shot(bob.page, 'chat-bob-after-delete');

  // Back in the list: no badge, the last line is the newest message.
  await bob.page.click('#back');
  await until(bob.page, () => document.querySelector('#conversations li[data-peer="20001"] .conv-last')?.textContent === 'Great');
  assert.equal(await badge(bob, '20001'), '');
  await shot(bob.page, 'chat-bob-list');
  noErrors(alice, bob);
});

test('messages show the broker\'s time; an edit replaces the text on both pages', { timeout: 60000 }, async () => {
  const alice = await user('21001');
  const bob = await user('21002');
  await openChat(alice, '21002');
  await send(alice, 'teh plan');
  const m = await waitMessage(alice, 'teh plan');
  await openChat(bob, '21001');
  assert.equal(await waitMessage(bob, 'teh plan'), m);

  // Both pages show the time the broker stored (ts), not their own clocks.
  const aliceToken = await alice.page.evaluate(() => localStorage.getItem('inboxmq.token'));
  const history = await apiGet(broker.url, aliceToken, '/conversations/21002/messages');
  const stored = new Date(history.messages[0].ts).toISOString();
  for (const u of [alice, bob]) {
    assert.equal(await u.page.getAttribute(`#messages li[data-msgid="${m}"] time`, 'datetime'), stored, `time on ${u.uid}'s page`);
  }

  // Alice edits over the API: EditMsg reaches both open pages.
  const res = await fetch(new URL(`api/v1/messages/${m}`, broker.url), {
    method: 'PUT',
    headers: { Authorization: `Bearer ${aliceToken}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ msg: 'the plan' }),
  });
  assert.equal(res.status, 200, await res.text());
  for (const u of [alice, bob]) {
    await until(u.page, (id) => {
      const li = document.querySelector(`#messages li[data-msgid="${id}"]`);
      return li && li.querySelector('.bubble').textContent === 'the plan' && li.querySelector('.edited') !== null;
    }, m);
  }
  await shot(bob.page, 'chat-bob-edited');
  // A fresh load shows the edit from history.
  await bob.page.reload();
  await openChat(bob, '21001');
  await waitMessage(bob, 'the plan');
  await bob.page.waitForSelector(`#messages li[data-msgid="${m}"] .edited`);
  noErrors(alice, bob);
});

test('history scrolls back 50 messages at a time', { timeout: 60000 }, async () => {
  // 120 messages from 30001 to 30002, sent over MQTT before 30002 signs in
  // (so its first session also replays them all: the page must not double them).
  const token = await devToken(broker.url, '30001');
  const sender = await mqtt.connectAsync(`mqtt://${broker.mqtt}`, {
    protocolVersion: 5,
    clientId: '30001/seed',
    username: '30001',
    password: token,
    clean: true,
    reconnectPeriod: 0,
  });
  const want = [];
  for (let i = 1; i <= 120; i++) {
    const text = `history ${String(i).padStart(3, '0')}`;
    want.push(text);
    await sender.publishAsync('im/sendmsg', JSON.stringify({ uid: '30002', msg: text, cid: `seed-${i}` }), { qos: 1 });
  }
  await sender.endAsync();

  const reader = await user('30002');
  await until(reader.page, () => document.querySelector('#conversations li[data-peer="30001"] .badge')?.textContent === '99+');
  await shot(reader.page, 'history-unread-99plus');
  await openChat(reader, '30001');
  await until(reader.page, () => document.querySelectorAll('#messages .msg').length === 50 && !document.querySelector('#load-earlier').hidden);
  // Let the replayed live messages land: the view must stay at one page.
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(await texts(reader.page), want.slice(70));
  await shot(reader.page, 'history-page-1');

  // Scrolling to the top loads the next 50.
  await reader.page.locator('#scroller').evaluate((e) => e.scrollTo(0, 0));
  await until(reader.page, () => document.querySelectorAll('#messages .msg').length === 100);
  assert.deepEqual(await texts(reader.page), want.slice(20));
  // The reader stays where it was reading, not thrown to the top.
  assert.ok((await reader.page.locator('#scroller').evaluate((e) => e.scrollTop)) > 100);
  await shot(reader.page, 'history-page-2');

  // The button loads the last 20 (clicked where it is: scrolling to it
  // would load them by itself), and the start of the conversation shows.
  await reader.page.locator('#load-earlier').dispatchEvent('click');
  await until(reader.page, () => document.querySelectorAll('#messages .msg').length === 120);
  await reader.page.waitForSelector('#history-start:not([hidden])');
  assert.ok(await reader.page.locator('#load-earlier').isHidden());
  assert.deepEqual(await texts(reader.page), want);
  const ids = await reader.page.$$eval('#messages .msg', (els) => els.map((e) => e.dataset.msgid));
  assert.equal(new Set(ids).size, 120);
  await reader.page.locator('#scroller').evaluate((e) => e.scrollTo(0, 0));
  await shot(reader.page, 'history-start');
  noErrors(reader);
});

test('an admin notice sent with mosquitto_pub pops up as a banner', { timeout: 60000 }, async () => {
  const u = await user('40001');
  mosquittoPub(broker, 'im/systemadmin', JSON.stringify({ content: 'Maintenance tonight at 02:00, back by 02:15.' }));
  await u.page.locator('.banner', { hasText: 'Maintenance tonight at 02:00' }).waitFor();
  assert.equal(await u.page.locator('.banner .banner-label').first().textContent(), 'Notice to everyone');
  mosquittoPub(broker, 'im/systemadmin', JSON.stringify({ uid: 40001, content: 'Your order has shipped.', msgtype: 2 }));
  await u.page.locator('.banner', { hasText: 'Your order has shipped.' }).waitFor();
  await shot(u.page, 'notice-banners');
  // Banners hide by themselves.
  await u.page.locator('.banner').first().waitFor({ state: 'detached', timeout: 15000 });
  noErrors(u);
});

test('the notice centre lists notices by category with unread counts and marks them read', { timeout: 60000 }, async () => {
  const u = await user('40011');
  const token = await devToken(broker.url, '40011');
  // Notices to everyone from earlier tests are unread for a new user too.
  const before = (await apiGet(broker.url, token, '/unread')).broadcast;
  mosquittoPub(broker, 'im/systemadmin', JSON.stringify({ uid: 40011, content: 'Order 1 shipped', msgtype: 2, event: 'order' }));
  mosquittoPub(broker, 'im/systemadmin', JSON.stringify({ uid: 40011, content: 'Order 2 shipped', msgtype: 2, event: 'order' }));
  mosquittoPub(broker, 'im/systemadmin', JSON.stringify({ uid: 40011, content: 'New follower', msgtype: 5 }));
  // Live notices still pop up as banners, and the centre's badge counts them.
  await u.page.locator('.banner', { hasText: 'New follower' }).waitFor();
  await until(u.page, (n) => document.querySelector('#notices-badge').textContent === String(n) && !document.querySelector('#notices-badge').hidden, 3 + before);

  await u.page.click('#notices-toggle');
  await u.page.waitForSelector('#notice-pane:not([hidden])');
  // The categories of this test's notices (earlier tests' broadcasts are 0).
  const groups = () =>
    u.page.$$eval('#notice-groups .notice-group:is([data-msgtype="2"], [data-msgtype="5"])', (gs) =>
      gs.map((g) => ({
        msgtype: g.dataset.msgtype,
        label: g.querySelector('.notice-cat').textContent,
        unread: g.querySelector('.notice-count').hidden ? 0 : Number(g.querySelector('.notice-count').textContent),
        texts: [...g.querySelectorAll('.notice .notice-text')].map((e) => e.textContent),
        bold: g.querySelectorAll('.notice.unread').length,
      })),
    );
  await until(u.page, () => document.querySelectorAll('#notice-groups .notice-group:not([data-msgtype="0"]) .notice').length === 3);
  // Newest category first; within it, newest notice first.
  assert.deepEqual(await groups(), [
    { msgtype: '5', label: 'Category 5', unread: 1, texts: ['New follower'], bold: 1 },
    { msgtype: '2', label: 'Category 2', unread: 2, texts: ['Order 2 shipped', 'Order 1 shipped'], bold: 2 },
  ]);
  await shot(u.page, 'notice-centre-unread');

  await u.page.click('#notices-read');
  await until(u.page, () => document.querySelectorAll('#notice-groups .notice.unread').length === 0);
  assert.deepEqual(
    (await groups()).map((g) => [g.msgtype, g.unread, g.texts.length]),
    [['5', 0, 1], ['2', 0, 2]],
  );
  assert.equal(await u.page.locator('#notices-badge').isHidden(), true);
  // The broker agrees: nothing unread, so another device shows the same.
  const unread = await apiGet(broker.url, token, '/unread');
  assert.deepEqual(unread.notices, {});
  assert.equal(unread.total, 0);
  await shot(u.page, 'notice-centre-read');

  // A new notice after the mark is unread again, in its category only.
  mosquittoPub(broker, 'im/systemadmin', JSON.stringify({ uid: 40011, content: 'Order 3 shipped', msgtype: 2 }));
  await until(u.page, () => document.querySelectorAll('#notice-groups .notice-group:not([data-msgtype="0"]) .notice').length === 4);
  await until(u.page, () => document.querySelector('.notice-group[data-msgtype="2"] .notice-count').textContent === '1');
  assert.equal(await u.page.locator('.notice-group[data-msgtype="5"] .notice-count').isHidden(), true);
  noErrors(u);
});

test('reconnects after the network drops, without losing or doubling messages', { timeout: 90000 }, async () => {
  // Carol's WebSocket goes through a route the test can cut, like a
  // dropped network: both sides closed, new connections refused.
  const links = [];
  let down = false;
  let refused = 0;
  const carol = await user('50001', {
    route: (page) =>
      page.routeWebSocket(/\/mqtt$/, (ws) => {
        if (down) {
          refused++;
          ws.close({ code: 1011, reason: 'network down' });
          return;
        }
        links.push({ page: ws, server: ws.connectToServer() });
      }),
  });
  const dave = await user('50002');
  const drop = async () => {
    down = true;
    refused = 0;
    await carol.context.setOffline(true);
    for (const l of links.splice(0)) {
      await l.server.close().catch(() => {});
      await l.page.close().catch(() => {});
    }
    await carol.page.waitForSelector('#status:not([data-state="online"])');
  };
  const restore = async () => {
    // Stay down until the page has tried to come back at least once.
    for (let i = 0; refused === 0; i++) {
      assert.ok(i < 100, 'the page did not try to reconnect');
      await new Promise((r) => setTimeout(r, 100));
    }
    down = false;
    await carol.context.setOffline(false);
    await carol.page.waitForSelector('#status[data-state="online"]', { timeout: 20000 });
  };

  await openChat(carol, '50002');
  await send(carol, 'before 1');
  await waitMessage(carol, 'before 1');
  await openChat(dave, '50001');
  await waitMessage(dave, 'before 1');
  await send(dave, 'before 2');
  await waitMessage(carol, 'before 2');

  await drop();
  for (let i = 1; i <= 5; i++) {
    await send(dave, `while away ${i}`);
    await waitMessage(dave, `while away ${i}`);
  }
  await send(carol, 'written offline');
  await carol.page.waitForSelector('#messages .msg.pending');
  await shot(carol.page, 'reconnect-offline');

  await restore();
  await waitMessage(carol, 'while away 5');
  await waitMessage(carol, 'written offline');
  await waitMessage(dave, 'written offline');
  await shot(carol.page, 'reconnect-back-online');

  // Drop again in the middle of a burst, and come back.
  const burst = [];
  for (let i = 1; i <= 10; i++) burst.push(`burst ${i}`);
  const sending = (async () => {
    for (const t of burst) {
      await send(dave, t);
      await waitMessage(dave, t);
    }
  })();
  await new Promise((r) => setTimeout(r, 150));
  await drop();
  await sending;
  await restore();
  await waitMessage(carol, 'burst 10');
  await new Promise((r) => setTimeout(r, 500));

  const all = ['before 1', 'before 2', 'while away 1', 'while away 2', 'while away 3', 'while away 4', 'while away 5', 'written offline', ...burst];
  assert.deepEqual(await texts(carol.page), all);
  assert.deepEqual(await texts(dave.page), all);
  assert.equal(await carol.page.locator('#messages .msg.pending, #messages .msg.failed').count(), 0);
  await shot(carol.page, 'reconnect-no-loss-no-doubles');
  // Offline fetches and refused sockets are logged by Chromium as errors:
  // expected here; nothing else is.
  const unexpected = carol.errors.filter((e) => !/ERR_INTERNET_DISCONNECTED|WebSocket|network down|Failed to fetch/i.test(e));
  assert.deepEqual(unexpected, []);
  noErrors(dave);
});

test('a second login of the same user shows "logged in elsewhere" on the first', { timeout: 60000 }, async () => {
  const first = await user('60001');
  await shot(first.page, 'elsewhere-first-login');
  const second = await user('60001');
  await first.page.waitForSelector('#screen-elsewhere:not([hidden])');
  assert.match(await first.page.locator('#screen-elsewhere h1').textContent(), /Logged in elsewhere/);
  await shot(first.page, 'elsewhere-first-logged-out');
  // The first page stopped: the second keeps its connection.
  await new Promise((r) => setTimeout(r, 4000));
  assert.equal(await second.page.getAttribute('#status', 'data-state'), 'online');
  assert.ok(await first.page.locator('#screen-elsewhere').isVisible());
  await shot(second.page, 'elsewhere-second-online');

  // "Use it here" takes the account back; now the second page stops.
  await first.page.click('#resume');
  await first.page.waitForSelector('#status[data-state="online"]');
  await second.page.waitForSelector('#screen-elsewhere:not([hidden])');

  // An operator's kick (the admin API, on the admin listener) says why instead.
  const kick = await fetch(new URL('api/v1/kick', broker.adminUrl), {
    method: 'POST',
    headers: { Authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` },
    body: JSON.stringify({ uid: '60001', reason: 'account under review' }),
  });
  assert.equal(kick.status, 200);
  await first.page.locator('#elsewhere-reason', { hasText: 'account under review' }).waitFor();
  assert.equal(await first.page.locator('#elsewhere-title').textContent(), 'Signed out by the server');
  await shot(first.page, 'elsewhere-kicked');
  noErrors(first, second);
});

test('the admin API is on the admin listener only: the page\'s listener answers 404', { timeout: 30000 }, async () => {
  const auth = { Authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}` };
  const online = (base) => fetch(new URL('api/v1/online?uid=60001', base), { headers: auth });
  assert.equal((await online(broker.url)).status, 404);
  assert.equal((await fetch(new URL('metrics', broker.url))).status, 404);
  assert.equal((await online(broker.adminUrl)).status, 200);
  assert.match(await (await fetch(new URL('metrics', broker.adminUrl))).text(), /^inboxmq_connections /m);
});

// web.mqtt_url: behind a reverse proxy the page cannot guess the public
// WebSocket address, so it uses the configured one as given. The page is
// loaded from 127.0.0.1 and told ws://localhost:PORT/mqtt: it connects to
// exactly that (built from its own host it would be ws://127.0.0.1:PORT/mqtt).
test('web.mqtt_url: the page connects to the configured WebSocket URL as given', { timeout: 60000 }, async () => {
  const port = await freePort();
  const mqttURL = `ws://localhost:${port}/mqtt`;
  const proxied = await startBroker({ websocket: `127.0.0.1:${port}`, mqttURL });
  try {
    const sockets = [];
    const u = await signIn(browser, proxied.url, '61001', { route: (page) => page.on('websocket', (ws) => sockets.push(ws.url())) });
    contexts.push(u.context);
    assert.deepEqual(sockets, [mqttURL]);
    assert.deepEqual(await (await fetch(new URL('web-config.json', proxied.url))).json(), { websocket: { url: mqttURL }, dev_login: true });
    await shot(u.page, 'mqtt-url-online');
    noErrors(u);
    // Without it, the page builds the URL from its host and the listener's port.
    const plain = [];
    const v = await signIn(browser, broker.url, '61002', { route: (page) => page.on('websocket', (ws) => plain.push(ws.url())) });
    contexts.push(v.context);
    assert.deepEqual(plain, [`ws://127.0.0.1:${broker.websocket.split(':').pop()}/mqtt`]);
  } finally {
    await proxied.stop();
  }
});

test('the sign-in screen refuses a bad token and offers the dev login', { timeout: 30000 }, async () => {
  const u = await openPage(browser, broker.url);
  contexts.push(u.context);
  await u.page.waitForSelector('#dev-form:not([hidden])');
  await shot(u.page, 'signin');
  await u.page.fill('#token', 'not-a-token');
  await u.page.click('#token-form button');
  await u.page.waitForSelector('#login-error:not([hidden])');
  // A well-formed token signed with another secret: the broker refuses it.
  const forged = [{ alg: 'HS256', typ: 'JWT' }, { sub: '70001', exp: Math.floor(Date.now() / 1000) + 3600 }]
    .map((p) => Buffer.from(JSON.stringify(p)).toString('base64url'))
    .join('.');
  await u.page.fill('#token', `${forged}.c2lnbmF0dXJl`);
  await u.page.click('#token-form button');
  await u.page.locator('#login-error', { hasText: 'refused' }).waitFor();
  await shot(u.page, 'signin-refused');
  assert.deepEqual(u.errors.filter((e) => !/WebSocket|401/.test(e)), []);
});
