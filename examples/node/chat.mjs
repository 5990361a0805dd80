// An inboxmq chat client with MQTT.js (docs/clients.md). Run by
// examples/examples_test.go against a real broker.
//
//   node chat.mjs listen UID [COUNT]     print inbox messages; exit after COUNT (default: never)
//   node chat.mjs send UID PEER TEXT     send TEXT to PEER, print the new message's id
//
// Environment: INBOXMQ_URL (default mqtt://127.0.0.1:1883) and
// INBOXMQ_JWT_SECRET, which this demo uses to mint its own token: a real
// app gets its token from its back-end and never holds the secret.
import { createHmac, randomUUID } from "node:crypto";
import mqtt from "mqtt";

// mintToken is the back-end's job: an HS256 JWT whose sub is the uid.
export function mintToken(secret, uid, nickname = "", ttlSeconds = 3600) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: uid, iat: now, exp: now + ttlSeconds, nickname })}`;
  const sig = createHmac("sha256", secret).update(body).digest("base64url");
  return `${body}.${sig}`;
}

const [mode, uid, ...rest] = process.argv.slice(2);
if (!["listen", "send"].includes(mode) || !uid || (mode === "send" && rest.length < 2)) {
  console.error("usage: node chat.mjs listen UID [COUNT] | send UID PEER TEXT");
  process.exit(2);
}
const secret = process.env.INBOXMQ_JWT_SECRET;
if (!secret) {
  console.error("INBOXMQ_JWT_SECRET is not set");
  process.exit(2);
}

const client = mqtt.connect(process.env.INBOXMQ_URL || "mqtt://127.0.0.1:1883", {
  protocolVersion: 5,
  // One client id per device: reconnecting with it resumes the session.
  clientId: mode === "listen" ? `${uid}/node` : `${uid}/node-send`,
  username: uid,
  password: mintToken(secret, uid, `node-${uid}`),
  clean: false, // a persistent session: what arrives while offline waits
  properties: { sessionExpiryInterval: 7 * 24 * 3600 },
  reconnectPeriod: 2000,
});

// Before each reconnect, fetch a fresh token: a connection never outlives
// its token's exp.
client.on("reconnect", () => {
  client.options.password = mintToken(secret, uid, `node-${uid}`);
});
client.on("error", (err) => console.error(`mqtt error: ${err.message}`));

// MQTT.js hands a publish's callback the publish, not the PUBACK: take the
// MQTT 5 PUBACK's user property msgid (the stored message's id) here.
const ackedIds = new Map(); // packet id -> msgid
client.on("packetreceive", (packet) => {
  if (packet.cmd === "puback" && packet.properties?.userProperties?.msgid) {
    ackedIds.set(packet.messageId, packet.properties.userProperties.msgid);
  }
});

function quit(code) {
  client.end(false, () => process.exit(code));
}

let wanted = mode === "listen" && rest[0] ? Number(rest[0]) : Infinity;

client.on("message", (topic, payload) => {
  const env = JSON.parse(payload.toString());
  switch (env._method_) {
    case "SendMsg":
      if (mode !== "listen") break;
      console.log(`message ${env.msgid} from ${env.uid}: ${env.ct}`);
      if (--wanted <= 0) quit(0);
      break;
    case "Error": // a refused request: do not resend it unchanged
      console.log(`error ${env.code}: ${env.detail}`);
      if (mode === "send") quit(1);
      break;
    case "Logout": // logged in elsewhere, or kicked: stop, do not reconnect
      console.log(`logout: ${env.reason}`);
      client.end(true, () => process.exit(0));
      break;
  }
});

let started = false;
client.on("connect", (connack) => {
  if (started) return; // a reconnect: the persistent session kept the subscription
  started = true;
  client.subscribe(`inbox/${uid}`, { qos: 1 }, (err) => {
    if (err) {
      console.error(`subscribe: ${err.message}`);
      process.exit(1);
    }
    if (mode === "listen") {
      console.log("ready");
      return;
    }
    const [peer, text] = rest;
    const request = { uid: peer, msg: text, cid: randomUUID() };
    client.publish("im/sendmsg", JSON.stringify(request), { qos: 1 }, (err, publish) => {
      if (err) return console.log(`refused: ${err.message}`); // the Error envelope says why and ends the program
      console.log(`sent ${ackedIds.get(publish.messageId)}`);
      ackedIds.delete(publish.messageId);
      quit(0);
    });
  });
});
