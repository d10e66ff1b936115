/**
 * A validator for the subset of OpenAPI v3 the CRDs use: type, properties, required, items,
 * enum, minimum, maximum, pattern, maxLength. Stricter than the API server on one point: a
 * field not in `properties` is an error here (the server would prune it silently), because
 * a generator that writes a field the schema does not know has a bug.
 */
export const SCHEMA_KEYWORDS = new Set(['type', 'description', 'properties', 'required', 'items', 'enum', 'minimum', 'maximum', 'pattern', 'maxLength']);

type S = Record<string, unknown>;

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

export function validate(value: unknown, schema: S, path = ''): string[] {
  const errs: string[] = [];
  const at = path === '' ? '<root>' : path;
  for (const k of Object.keys(schema)) if (!SCHEMA_KEYWORDS.has(k)) errs.push(`${at}: schema keyword "${k}" is outside the subset`);
  const t = schema['type'];
  const vt = typeOf(value);
  const typeOk = t === vt || (t === 'number' && vt === 'integer');
  if (!typeOk) return [...errs, `${at}: expected ${String(t)}, got ${vt}`];
  const en = schema['enum'] as unknown[] | undefined;
  if (en !== undefined && !en.includes(value)) errs.push(`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(en)}`);
  if (typeof value === 'number') {
    const min = schema['minimum'] as number | undefined;
    const max = schema['maximum'] as number | undefined;
    if (min !== undefined && value < min) errs.push(`${at}: ${value} < minimum ${min}`);
    if (max !== undefined && value > max) errs.push(`${at}: ${value} > maximum ${max}`);
  }
  if (typeof value === 'string') {
    const p = schema['pattern'] as string | undefined;
    if (p !== undefined && !new RegExp(p, 'u').test(value)) errs.push(`${at}: ${JSON.stringify(value)} does not match ${p}`);
    const ml = schema['maxLength'] as number | undefined;
    if (ml !== undefined && value.length > ml) errs.push(`${at}: longer than ${ml}`);
  }
  if (Array.isArray(value)) {
    const items = schema['items'] as S | undefined;
    if (items === undefined) errs.push(`${at}: array schema without items`);
    else value.forEach((x, i) => errs.push(...validate(x, items, `${path}[${i}]`)));
  }
  if (vt === 'object') {
    const o = value as Record<string, unknown>;
    const props = schema['properties'] as Record<string, S> | undefined;
    for (const r of (schema['required'] as string[] | undefined) ?? []) if (!(r in o)) errs.push(`${at}: missing required "${r}"`);
    if (props !== undefined) {
      for (const [k, v] of Object.entries(o)) {
        const ps = props[k];
        if (ps === undefined) errs.push(`${at}: unknown field "${k}"`);
        else errs.push(...validate(v, ps, path === '' ? k : `${path}.${k}`));
      }
    }
  }
  return errs;
}

/**
 * Structural-schema problems (apiextensions.k8s.io/v1): a node without `type`, an array
 * without `items`, a keyword outside the subset, `required` naming no property, an enum
 * value of the wrong type, a pattern that does not compile, an object without properties
 * anywhere but at `allowOpen` paths, and x-kubernetes-preserve-unknown-fields anywhere.
 */
export function structuralProblems(schema: S, allowOpen: ReadonlySet<string>, path = ''): string[] {
  const at = path === '' ? '<root>' : path;
  const errs: string[] = [];
  for (const k of Object.keys(schema)) if (!SCHEMA_KEYWORDS.has(k)) errs.push(`${at}: keyword "${k}"`);
  const t = schema['type'];
  if (typeof t !== 'string' || !['object', 'array', 'string', 'integer', 'number', 'boolean'].includes(t)) errs.push(`${at}: no valid type`);
  const en = schema['enum'] as unknown[] | undefined;
  if (en !== undefined) for (const v of en) if (validate(v, { type: t }).length > 0) errs.push(`${at}: enum value ${JSON.stringify(v)} is not a ${String(t)}`);
  if (typeof schema['pattern'] === 'string') {
    try {
      new RegExp(schema['pattern'], 'u');
    } catch {
      errs.push(`${at}: pattern does not compile`);
    }
    if (t !== 'string') errs.push(`${at}: pattern on a ${String(t)}`);
  }
  if ((schema['minimum'] !== undefined || schema['maximum'] !== undefined) && t !== 'integer' && t !== 'number') errs.push(`${at}: minimum/maximum on a ${String(t)}`);
  if (t === 'array') {
    const items = schema['items'] as S | undefined;
    if (items === undefined) errs.push(`${at}: array without items`);
    else errs.push(...structuralProblems(items, allowOpen, `${path}[]`));
  } else if (schema['items'] !== undefined) errs.push(`${at}: items on a ${String(t)}`);
  const props = schema['properties'] as Record<string, S> | undefined;
  if (t === 'object') {
    if (props === undefined && !allowOpen.has(path)) errs.push(`${at}: object without properties`);
    for (const r of (schema['required'] as string[] | undefined) ?? []) if (props === undefined || !(r in props)) errs.push(`${at}: required "${r}" is not a property`);
    for (const [k, v] of Object.entries(props ?? {})) errs.push(...structuralProblems(v, allowOpen, path === '' ? k : `${path}.${k}`));
  } else if (props !== undefined) errs.push(`${at}: properties on a ${String(t)}`);
  return errs;
}
