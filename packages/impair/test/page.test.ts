/**
 * The live page in headless Chromium (Debian's `chromium`, driven by playwright-core): it
 * loads, its charts move under traffic, and its form reaches the engine. No network access:
 * the browser talks to the server on loopback only.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImpairRuntime, startServer, type RunningServer } from '../src/index.js';
import { client, echoServer, sleep } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? '' : `(skipped: ${CHROMIUM} is absent; scripts/setup installs Debian's chromium)`;

type Context = import('playwright-core').BrowserContext;
type Page = import('playwright-core').Page;

describe.skipIf(skip !== '')(`live page in headless Chromium ${skip}`, () => {
  let rt: ImpairRuntime;
  let srv: RunningServer;
  let browser: Context;
  let page: Page;
  let profile: string;
  let stopTraffic = false;
  let traffic: Promise<void> = Promise.resolve();
  const cleanups: (() => Promise<unknown> | void)[] = [];

  beforeAll(async () => {
    const echo = await echoServer();
    cleanups.push(() => echo.close());
    rt = await ImpairRuntime.start({ level: 'user', transport: 'udp', port: echo.port, proxyPort: 0, seed: 3 });
    cleanups.push(() => rt.stop());
    srv = await startServer({ runtime: rt, port: 0, log: () => {} });
    cleanups.push(() => srv.close());
    const { chromium } = await import('playwright-core');
    profile = mkdtempSync(join(tmpdir(), 'impair-chromium-'));
    // A fresh profile (playwright passes it as --user-data-dir).
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync',
      ],
    });
    cleanups.push(() => browser.close(), () => rmSync(profile, { recursive: true, force: true }));
    page = await browser.newPage();
    // Traffic through the proxy for the whole test: 200 datagrams a second of 500 bytes.
    const c = await client(rt.proxy!.ports.get('127.0.0.1')!);
    cleanups.push(() => c.close());
    traffic = (async () => {
      while (!stopTraffic) {
        for (let i = 0; i < 10; i++) c.send(500);
        await sleep(50);
      }
    })();
  }, 60_000);

  afterAll(async () => {
    stopTraffic = true;
    await traffic;
    for (const c of cleanups.reverse()) await c();
  });

  it('loads, with the current parameters in its form', async () => {
    await page.goto(srv.url);
    await expect.poll(() => page.textContent('#status'), { timeout: 10_000 }).toMatch(/UDP proxy · seed 3/);
    expect(await page.inputValue('#up-delay')).toBe('0us');
    expect(await page.inputValue('#down-rate')).toBe('unlimited');
  });

  it('its charts move under traffic', async () => {
    const points = () => page.evaluate(() => {
      const charts = (globalThis as unknown as { impairCharts: Record<string, { draws: number; series: { points: [number, number][] }[] }> }).impairCharts;
      const t = charts.throughput!.series[0]!.points;
      return { draws: charts.latency!.draws, n: t.length, last: t.length ? t[t.length - 1]![1] : 0 };
    });
    const before = await points();
    await expect.poll(async () => (await points()).n, { timeout: 10_000 }).toBeGreaterThanOrEqual(before.n + 2);
    const after = await points();
    expect(after.draws).toBeGreaterThan(before.draws);
    // 200 datagrams/s of 528 bytes ≈ 0.84 Mbit/s through the up direction
    expect(after.last).toBeGreaterThan(300_000);
    expect(await page.textContent('#counters')).toMatch(/up\s+received \d+/);
  });

  it('every chart has readable ticks: distinct labels with units on y, clock times on x', async () => {
    type Tick = { value: number; label: string };
    const axes = () => page.evaluate(() => {
      const charts = (globalThis as unknown as { impairCharts: Record<string, { unit: string; yTicks: Tick[]; xTicks: Tick[] }> }).impairCharts;
      return Object.fromEntries(Object.entries(charts).map(([k, c]) => [k, { unit: c.unit, y: c.yTicks, x: c.xTicks }]));
    });
    await expect.poll(async () => Object.values(await axes()).every((a) => a.y.length >= 2), { timeout: 10_000 }).toBe(true);
    // Drops and queue stay at zero here (no loss, no rate): their axes are the ones that
    // used to read 0, 0, 1, 1, 1.
    const got = await axes();
    expect(Object.keys(got).sort()).toEqual(['drops', 'latency', 'queue', 'throughput']);
    for (const [name, a] of Object.entries(got)) {
      const labels = a.y.map((t) => t.label);
      expect(new Set(labels).size, `${name}: ${labels.join(', ')}`).toBe(labels.length);
      expect(labels[0]).toBe('0');
      const unit = name === 'latency' ? /(µs|ms|s)$/ : new RegExp(`\\d ?[kMG]?${a.unit.replace('/', '\\/')}$`);
      for (const l of labels.slice(1)) expect(l, `${name}: ${labels.join(', ')}`).toMatch(unit);
      // the numbers shown are the tick values (within the rounding of the label)
      expect(a.y.map((t) => t.value)).toEqual([...a.y.map((t) => t.value)].sort((x, y) => x - y));
      expect(a.x.length, `${name}: x ticks`).toBeGreaterThanOrEqual(3);
      for (const t of a.x) expect(t.label).toMatch(/^\d\d:\d\d:\d\d$/);
    }
    expect(got.drops!.y.map((t) => t.label)).toEqual(['0', '1 /s']);
    // ~0.84 Mbit/s offered: the top tick reads 1 Mbit/s, or 800 kbit/s when a busy machine
    // sent less in the window shown; either way a number with its SI prefix, never 840000 bit/s.
    expect(got.throughput!.y.at(-1)!.label).toMatch(/^(\d(\.\d)? Mbit|\d{3} kbit)\/s$/);
  });

  it('a form change reaches the engine; a bad one is refused with the reason', async () => {
    await page.fill('#up-delay', '42ms');
    await page.fill('#down-loss', '5%');
    await page.click('#apply');
    await expect.poll(() => page.textContent('#message')).toBe('applied');
    expect(rt.parameters.up.delayUs).toBe(42_000);
    expect(rt.parameters.down.lossPct).toBe(5);
    // the latency chart shows the new delay within a few seconds
    await expect.poll(
      () => page.evaluate(() => {
        const s = (globalThis as unknown as { impairCharts: Record<string, { series: { points: [number, number][] }[] }> }).impairCharts.latency!.series[0]!.points;
        return s.length ? s[s.length - 1]![1] : 0;
      }),
      { timeout: 10_000 },
    ).toBeGreaterThan(40);

    await page.fill('#up-rate', 'fast');
    await page.click('#apply');
    await expect.poll(() => page.textContent('#message')).toMatch(/up\.rate: "fast" is not a rate/);
    expect(rt.parameters.up.rateBitsPerSec).toBeUndefined();
    expect(rt.parameters.up.delayUs).toBe(42_000);
  });
});
