/**
 * `serializePlan` in pieces. A big plan does not fit in one JavaScript string: 5,000 nodes
 * routed to 500 clients make ~5 M ops, ~600 MB of JSON, past V8's string limit (~512 MiB).
 * These chunks concatenate to exactly the bytes `serializePlan(plan, indent)` gives when it
 * can, so a writer can stream a plan of any size to a file, a pipe or an agent.
 */
import { canonicalJson as sortKeys, type Plan } from './plan.js';


/** JSON.stringify of a value nested `depth` levels deep, as JSON.stringify would indent it. */
function nested(v: unknown, indent: number, depth: number): string {
  const s = JSON.stringify(sortKeys(v), null, indent);
  return indent > 0 && depth > 0 ? s.replace(/\n/g, `\n${' '.repeat(indent * depth)}`) : s;
}

/** Yields the canonical JSON of `plan` in pieces of about `opsPerChunk` ops each. */
export function* serializePlanChunks(plan: Plan, indent = 0, opsPerChunk = 10_000): Generator<string> {
  const nl = (depth: number) => (indent > 0 ? `\n${' '.repeat(indent * depth)}` : '');
  const colon = indent > 0 ? ': ' : ':';
  const top = Object.keys(plan)
    .filter((k) => (plan as unknown as Record<string, unknown>)[k] !== undefined)
    .sort();
  yield '{';
  for (const [ti, key] of top.entries()) {
    yield `${ti > 0 ? ',' : ''}${nl(1)}${JSON.stringify(key)}${colon}`;
    if (key !== 'hosts') {
      yield nested((plan as unknown as Record<string, unknown>)[key], indent, 1);
      continue;
    }
    if (plan.hosts.length === 0) {
      yield '[]';
      continue;
    }
    yield '[';
    for (const [hi, host] of plan.hosts.entries()) {
      yield `${hi > 0 ? ',' : ''}${nl(2)}{`;
      const hostKeys = Object.keys(host)
        .filter((k) => (host as unknown as Record<string, unknown>)[k] !== undefined)
        .sort();
      for (const [ki, k] of hostKeys.entries()) {
        yield `${ki > 0 ? ',' : ''}${nl(3)}${JSON.stringify(k)}${colon}`;
        if (k !== 'ops') {
          yield nested((host as unknown as Record<string, unknown>)[k], indent, 3);
          continue;
        }
        if (host.ops.length === 0) {
          yield '[]';
          continue;
        }
        let chunk = '[';
        for (let i = 0; i < host.ops.length; i++) {
          chunk += `${i > 0 ? ',' : ''}${nl(4)}${nested(host.ops[i], indent, 4)}`;
          if ((i + 1) % opsPerChunk === 0) {
            yield chunk;
            chunk = '';
          }
        }
        yield `${chunk}${nl(3)}]`;
      }
      yield `${nl(2)}}`;
    }
    yield `${nl(1)}]`;
  }
  yield `${nl(0)}}\n`;
}
