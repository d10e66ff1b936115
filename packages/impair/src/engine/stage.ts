/**
 * The contract of an impairment stage. Whoever adds the next one: read this first.
 *
 *   arrival ─> loss ─> duplicate ─> corrupt ─> queue/rate ─> trace ─> reorder ─> delay/jitter ─> (heap) ─> delivery
 *
 * - A stage is a table entry (`STAGES` in stages.ts) of three pure parts: `config` derives
 *   its configuration from a direction's parameters (undefined: the stage is off and costs
 *   nothing); `state` makes its per-pipe state; `process` handles one packet.
 * - Configuration is read-only and replaced whole when parameters change; state outlives
 *   such changes (a rate queue keeps draining, a Gilbert-Elliott chain keeps its state).
 * - `process` is called once per packet, in arrival order, never re-entered. It may change
 *   the packet's time `t` only forward (the time at which the packet leaves the stage), its
 *   `data` (corruption) and its flags; it returns undefined to pass the packet on or a
 *   DropCause to drop it. It may `emit` new packets (duplicates), which continue at the
 *   next stage as if they had arrived there.
 * - Randomness comes only from `ctx.draws`, the stage's own seeded stream (see random.ts):
 *   never Math.random, never the wall clock. Time comes only from `pkt.t`.
 * - O(1) amortised per packet and bounded memory per packet held; a stage never schedules
 *   anything itself: the pipe turns the final `t` into one heap entry.
 */
import type { Impairment } from '@dune/topology';
import type { Draws } from './random.js';

/** Why a packet was dropped. `loss` is the configured random loss; the rest are limits. */
export const DROP_CAUSES = ['loss', 'queue', 'overflow'] as const;
export type DropCause = (typeof DROP_CAUSES)[number];

export interface Packet {
  /** Engine-wide sequence number. */
  readonly id: number;
  /** Bytes the rate and the queue limit count: the IP packet's length. */
  size: number;
  /** The bytes a corruption may flip a bit in; null when the frontend cannot modify packets. */
  data: Buffer | null;
  /** First byte of `data` a corruption may touch (after the IP header in kernel mode). */
  corruptFrom: number;
  /** Engine time of arrival, µs. */
  readonly arrivedUs: number;
  /** Engine time at which the packet leaves the current stage, µs. */
  t: number;
  /** A duplicate the engine made (the frontend must send it, there is no original to release). */
  copy: boolean;
  corrupted: boolean;
  /** Sent without the delay (netem's reorder). */
  reordered: boolean;
  /** The frontend's handle (a proxy session, an NFQUEUE packet id, ...). */
  ref: unknown;
}

export interface StageContext {
  /** This stage's own random stream. */
  readonly draws: Draws;
  /** What the pipe holds right now (scheduled, not yet delivered). */
  readonly held: { readonly packets: number; readonly bytes: number };
  /** A new packet that continues at the next stage. */
  emit(pkt: Packet): void;
  /** A copy of `pkt` (its own id and bytes, `copy` set), for `emit`. */
  clone(pkt: Packet): Packet;
}

export interface StageDef<C, S> {
  /** What the stage does, for help text and docs. */
  readonly doc: string;
  /** `nowUs`: the engine time the parameters are set at (a trace starts then). */
  config(params: Impairment, nowUs: number): C | undefined;
  state(): S;
  process(pkt: Packet, cfg: C, st: S, ctx: StageContext): DropCause | undefined;
}

export function defineStage<C, S>(def: StageDef<C, S>): StageDef<C, S> {
  return def;
}
