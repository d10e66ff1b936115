import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it, test } from 'vitest';
import { Lab, type LabNode } from '@dune/lab';
import { compile, type NftOp } from '@dune/compiler';
import { parseDuneToml } from '@dune/topology';
import { firewallChange } from '../src/bricks.js';

const file = new URL('../../../test/e2e/bricks/firewall.toml', import.meta.url);
const plan = compile(parseDuneToml(readFileSync(file, 'utf8'), 'firewall.toml'), { readFile: () => Buffer.from('') });

describe('firewallChange: a running firewall\'s new rules, from its plan', () => {
  test('the same nft op as the compiler makes for the same rules, ports from the plan', () => {
    const compiled = plan.hosts[0]?.ops.find((o): o is NftOp => o.op === 'nft');
    const { op } = firewallChange(plan, 'fw', {
      policy: 'deny',
      rules: [
        { action: 'allow', proto: 'tcp', from: 'client', dport: 8080, name: 'web' },
        { action: 'allow', proto: 'icmp', from: 'client' },
        { action: 'deny', proto: 'udp', dport: '5000-5999', name: 'udp 5xxx' },
      ],
    });
    expect(op).toEqual(compiled);
  });

  test('every problem at once; a node that is no firewall is named as such', () => {
    expect(() => firewallChange(plan, 'fw', { rules: [{ action: 'alow' }, { action: 'allow', from: 'nobody' }] })).toThrow(
      'the rules of firewall "fw" are not valid: rules.0.action = "alow" is not an action (did you mean `allow`? Use one of: allow, deny); rules.1.from = "nobody" is not a neighbour of the firewall (client, server) (use one of: client, server)',
    );
    expect(() => firewallChange(plan, 'client', { rules: [] })).toThrow('node "client" of lab firewall is not a firewall');
    expect(() => firewallChange(plan, 'nope', { rules: [] })).toThrow('lab firewall has no node "nope"');
  });
});

const isRoot = process.getuid?.() === 0;

async function pings(from: LabNode, to: string, n: number): Promise<number> {
  const r = await from.run(['ping', '-n', '-c', String(n), '-i', '0.2', '-W', '1', to]);
  return Number(/(\d+) received/.exec(r.stdout)?.[1] ?? NaN);
}

describe.skipIf(!isRoot)(`a firewall built and changed through the API${isRoot ? '' : ' (needs root: namespaces, nftables)'}`, () => {
  const lab = new Lab({ name: 'apifw' });
  const a = lab.node('a');
  const b = lab.node('b');
  const fw = lab.node('fw', { kind: 'firewall', rules: [{ action: 'allow', proto: 'icmp', from: 'a' }] });
  lab.link(a, fw);
  lab.link(fw, b);

  afterAll(async () => {
    await lab.down();
    expect(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout).not.toContain('dune.apifw.');
  });

  it('passes what its rules allow, counts it, and takes new rules with LabNode.firewall()', async () => {
    await lab.up();
    expect(await pings(a, b.address(4), 2)).toBe(2);
    expect(await pings(b, a.address(4), 2)).toBe(0);
    const counted = (await lab.status()).counters ?? [];
    expect(counted.find((c) => c.node === 'fw' && c.name === 'rule0')?.packets).toBeGreaterThanOrEqual(1);

    const spec = await fw.firewall({ policy: 'deny', rules: [{ action: 'allow', proto: 'icmp', from: 'b', name: 'from b' }] });
    expect(spec.rules.map((r) => r.name)).toEqual(['from b']);
    expect(await pings(a, b.address(4), 2)).toBe(0);
    expect(await pings(b, a.address(4), 2)).toBe(2);
    const labels = ((await lab.status()).counters ?? []).filter((c) => c.node === 'fw').map((c) => c.label);
    expect(labels[0]).toBe('rule 1: from b');
    await expect(fw.firewall({ rules: [{ action: 'allow', proto: 'tcp', dport: 'http' }] })).rejects.toThrow('rules.0.dport = "http" is not a port or a range');
    await expect(a.firewall({ rules: [] })).rejects.toThrow('node "a" of lab apifw is not a firewall');
  });
});

describe.skipIf(!isRoot)(`device bricks built through the API (capture, tap)${isRoot ? '' : ' (needs root: namespaces, tcpdump, taps)'}`, () => {
  const dir = '/var/tmp/dune-api-capture';
  const lab = new Lab({ name: 'apidev' });
  const a = lab.node('a');
  const b = lab.node('b');
  const cap = lab.node('cap', { kind: 'capture', dir, files: 2, size_mb: 1, filter: 'icmp' });
  const vm = lab.node('vm', { kind: 'tap', name: 'tap7' });
  lab.link(a, cap);
  lab.link(cap, b);
  lab.link(b, vm);

  afterAll(async () => {
    await lab.down();
    expect(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout).not.toContain('dune.apidev.');
    spawnSync('rm', ['-rf', '--', dir]);
  });

  it('a capture brick records the pings crossing it; a tap brick holds a tap for a VM', async () => {
    spawnSync('rm', ['-rf', '--', dir]);
    await lab.up();
    expect(await pings(a, b.address(4), 3)).toBe(3);
    let lines: string[] = [];
    for (let i = 0; i < 50 && lines.filter((l) => l.includes('ICMP echo request')).length < 3; i++) {
      await new Promise((r) => setTimeout(r, 100));
      lines = spawnSync('tcpdump', ['-n', '-r', `${dir}/cap.pcap0`], { encoding: 'utf8' }).stdout.trim().split('\n');
    }
    expect(lines.filter((l) => l.includes('ICMP echo request')).length).toBeGreaterThanOrEqual(3);
    // The filter given through the API: nothing but ICMP.
    expect(lines.every((l) => l.includes('ICMP'))).toBe(true);
    expect((await vm.run(['ip', '-d', 'link', 'show', 'tap7'])).stdout).toMatch(/tun type tap/);
    const counted = (await lab.status()).counters ?? [];
    expect(counted.map((c) => `${c.node} ${c.name}`)).toEqual(expect.arrayContaining(['vm tap7_tx', 'vm tap7_rx']));
  }, 60_000);

  test('a key the brick does not have is an error naming its keys', async () => {
    const bad = new Lab({ name: 'apibad' });
    bad.link(bad.node('h'), bad.node('v', { kind: 'vtep', vni: 9, remote: '192.0.2.1', remote_port: 4789 }));
    await expect(bad.up()).rejects.toThrow(/"remote_port" is not a key of a vtep \(node "v"\); its keys are vni, remote, group, port, local, dev, ttl, mtu/);
  });
});
