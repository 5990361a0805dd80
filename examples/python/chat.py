#!/usr/bin/env python3
"""An inboxmq chat client with paho-mqtt (docs/clients.md).

Run by examples/examples_test.go against a real broker.

    python3 chat.py listen UID [COUNT]    print inbox messages; exit after COUNT (default: never)
    python3 chat.py send UID PEER TEXT    send TEXT to PEER, print the new message's id

Environment: INBOXMQ_HOST (127.0.0.1), INBOXMQ_PORT (1883) and
INBOXMQ_JWT_SECRET, which this demo uses to mint its own token: a real app
gets its token from its back-end and never holds the secret.

Works with paho-mqtt 1.6 (Debian 12's python3-paho-mqtt) and 2.x.
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def mint_token(secret, uid, nickname="", ttl_seconds=3600):
    """The back-end's job: an HS256 JWT whose sub is the uid."""
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": uid, "iat": now, "exp": now + ttl_seconds, "nickname": nickname}
    body = header + "." + b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    return body + "." + b64(sig)


def main(argv):
    if len(argv) < 2 or argv[0] not in ("listen", "send") or (argv[0] == "send" and len(argv) < 4):
        print("usage: chat.py listen UID [COUNT] | send UID PEER TEXT", file=sys.stderr)
        return 2
    mode, uid = argv[0], argv[1]
    secret = os.environ.get("INBOXMQ_JWT_SECRET")
    if not secret:
        print("INBOXMQ_JWT_SECRET is not set", file=sys.stderr)
        return 2
    wanted = int(argv[2]) if mode == "listen" and len(argv) > 2 else -1
    cid = str(uuid.uuid4())
    state = {"started": False, "exit": 0}

    # One client id per device: reconnecting with it resumes the session.
    client_id = uid + ("/python" if mode == "listen" else "/python-send")
    if hasattr(mqtt, "CallbackAPIVersion"):  # paho-mqtt 2.x
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    else:  # paho-mqtt 1.x
        client = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(uid, mint_token(secret, uid, "python-" + uid))
    client.reconnect_delay_set(min_delay=1, max_delay=30)

    def stop(code):
        state["exit"] = code
        client.disconnect()

    def on_connect(client, userdata, flags, reason_code, properties):
        if reason_code != 0:
            print("connect refused: %s" % reason_code, file=sys.stderr)
            return
        present = flags["session present"] if isinstance(flags, dict) else flags.session_present
        if state["started"] and present:
            return  # a reconnect: the persistent session kept the subscription
        client.subscribe("inbox/" + uid, qos=1)

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        if state["started"]:
            return  # subscribed again after the session expired
        state["started"] = True
        if mode == "listen":
            print("ready", flush=True)
            return
        request = {"uid": argv[2], "msg": argv[3], "cid": cid}
        client.publish("im/sendmsg", json.dumps(request), qos=1)

    def on_disconnect(client, userdata, *args):
        # paho reconnects by itself; a connection never outlives its token's
        # exp, so give it a fresh one first.
        client.username_pw_set(uid, mint_token(secret, uid, "python-" + uid))

    def on_message(client, userdata, msg):
        env = json.loads(msg.payload)
        method = env.get("_method_")
        if method == "SendMsg" and mode == "listen":
            print("message %s from %s: %s" % (env["msgid"], env["uid"], env["ct"]), flush=True)
            state["wanted"] = state.get("wanted", wanted) - 1
            if state["wanted"] == 0:
                stop(0)
        elif method == "MsgSent" and mode == "send" and env.get("cid") == cid:
            # paho-mqtt 1.6 does not pass the PUBACK's properties (its msgid
            # user property) to on_publish; MsgSent carries the same id.
            print("sent %s" % env["msgid"], flush=True)
            stop(0)
        elif method == "Error":  # a refused request: do not resend it unchanged
            print("error %s: %s" % (env.get("code"), env.get("detail")), flush=True)
            if mode == "send":
                stop(1)
        elif method == "Logout":  # logged in elsewhere, or kicked: stop, do not reconnect
            print("logout: %s" % env.get("reason"), flush=True)
            stop(0)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_disconnect = on_disconnect
    client.on_message = on_message

    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 7 * 24 * 3600  # a persistent session
    client.connect(os.environ.get("INBOXMQ_HOST", "127.0.0.1"), int(os.environ.get("INBOXMQ_PORT", "1883")),
                   keepalive=60, clean_start=False, properties=props)
    client.loop_forever(retry_first_connection=False)
    return state["exit"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
