#!/usr/bin/env node
// nemu's sample, with @dune/lab: three nodes, a router between them, ping, iperf3 through a
// rate limit, and tcpdump watching a link. Run it as root from the repository:
//
//   node examples/nemu-sample.mjs
//
//   a ──(10 Mbit/s, 5 ms)── r ──┐
//                               s (switch) ── b
import { Lab } from '@dune/lab';

const lab = new Lab({ name: 'nemu-sample' });
const a = lab.node('a');
const b = lab.node('b');
const r = lab.node('r');
const s = lab.switch('s');
const ar = lab.link(a, r, { latency: '5ms', bw: '10mbit' });
lab.link(b, s);
lab.link(r, s);

await lab.up();
console.log(`a is ${a.address(4)} and ${a.address(6)}, b is ${b.address(4)}`);

// tcpdump on r's side of the a–r link, for the first two ICMP packets.
const capture = await r.spawn(['tcpdump', '-l', '-n', '-c', '2', '-i', ar.ends[1].name, 'icmp']);
const seen = [];
capture.stdout.setEncoding('utf8').on('data', (d) => seen.push(d));
// tcpdump says on stderr when it listens.
await new Promise((res) => capture.stderr.setEncoding('utf8').on('data', (d) => d.includes('listening on') && res()));

const ping = await a.run(['ping', '-c', '3', b.address(4)]);
console.log(ping.stdout.trim().split('\n').at(-1));
console.log('tcpdump on r saw:');
await capture.wait();
console.log(seen.join('').trim());

// iperf3 through the 10 Mbit/s limit: the server as nobody, the client from a.
const server = await b.spawn(['iperf3', '-s', '-1'], { user: 'nobody' });
await new Promise((res) => setTimeout(res, 300));
const client = await a.run(['iperf3', '-c', b.address(4), '-t', '3', '-J']);
const mbps = JSON.parse(client.stdout).end.sum_received.bits_per_second / 1e6;
console.log(`iperf3 a → b: ${mbps.toFixed(2)} Mbit/s through a 10 Mbit/s link`);
await server.wait();

// Impairments change live; a link fails and comes back.
await ar.set({ loss: '100%' }, { from: a });
console.log(`with 100% loss from a: ping exit ${(await a.run(['ping', '-c', '1', '-W', '1', b.address(4)])).code}`);
await ar.set({ loss: null });
await ar.down();
console.log(`link a–r down: ping exit ${(await a.run(['ping', '-c', '1', '-W', '1', b.address(4)])).code}`);
await ar.up();
console.log(`link a–r up again: ping exit ${(await a.run(['ping', '-c', '1', '-W', '2', b.address(4)])).code}`);

await lab.down();
console.log('lab removed');
