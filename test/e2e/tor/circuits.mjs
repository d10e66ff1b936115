// Run inside a client node: asks its tor, over the ControlPort (cookie authentication),
// for its circuits, and prints them as JSON: [{ id, status, purpose, hops: [nickname] }].
//   node circuits.mjs DATADIR [PORT]
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

const [dataDir, port = '9051'] = process.argv.slice(2);
const cookie = readFileSync(join(dataDir, 'control_auth_cookie')).toString('hex');
const sock = connect(Number(port), '127.0.0.1');
let buf = '';
sock.setEncoding('utf8');
sock.on('data', (d) => (buf += d));
sock.on('error', (e) => {
  process.stderr.write(`control port: ${e.message}\n`);
  process.exit(1);
});
sock.on('end', () => {
  if (/^[45]\d\d /m.test(buf)) {
    process.stderr.write(buf);
    process.exit(1);
  }
  const circuits = [];
  for (const line of buf.split(/\r?\n/)) {
    // "250+circuit-status=" then one circuit per line, or "250-circuit-status=<one circuit>"
    const m = /^(?:250-circuit-status=)?(\d+) (LAUNCHED|BUILT|GUARD_WAIT|EXTENDED|FAILED|CLOSED) (\S+)(.*)$/.exec(line);
    if (!m) continue;
    const hops = m[3].startsWith('$') ? m[3].split(',').map((h) => h.split(/[~=]/)[1] ?? h) : [];
    const purpose = /PURPOSE=(\S+)/.exec(m[4])?.[1] ?? '';
    circuits.push({ id: m[1], status: m[2], purpose, hops });
  }
  process.stdout.write(`${JSON.stringify(circuits)}\n`);
});
sock.write(`AUTHENTICATE ${cookie}\r\nGETINFO circuit-status\r\nQUIT\r\n`);
