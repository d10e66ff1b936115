/**
 * The run list: every combination of the variables' values (the cartesian product, in
 * declaration order, the last variable changing fastest, as mpf builds it), repeated
 * `repetitions` times, then
 *
 *   shuffled     (default) a Fisher-Yates shuffle driven by the seed: the same order on every
 *                invocation with the same seed, so a resumed experiment continues the same
 *                list; and a slow drift of the machine (heat, other load) spreads over all
 *                combinations instead of biasing the last ones;
 *   sequential   repetition 1 of every combination, then repetition 2, ...: the fewest lab
 *                changes, for debugging an experiment.
 */
import { seededRandom, type TomlValue } from '@dune/topology';
import type { Experiment, Order } from './spec.js';

export type Values = Record<string, TomlValue>;

export interface PlannedRun {
  /** Position in the combination list (0-based, declaration order). */
  combination: number;
  /** 1-based. */
  repetition: number;
  values: Values;
  /** Identity across invocations: the values and the repetition. */
  key: string;
}

export function combinations(vars: readonly { name: string; values: readonly TomlValue[] }[]): Values[] {
  let out: Values[] = [{}];
  for (const v of vars) {
    const next: Values[] = [];
    for (const partial of out) for (const value of v.values) next.push({ ...partial, [v.name]: value });
    out = next;
  }
  return out;
}

/** A run's identity: independent of the order of the list and of the other runs. */
export function runKey(values: Values, repetition: number): string {
  const names = Object.keys(values).sort();
  return `${names.map((n) => `${n}=${JSON.stringify(values[n])}`).join(',')}#${repetition}`;
}

export function combinationKey(values: Values): string {
  return runKey(values, 0).replace(/#0$/, '');
}

export function planRuns(exp: Pick<Experiment, 'variables' | 'repetitions' | 'seed' | 'order'>): PlannedRun[] {
  const combos = combinations(exp.variables);
  const runs: PlannedRun[] = [];
  for (let rep = 1; rep <= exp.repetitions; rep++) {
    combos.forEach((values, combination) => runs.push({ combination, repetition: rep, values, key: runKey(values, rep) }));
  }
  return order(runs, exp.order, exp.seed);
}

function order<T>(xs: T[], how: Order, seed: number): T[] {
  if (how === 'sequential') return xs;
  const rnd = seededRandom(seed);
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}
