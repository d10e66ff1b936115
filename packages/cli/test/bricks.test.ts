import { describe, expect, test } from 'vitest';
import { parseRuleWords } from '../src/brick-commands.js';

describe('dune firewall --rule words', () => {
  test('key=value words become the topology rule table; lists split on commas', () => {
    expect(parseRuleWords('action=allow proto=tcp from=client dport=80,443,8000-8080 src=10.0.0.0/8 stateful=false name=web')).toEqual({
      action: 'allow', proto: 'tcp', from: 'client', dport: ['80', '443', '8000-8080'], src: ['10.0.0.0/8'], stateful: false, name: 'web',
    });
  });

  test('a word without = or a key given twice is refused with the fix', () => {
    expect(() => parseRuleWords('action=allow tcp')).toThrow('"tcp" in rule "action=allow tcp" is not key=value');
    expect(() => parseRuleWords('dport=80 dport=443')).toThrow('"dport" is given twice');
  });
});
