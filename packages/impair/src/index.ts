/**
 * @dune/impair: the userspace impairment engine and its front ends.
 *
 *   engine/   the model: stages, one seeded random source, one scheduler, counters
 *   params    what people write → the model's Impairment per pipe, validated whole
 *   proxy/    UDP proxy front end (no root)
 *   kernel/   iptables NFQUEUE rules + nfnetlink_queue spoken over a netlink socket (root)
 *   server/   REST API, Prometheus metrics and the live page
 *   cli/      the impaired-network-* commands
 *   lab/      a lab's engine process: many namespaces, one queue per link direction, a control socket
 */
export * from './engine/clock.js';
export * from './engine/counters.js';
export * from './engine/engine.js';
export * from './engine/histogram.js';
export * from './engine/random.js';
export * from './engine/stage.js';
export * from './engine/stages.js';
export * from './params.js';
export * from './proxy/udp-proxy.js';
export * from './kernel/iptables.js';
export * from './kernel/nfnetlink-queue.js';
export * from './kernel/nfqueue.js';
export * from './runtime.js';
export * from './server/server.js';
export * from './server/views.js';
export * from './shell.js';
export * from './cli/options.js';
export * from './cli/main.js';
export * from './lab/protocol.js';
export * from './lab/rules.js';
export { nftApply, nftBatch, nftTableOf } from './lab/nft-rules.js';
export * from './lab/lab-engine.js';
export * from './lab/plane.js';
export { runPlaneWorker } from './lab/plane-worker.js';
export * from './lab/probe.js';
export * from './kernel/balance.js';
export * from './lab/control.js';
export * from './lab/main.js';
