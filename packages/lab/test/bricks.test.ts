import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
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
