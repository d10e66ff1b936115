/**
 * `dune ui`'s server and page against a real lab, in headless Chromium (Debian's
 * `chromium`, driven by playwright-core): the page shows the lab's nodes and links, a click
 * cuts a link (the lab's status shows it down, a ping through it is lost) and repairs it,
 * changes a link's impairments and stops a node. The browser talks to 127.0.0.1 only.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, startUi, type UiServer } from '@dune/lab';

const CHROMIUM = '/usr/bin/chromium';
const isRoot = process.getuid?.() === 0;
const skip = !isRoot ? '(skipped: needs root for a real lab)' : !existsSync(CHROMIUM) ? `(skipped: ${CHROMIUM} is absent; scripts/setup installs Debian's chromium)` : '';

type Context = import('playwright-core').BrowserContext;
type Page = import('playwright-core').Page;

function raw(port: number, o: { method: string; path: string; host?: string; type?: string; body?: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: o.method, path: o.path, headers: { host: o.host ?? `127.0.0.1:${port}`, ...(o.type ? { 'content-type': o.type } : {}) } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

describe.skipIf(skip !== '')(`dune ui in headless Chromium against a real lab ${skip}`, () => {
  const lab = new Lab({ name: 'apiui' });
  const a = lab.node('a');
  const r = lab.node('r');
  const b = lab.node('b', { pinned: [{ cmd: 'sleep 1000' }] });
  lab.link(a, r);
  const rb = lab.link(r, b);
  let ui: UiServer;
  let browser: Context;
  let page: Page;
  let profile: string;

  const ping = async (): Promise<number> => {
    const res = await a.run(['ping', '-n', '-c', '2', '-i', '0.2', '-W', '1', b.address(4)]);
    return Number(/(\d+) received/.exec(res.stdout)?.[1] ?? NaN);
  };
  const endsUp = async (): Promise<(boolean | null)[]> => (await lab.status()).links.filter((l) => l.link.startsWith(`${rb.index}:`)).map((l) => l.up);

  beforeAll(async () => {
    await lab.up();
    ui = await startUi(lab.location as NonNullable<typeof lab.location>, { port: 0 });
    const { chromium } = await import('playwright-core');
    profile = mkdtempSync(join(tmpdir(), 'dune-ui-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    await ui?.close();
    await lab.down();
  }, 120_000);

  it('shows every node and link of the lab, and keeps polling', async () => {
    await page.goto(ui.url);
    await expect.poll(() => page.locator('#graph g.node').count(), { timeout: 10_000 }).toBe(3);
    const names = await page.locator('#graph g.node').evaluateAll((es) => es.map((e) => e.getAttribute('data-node')));
    expect(names.sort()).toEqual(['a', 'b', 'r']);
    expect(await page.locator('#graph g.link').count()).toBe(2);
    const polls = Number(await page.getAttribute('body', 'data-polls'));
    await expect.poll(async () => Number(await page.getAttribute('body', 'data-polls')), { timeout: 10_000 }).toBeGreaterThan(polls + 1);
  });

  it('a click takes a link down (status shows it down, ping is lost) and another brings it back', async () => {
    expect(await ping()).toBe(2);
    await page.locator(`#graph g.link[data-link="${rb.index}"] line.hit`).click();
    await expect.poll(() => page.textContent('#info h2')).toBe('link 1: r:eth1 — b:eth0');
    await page.click('#link-down');
    await expect.poll(endsUp, { timeout: 10_000 }).toEqual([false, false]);
    await expect.poll(() => page.textContent('#link-state'), { timeout: 10_000 }).toBe('CUT (down)');
    expect(await page.locator(`#graph g.link.cut[data-link="${rb.index}"]`).count()).toBe(1);
    expect(await ping()).toBe(0);

    await page.click('#link-up');
    await expect.poll(endsUp, { timeout: 10_000 }).toEqual([true, true]);
    await expect.poll(() => page.textContent('#link-state'), { timeout: 10_000 }).toBe('up');
    expect(await ping()).toBe(2);
  });

  it('the form changes a link\'s impairments live, and the page shows them', async () => {
    await page.fill('#impair-settings', 'loss=5% bw=10mbit');
    await page.click('#impair-apply');
    await expect.poll(async () => (await lab.status()).links.filter((l) => l.link.startsWith(`${rb.index}:`)).map((l) => l.impairment), { timeout: 10_000 })
      .toEqual([{ lossPct: 5, rateBitsPerSec: 10e6 }, { lossPct: 5, rateBitsPerSec: 10e6 }]);
    await expect.poll(() => page.textContent('#info table'), { timeout: 10_000 }).toContain('5% loss 10mbit');
    // The page polls status on its own clock: a poll may land between the two directions' changes
    // (label "r→b: …"), so wait for the poll after both.
    await expect.poll(() => page.textContent(`#graph g.link[data-link="${rb.index}"] text`), { timeout: 10_000 }).toBe('5% loss 10mbit');
  });

  it('a click on a node stops it and starts it again', async () => {
    await page.locator('#graph g.node[data-node="b"]').click();
    await page.click('#node-stop');
    await expect.poll(async () => (await lab.status()).nodes.find((n) => n.node === 'b')?.stopped, { timeout: 10_000 }).toBe(true);
    await expect.poll(() => page.textContent('#node-state'), { timeout: 10_000 }).toBe('stopped');
    expect((await lab.status()).processes.filter((p) => p.node === 'b')).toEqual([]);
    await page.click('#node-start');
    await expect.poll(async () => (await lab.status()).processes.filter((p) => p.node === 'b' && p.alive).length, { timeout: 10_000 }).toBe(1);
  });

  it('refuses another Host (DNS rebinding), a POST that is not JSON, and names a bad action', async () => {
    expect((await raw(ui.port, { method: 'GET', path: '/api/graph', host: 'evil.example:80' })).status).toBe(421);
    expect((await raw(ui.port, { method: 'POST', path: '/api/node', type: 'text/plain', body: '{"node":"b","action":"stop"}' })).status).toBe(415);
    const bad = await raw(ui.port, { method: 'POST', path: '/api/link', type: 'application/json', body: '{"index":1,"action":"cut"}' });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toEqual({ error: '"cut" is not a link action', hint: 'use down or up' });
    expect((await lab.status()).nodes.find((n) => n.node === 'b')?.stopped).toBe(false);
  });
});
