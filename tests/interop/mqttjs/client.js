#!/usr/bin/env node
// A small MQTT.js command-line client driven by tests/interop/test_mqttjs.py.
//
// Every line it prints on stdout is one JSON object with an "event" field:
//   connected   {sessionPresent, reasonCode}
//   subscribed  {granted: [qos or reason code, ...]}
//   message     {topic, payload, payloadHex, qos, retain, dup, userProperties, topicAlias}
//   sent        {topic, topicAlias}  (pub: each PUBLISH as it went on the wire)
//   published   {count}
//   error       {message}
// Exit status: 0 on success, 1 on an error, 2 on timeout.
//
// Modes:
//   sub  --port P --topic T [--topic T2 ...] --qos Q --count N --protocol 4|5
//        [--client-id ID] [--no-clean] [--session-expiry S] [--topic-alias-max N]
//        [--timeout S]
//        Subscribe, print the first N messages, disconnect cleanly.
//        --topic-alias-max lets the broker send topic aliases (5.0).
//   pub  --port P --topic T --message M [--message M2 ...] --qos Q --protocol 4|5
//        [--retain] [--user-property k=v ...] [--client-id ID] [--auto-alias]
//        Publish each message in order (waiting for its acknowledgement), disconnect.
//        --auto-alias makes MQTT.js assign topic aliases and reuse them (5.0).
//   will --port P --will-topic T --will-payload M --will-qos Q --protocol 4|5
//        [--will-retain] [--die destroy|exit|hang] [--client-id ID]
//        Connect with a will, then die without sending DISCONNECT: "destroy" destroys
//        the socket and exits, "exit" calls process.exit with the socket still open,
//        "hang" stays connected until killed by the caller.
'use strict';

const mqtt = require('mqtt');

const MULTI = new Set(['topic', 'message', 'user-property']);
const FLAGS = new Set(['retain', 'no-clean', 'will-retain', 'auto-alias']);

function parseArgs(argv) {
  const mode = argv[0];
  const opts = { topic: [], message: [], 'user-property': [] };
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) fail(`unexpected argument ${arg}`);
    const name = arg.slice(2);
    if (FLAGS.has(name)) {
      opts[name] = true;
      continue;
    }
    if (i + 1 >= argv.length) fail(`${arg} needs a value`);
    const value = argv[++i];
    if (MULTI.has(name)) opts[name].push(value);
    else opts[name] = value;
  }
  return { mode, opts };
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function fail(message, code = 1) {
  emit({ event: 'error', message: String(message) });
  process.exit(code);
}

function int(opts, name, fallback) {
  if (opts[name] === undefined) {
    if (fallback === undefined) fail(`--${name} is required`);
    return fallback;
  }
  const n = Number(opts[name]);
  if (!Number.isInteger(n)) fail(`--${name}: not an integer: ${opts[name]}`);
  return n;
}

function userProperties(list) {
  if (!list.length) return undefined;
  const props = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq < 0) fail(`--user-property needs key=value, got ${item}`);
    const key = item.slice(0, eq);
    const value = item.slice(eq + 1);
    if (props[key] === undefined) props[key] = value;
    else props[key] = [].concat(props[key], value);
  }
  return props;
}

function connect(opts, extra = {}) {
  const protocol = int(opts, 'protocol', 4);
  if (protocol !== 4 && protocol !== 5) fail(`--protocol must be 4 or 5, got ${protocol}`);
  const options = {
    host: opts.host || '127.0.0.1',
    port: int(opts, 'port'),
    protocolVersion: protocol,
    clientId: opts['client-id'] || `mqttjs-${process.pid}-${Date.now()}`,
    clean: !opts['no-clean'],
    keepalive: 30,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...extra,
  };
  if (protocol === 5) {
    const properties = {};
    if (opts['session-expiry'] !== undefined) {
      properties.sessionExpiryInterval = int(opts, 'session-expiry');
    }
    if (opts['topic-alias-max'] !== undefined) {
      properties.topicAliasMaximum = int(opts, 'topic-alias-max');
    }
    if (Object.keys(properties).length) options.properties = properties;
    if (opts['auto-alias']) options.autoAssignTopicAlias = true;
  }
  const client = mqtt.connect(options);
  client.on('error', (err) => fail(`client error: ${err.message}`));
  client.on('close', () => {
    if (!client.roostDone) fail('connection closed by the broker');
  });
  return client;
}

function finish(client) {
  client.roostDone = true;
  client.end(false, {}, () => process.exit(0));
}

function startTimer(opts) {
  const seconds = Number(opts.timeout || 10);
  setTimeout(() => fail(`timed out after ${seconds}s`, 2), seconds * 1000).unref();
}

function runSub(opts) {
  const topics = opts.topic;
  if (!topics.length) fail('--topic is required');
  const qos = int(opts, 'qos', 0);
  const count = int(opts, 'count', 1);
  const received = [];
  const client = connect(opts);
  client.on('message', (topic, payload, packet) => {
    const props = packet.properties || {};
    emit({
      event: 'message',
      topic,
      payload: payload.toString('utf8'),
      payloadHex: payload.toString('hex'),
      qos: packet.qos,
      retain: packet.retain,
      dup: packet.dup,
      userProperties: props.userProperties || null,
      topicAlias: props.topicAlias ?? null,
    });
    received.push(topic);
    if (received.length === count) finish(client);
  });
  client.on('connect', (connack) => {
    emit({ event: 'connected', sessionPresent: connack.sessionPresent,
           reasonCode: connack.reasonCode ?? connack.returnCode ?? 0 });
    client.subscribe(topics, { qos }, (err, granted) => {
      if (err) fail(`subscribe failed: ${err.message}`);
      emit({ event: 'subscribed', granted: granted.map((g) => g.qos) });
      if (count === 0) finish(client);
    });
  });
}

function runPub(opts) {
  const topics = opts.topic;
  if (topics.length !== 1) fail('exactly one --topic is required');
  const messages = opts.message.length ? opts.message : [''];
  const qos = int(opts, 'qos', 0);
  const publishOpts = { qos, retain: !!opts.retain };
  const props = userProperties(opts['user-property']);
  if (props) publishOpts.properties = { userProperties: props };
  const client = connect(opts);
  client.on('packetsend', (packet) => {
    if (packet.cmd !== 'publish') return;
    emit({ event: 'sent', topic: packet.topic,
           topicAlias: (packet.properties || {}).topicAlias ?? null });
  });
  client.on('connect', () => {
    let i = 0;
    const next = () => {
      if (i === messages.length) {
        emit({ event: 'published', count: messages.length });
        finish(client);
        return;
      }
      client.publish(topics[0], messages[i++], publishOpts, (err) => {
        if (err) fail(`publish failed: ${err.message}`);
        next();
      });
    };
    next();
  });
}

function runWill(opts) {
  if (!opts['will-topic']) fail('--will-topic is required');
  const die = opts.die || 'destroy';
  if (!['destroy', 'exit', 'hang'].includes(die)) fail(`--die: unknown mode ${die}`);
  const will = {
    topic: opts['will-topic'],
    payload: Buffer.from(opts['will-payload'] || '', 'utf8'),
    qos: int(opts, 'will-qos', 0),
    retain: !!opts['will-retain'],
  };
  const client = connect(opts, { will });
  client.on('connect', (connack) => {
    emit({ event: 'connected', sessionPresent: connack.sessionPresent,
           reasonCode: connack.reasonCode ?? connack.returnCode ?? 0 });
    if (die === 'hang') return;
    client.roostDone = true;
    if (die === 'destroy') {
      // Tear the TCP connection down with no DISCONNECT packet, then leave at once.
      client.stream.destroy();
      process.exit(0);
    }
    process.exit(0);  // "exit": the OS closes the socket for us
  });
}

const { mode, opts } = parseArgs(process.argv.slice(2));
startTimer(opts);
if (mode === 'sub') runSub(opts);
else if (mode === 'pub') runPub(opts);
else if (mode === 'will') runWill(opts);
else fail(`unknown mode ${mode}; use sub, pub or will`);
