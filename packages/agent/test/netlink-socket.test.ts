/**
 * NlSocket.sendInOrder: requests on several sockets, sent one by one in the given order by a
 * background sender. Unprivileged part: the bookkeeping (each request ACKed and drained, a
 * failure mapped to its request). Root part: the order across sockets is real (a setlink from
 * one namespace's socket of a device the request just before, on another socket, created).
 */
import { closeSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NLM_F_ACK, NLM_F_REQUEST } from '../src/netlink/constants.js';
import { getLink, newVeth, setLink } from '../src/netlink/link.js';
import { NlSocket, type OrderedRequest } from '../src/netlink/socket.js';
import { native } from '../src/native.js';
import { nsPath, openNsFd } from '../src/netns.js';
import { isRoot, nsList, ROOT_REASON, sh } from './helpers.js';

describe('NlSocket.sendInOrder', () => {
  it('sends every request, each ACKed, and maps a failure to its own request', () => {
    const a = NlSocket.open<string>(null, 'a');
    const b = NlSocket.open<string>(null, 'b');
    try {
      const get = (sock: NlSocket<string>, ref: string, index: number): OrderedRequest<string> => ({
        sock,
        ref,
        build: (w, seq) => getLink(w, seq, NLM_F_REQUEST, { index }),
      });
      // lo is ifindex 1 in every namespace; no link has index 0x7ffffff0.
      NlSocket.sendInOrder([get(a, 'a1', 1), get(b, 'b1', 1), get(a, 'a-missing', 0x7ffffff0), get(b, 'b2', 1)]);
      // A batch queued meanwhile goes out after them (the socket's own order is kept).
      a.queue('a2', (w, seq) => getLink(w, seq, NLM_F_REQUEST | NLM_F_ACK, { index: 1 }));
      a.drain();
      b.drain();
      expect(a.outstanding).toBe(0);
      expect(b.outstanding).toBe(0);
      expect(a.takeFailures().map((f) => [f.ref, f.ack.errno])).toEqual([['a-missing', 19]]);
      expect(b.takeFailures()).toEqual([]);
    } finally {
      a.close();
      b.close();
    }
  });

  it('refuses segment ends that do not rise within the buffer', () => {
    const n = native();
    expect(() => n.nlSendSeqAsync(Int32Array.of(0, 0), Buffer.alloc(8), Int32Array.of(8, 4))).toThrow(/ends must rise/);
    expect(() => n.nlSendSeqAsync(Int32Array.of(0), Buffer.alloc(8), Int32Array.of(16))).toThrow(/ends must rise/);
    expect(() => n.nlSendSeqAsync(Int32Array.of(0, 1), Buffer.alloc(8), Int32Array.of(8))).toThrow(/one end per fd/);
  });
});

const X = 'dune.dunetestseq.x';
const Y = 'dune.dunetestseq.y';

describe.skipIf(!isRoot)(`sendInOrder across namespaces (${ROOT_REASON})`, () => {
  beforeAll(() => {
    for (const n of [X, Y]) {
      sh(['ip', 'netns', 'del', n]);
      expect(sh(['ip', 'netns', 'add', n]).code).toBe(0);
    }
  });
  afterAll(() => {
    for (const n of [X, Y]) sh(['ip', 'netns', 'del', n]);
    expect(nsList('dune.dunetestseq.')).toEqual([]);
  });

  it('keeps the order across sockets: each peer is set up right after the request that made it', () => {
    const x = NlSocket.open<string>(nsPath(X), X);
    const y = NlSocket.open<string>(nsPath(Y), Y);
    const fds = { x: openNsFd(X), y: openNsFd(Y) };
    try {
      const reqs: OrderedRequest<string>[] = [];
      for (let i = 0; i < 40; i++) {
        // One socket makes a pair with its peer in the other namespace, whose socket then brings
        // that peer up by index; the roles swap every pair. Sent in any other order (each
        // socket's requests as one batch, say), a setlink finds no device (ENODEV).
        const [maker, taker, to] = i % 2 === 0 ? [x, y, fds.y] : [y, x, fds.x];
        reqs.push({ sock: maker, ref: `new ${i}`, build: (w, seq) => newVeth(w, seq, { name: `a${i}`, index: 100 + i, up: true }, { name: `b${i}`, index: 200 + i, nsFd: to }) });
        reqs.push({ sock: taker, ref: `up ${i}`, build: (w, seq) => setLink(w, seq, { index: 200 + i, up: true }) });
      }
      NlSocket.sendInOrder(reqs);
      x.drain();
      y.drain();
      expect([...x.takeFailures(), ...y.takeFailures()].map((f) => `${f.ref}: errno ${f.ack.errno}`)).toEqual([]);
      const up = { x: sh(['ip', '-n', X, '-o', 'link', 'show', 'up']).out, y: sh(['ip', '-n', Y, '-o', 'link', 'show', 'up']).out };
      for (let i = 0; i < 40; i++) expect(i % 2 === 0 ? up.y : up.x).toContain(` b${i}@`);
    } finally {
      closeSync(fds.x);
      closeSync(fds.y);
      x.close();
      y.close();
    }
  });
});
