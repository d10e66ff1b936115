/**
 * All the engine's randomness, in one place.
 *
 * One seed makes a run reproducible. Every (pipe, stage) pair draws from its own stream,
 * derived from the seed and the pair's name, so turning one stage on or off never shifts the
 * draws another stage sees: a run with `loss=1%` loses the same packets whether or not
 * `duplicate` is also set.
 *
 * Correlation is applied with a Gaussian copula: successive draws of a stream come from an
 * AR(1) Gaussian process z' = ρz + √(1-ρ²)ε mapped through Φ to a uniform. The marginal
 * distribution is therefore exactly uniform at every ρ, so a 1 % loss with 75 % correlation
 * still loses 1 % of packets, in bursts. (netem's `(1-ρ)u + ρ·last` does not keep the
 * marginal: its correlated loss rates come out lower than configured.)
 */

const TWO_32 = 4294967296;

/** splitmix32: spreads a 32-bit value; seeds the generators. */
function splitmix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  let z = x;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** FNV-1a of a string, 32 bits. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The seed of the stream `name` (e.g. "up/loss") under the run's seed. */
export function streamSeed(seed: number, name: string): number {
  return splitmix32((seed >>> 0) ^ splitmix32(fnv1a(name)));
}

/** A fresh seed for runs that were given none (reported, so the run can be replayed). */
export function randomSeed(): number {
  return Math.floor(Math.random() * TWO_32) >>> 0;
}

/**
 * sfc32 (Chris Doty-Humphrey's Small Fast Chaotic generator): 128 bits of state, passes
 * PractRand, and runs on 32-bit integer operations, which JavaScript does fast.
 */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = splitmix32(seed);
    this.b = splitmix32(this.a ^ 0x1b873593);
    this.c = splitmix32(this.b ^ 0xcc9e2d51);
    this.d = 1;
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in the open interval (0, 1): never exactly 0 or 1, so inverse CDFs stay finite. */
  uniform(): number {
    return (this.u32() + 0.5) / TWO_32;
  }
}

/**
 * One stage's stream: plain and correlated uniforms, and the standard normal.
 * A stage keeps one Draws for its whole life; its correlation state is part of it.
 */
export class Draws {
  private readonly rng: Rng;
  /** The AR(1) state of the correlated sequence, per purpose ("loss", "jitter", ...). */
  private readonly z = new Map<string, number>();

  constructor(seed: number) {
    this.rng = new Rng(seed);
  }

  uniform(): number {
    return this.rng.uniform();
  }

  /** true with probability `pct` / 100. */
  chance(pct: number): boolean {
    if (pct <= 0) return false;
    if (pct >= 100) return true;
    return this.rng.uniform() * 100 < pct;
  }

  normal(): number {
    return normInv(this.rng.uniform());
  }

  /**
   * A uniform in (0, 1) whose successive values (for this `purpose`) have correlation
   * `corrPct` / 100 in the Gaussian domain. With 0 it is a plain uniform.
   */
  correlatedUniform(purpose: string, corrPct: number): number {
    if (corrPct <= 0) return this.rng.uniform();
    const rho = Math.min(corrPct, 100) / 100;
    const prev = this.z.get(purpose) ?? this.normal();
    const z = rho * prev + Math.sqrt(1 - rho * rho) * this.normal();
    this.z.set(purpose, z);
    const u = normCdf(z);
    return Math.min(Math.max(u, Number.EPSILON), 1 - Number.EPSILON);
  }

  /** `chance` with correlation between successive outcomes, marginal probability unchanged. */
  correlatedChance(purpose: string, pct: number, corrPct: number): boolean {
    if (pct <= 0) return false;
    if (pct >= 100) return true;
    return this.correlatedUniform(purpose, corrPct) * 100 < pct;
  }
}

/** Φ⁻¹: Acklam's rational approximation (relative error below 1.15e-9). */
export function normInv(p: number): number {
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const pLow = 0.02425;
  let x: number;
  if (p < pLow) {
    const q = Math.sqrt(-2 * Math.log(p));
    x = (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  } else if (p <= 1 - pLow) {
    const q = p - 0.5;
    const r = q * q;
    x = ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
      (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
  } else {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    x = -(((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  return x;
}

/** Φ, via erfc: the series of erf near 0, Numerical Recipes' Chebyshev fit elsewhere (error < 1.2e-7). */
export function normCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

function erfc(x: number): number {
  const ax = Math.abs(x);
  if (ax < 0.5) {
    // erf(x) = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1))
    let term = x;
    let sum = x;
    const x2 = x * x;
    for (let n = 1; n < 30; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * sum;
  }
  const t = 1 / (1 + 0.5 * ax);
  const y =
    t *
    Math.exp(
      -ax * ax -
        1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? y : 2 - y;
}
