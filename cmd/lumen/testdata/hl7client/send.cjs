// Sends HL7 v2 messages to an MLLP listener with node-hl7-client, one at a time, each
// after the acknowledgement of the one before, and prints one JSON line per
// acknowledgement: {"code": MSA-1, "control": MSA-2, "raw": the ACK}.
// Usage: node send.cjs HOST PORT FILE, FILE a JSON array of messages (segments
// separated by carriage returns).
'use strict';
const fs = require('fs');
const { Client, Message } = require('node-hl7-client');

const [host, port, file] = process.argv.slice(2);
const messages = JSON.parse(fs.readFileSync(file, 'utf8'));

const timer = setTimeout(() => { console.error('timed out'); process.exit(3); }, 30000);
const client = new Client({ host });
let waiting = null;
const conn = client.createConnection({ port: Number(port), waitAck: true, maxConnectionAttempts: 1 }, async (res) => {
  const m = res.getMessage();
  const out = { code: m.get('MSA.1').toString(), control: m.get('MSA.2').toString(), raw: m.toString() };
  if (waiting) { const w = waiting; waiting = null; w(out); }
});

conn.on('connect', async () => {
  try {
    for (const text of messages) {
      const ack = new Promise((resolve) => { waiting = resolve; });
      await conn.sendMessage(new Message({ text }));
      console.log(JSON.stringify(await ack));
    }
    clearTimeout(timer);
    await conn.close();
    process.exit(0);
  } catch (e) {
    console.error(String(e));
    process.exit(2);
  }
});
