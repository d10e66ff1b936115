import { spawnSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { compile, type CompileOptions } from '../src/index.js';
import { cmd, compileError, ops, pinned, TopoBuilder, userFiles } from './helpers.js';

function files(map: Record<string, string>): CompileOptions['readFile'] {
  return (path: string) => {
    const text = map[path];
    if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    return Buffer.from(text, 'utf8');
  };
}

const decode = (b64: string) => Buffer.from(b64, 'base64').toString('utf8');

describe('templates', () => {
  test('the node context: node, ifaces (DUNE 3.2 fields), ctx, lab, core_N', () => {
    const tmpl = [
      'node={{ node }} lab={{ lab }} rid={{ ctx.rid }} core0={{ core_0 }} core1={{ core_1 }}',
      '{% for name, i in ifaces | dictsort %}{{ name }}: idx={{ i.idx }} peer={{ i.peer }} mtu={{ i.mtu }} lat={{ i.latency }} bw={{ i.bandwidth }} metric={{ i.metric }} mac={{ i.mac }} addrs={{ i.addrs | join(",") }} first={{ i.ctx_addrs[0].prefix }}/{{ i.ctx_addrs[0].plen }}',
      '{% endfor %}lo={{ loopback.v4 }} {{ loopback.v6 }} cores={{ cores | join(",") }}',
    ].join('\n');
    const t = new TopoBuilder()
      .phynode('p', { cores: [[4, 5, 6]] })
      .node('r0', {
        ctx: { rid: '0.0.0.1' },
        templates: [{ src: 'ospf.cfg', dst: '/tmp/{{node}}.ospf.cfg' }],
        pinned: [pinned('holod', { CORE: '{{core_1}}' })],
      })
      .node('r1')
      .link('r0:eth0', 'r1:eth0', {
        mtu: 9000,
        a: { impairment: { delayUs: 5000, rateBitsPerSec: 1e11 }, metric: 7, mac: '02:00:00:00:00:01' },
      })
      .build();
    const plan = compile(t, { readFile: files({ '/topo/ospf.cfg': tmpl }) });
    const f = userFiles(plan);
    expect(f.map((o) => [o.node, o.path, o.mode])).toEqual([['r0', '/tmp/r0.ospf.cfg', 0o644]]);
    expect(decode(f[0]?.contentBase64 ?? '')).toBe(
      [
        'node=r0 lab=test rid=0.0.0.1 core0=4 core1=5',
        'eth0: idx=0 peer=r1:eth0 mtu=9000 lat=5ms bw=100gbit metric=7 mac=02:00:00:00:00:01 addrs=10.128.0.0/31,fd7a:de00::/127 first=10.128.0.0/31',
        'lo=10.0.0.1 fd7a:d0::1 cores=4,5',
      ].join('\n'),
    );
  });

  test('commands, environ values, post_up and pre_down are rendered; each process sees its own cores', () => {
    const t = new TopoBuilder()
      .phynode('p', { cores: [[1, 2, 3, 4]] })
      .node('r0', {
        exec: [cmd('ip -n x route show table {{ ctx.table }}')],
        ctx: { table: 100 },
        pinned: [
          pinned('bird -s /tmp/{{node}}.sk', { IO_QUIC_CORE_ID: '{{core_1}}', PLAIN: 'x' }, { postUp: [cmd('birdc -s /tmp/{{node}}.sk show status')], preDown: [cmd('echo bye {{node}}')], down: cmd('kill {{ core_0 }}') }),
          pinned('second', { C: '{{core_1}}' }),
        ],
      })
      .build();
    const plan = compile(t);
    expect(ops(plan, 'exec')).toEqual([{ op: 'exec', ns: 'dune.test.r0', node: 'r0', argv: ['ip', '-n', 'x', 'route', 'show', 'table', '100'] }]);
    expect(ops(plan, 'process')).toEqual([
      {
        op: 'process',
        ns: 'dune.test.r0',
        node: 'r0',
        name: 'r0.0',
        argv: ['bird', '-s', '/tmp/r0.sk'],
        env: { IO_QUIC_CORE_ID: '2', PLAIN: 'x' },
        cpus: [1, 2],
        postUp: [['birdc', '-s', '/tmp/r0.sk', 'show', 'status']],
        preDown: [['echo', 'bye', 'r0']],
        down: ['kill', '1'],
      },
      { op: 'process', ns: 'dune.test.r0', node: 'r0', name: 'r0.1', argv: ['second'], env: { C: '4' }, cpus: [3, 4], postUp: [], preDown: [] },
    ]);
  });

  test('binds are read through readFile, executable ones get 0755; include goes through readFile too', () => {
    const t = new TopoBuilder()
      .node('a', {
        binds: [
          { src: 'bin/tool', dst: '/opt/{{node}}/tool', exec: true },
          { src: '/abs/data.txt', dst: '/opt/data.txt', exec: false },
        ],
        templates: [{ src: 'main.j2', dst: '/etc/{{node}}.conf' }],
      })
      .build();
    const plan = compile(t, { readFile: files({ '/topo/bin/tool': '#!/bin/sh\n', '/abs/data.txt': 'data', '/topo/main.j2': 'main {% include "part.j2" %}', '/topo/part.j2': 'part of {{ node }}' }) });
    expect(userFiles(plan).map((f) => [f.path, f.mode, decode(f.contentBase64 ?? '')])).toEqual([
      ['/etc/a.conf', 0o644, 'main part of a'],
      ['/opt/a/tool', 0o755, '#!/bin/sh\n'],
      ['/opt/data.txt', 0o644, 'data'],
    ]);
  });

  test('a missing template file is an error naming it, once for all nodes, with its location', () => {
    const b = new TopoBuilder();
    for (const id of ['r0', 'r1', 'r2']) b.node(id, { templates: [{ src: 'ospf.cfg', dst: '/tmp/{{node}}.cfg', loc: { file: 'test.toml', line: 20, col: 3 } }] });
    expect(compileError(b.build(), { readFile: files({}) }).message).toMatchInlineSnapshot(`
      "1 error in the topology:
      test.toml:20:3: error[missing-template]: nodes "r0", "r1", "r2": template "ospf.cfg" cannot be read (/topo/ospf.cfg: ENOENT)
        hint: check the path; relative paths are taken from the topology file's directory"
    `);
  });

  test('render errors carry the template location, the line and the nunjucks message', () => {
    const t = new TopoBuilder()
      .node('r0', { templates: [{ src: 'bad.j2', dst: '/tmp/x', loc: { file: 'test.toml', line: 9, col: 1 } }] })
      .node('r1', { exec: [{ ...cmd('echo {% if %}'), loc: { file: 'test.toml', line: 12, col: 5 } }] })
      .build();
    expect(compileError(t, { readFile: files({ '/topo/bad.j2': 'ok\nrouter-id {{ ctx.rid | nosuchfilter }}\n' }) }).message).toMatchInlineSnapshot(`
      "2 errors in the topology:
      test.toml:9:1: error[template-error]: node "r0": template bad.j2: filter not found: nosuchfilter
        hint: fix the template; variables: node, ifaces, ctx, lab, loopback, cores, core_N
      test.toml:12:5: error[template-error]: node "r1": exec command \`echo {% if %}\`: line 1, column 7 (\`{% if %}\`): unexpected token: %}
        hint: fix the template; variables: node, ifaces, ctx, lab, loopback, cores, core_N"
    `);
  });

  test('DUNE files as DUNE runs them: sh -c, values shell-quoted where they land, none/absent, items, ifindex', () => {
    const hostile = "x'; touch /tmp/pwned; echo \"$(id)\" `id` \\";
    const sh = (text: string) => ({ text, argv: ['sh', '-c', text], shell: true });
    const t = new TopoBuilder()
      .node('r1', {
        ctx: { note: 'a b', nothing: null },
        exec: [
          sh('echo {{node}} > /tmp/{{node}}.out && echo "at {{node}} {{ctx.note}}" >> /tmp/x &'),
          sh("echo '{{ node }}' {{ ctx.missing }}|{{ ctx.nothing }}|{{ ifaces.eth1.latency }}|{{ ifaces.eth0.latency }}|{{ ifaces.eth1.ifindex }}"),
          sh('echo {% for k, v in ifaces | items %}{{ k }}={{ v.peer }} {% endfor %}'),
        ],
      })
      .node(hostile, { exec: [sh('echo {{node}}'), sh('echo "{{node}}"'), sh("echo '{{node}}'")] })
      .node('r2')
      .link(`${hostile}`, 'r1', { latencyMs: 5 })
      .link('r1', 'r2')
      .build();
    const plan = compile(t);
    const scripts = ops(plan, 'exec').map((o) => [o.node, o.argv.slice(0, 2).join(' '), o.argv[2]]);
    expect(scripts).toMatchInlineSnapshot(`
      [
        [
          "r1",
          "sh -c",
          "echo r1 > /tmp/r1.out && echo "at r1 a b" >> /tmp/x &",
        ],
        [
          "r1",
          "sh -c",
          "echo 'r1' |none|none|5ms|3",
        ],
        [
          "r1",
          "sh -c",
          "echo eth0='x'\\''; touch /tmp/pwned; echo "$(id)" \`id\` \\:eth0' eth1=r2:eth0 ",
        ],
        [
          "x'; touch /tmp/pwned; echo "$(id)" \`id\` \\",
          "sh -c",
          "echo 'x'\\''; touch /tmp/pwned; echo "$(id)" \`id\` \\'",
        ],
        [
          "x'; touch /tmp/pwned; echo "$(id)" \`id\` \\",
          "sh -c",
          "echo "x'; touch /tmp/pwned; echo \\"\\$(id)\\" \\\`id\\\` \\\\"",
        ],
        [
          "x'; touch /tmp/pwned; echo "$(id)" \`id\` \\",
          "sh -c",
          "echo 'x'\\''; touch /tmp/pwned; echo "$(id)" \`id\` \\'",
        ],
      ]
    `);
    // The shell reads each value back as the one word (or the text) it was: run the scripts' words through sh.
    for (const o of ops(plan, 'exec').filter((x) => x.node === hostile)) {
      expect(spawnSync('sh', ['-c', o.argv[2] as string], { encoding: 'utf8' }).stdout).toBe(`${hostile}\n`);
    }
    const quoted = ops(plan, 'exec').find((o) => o.node === 'r1')?.argv[2] as string;
    expect(spawnSync('sh', ['-c', quoted.replace(/>>? \/tmp\/\S+/g, '').replace(/&$/, '')], { encoding: 'utf8' }).stdout).toBe('r1\nat r1 a b\n');
  });

  test('core_N on a phynode without cores is an error naming node, placeholder and phynode', () => {
    const t = new TopoBuilder()
      .node('x', { pinned: [{ ...pinned('app', { CORE: '{{core_1}}' }), loc: { file: 'test.toml', line: 30, col: 1 } }] })
      .build();
    expect(compileError(t).message).toMatchInlineSnapshot(`
      "1 error in the topology:
      test.toml:30:1: error[no-cores]: node "x": pinned process 0: environ CORE uses {{core_1}}, but phynode local declares no cores
        hint: add cores = [[1,2,3]] under [infrastructure.nodes.local]"
    `);
  });

  test('destinations must be absolute; two nodes writing one path with different contents conflict', () => {
    const t = new TopoBuilder()
      .node('a', { templates: [{ src: 't', dst: 'relative/{{node}}' }] })
      .node('b', { templates: [{ src: 't', dst: '/tmp/same' }] })
      .node('c', { templates: [{ src: 't', dst: '/tmp/same' }] })
      .build();
    expect(compileError(t, { readFile: files({ '/topo/t': '{{ node }}' }) }).diagnostics.map((d) => `${d.code}: ${d.message}`)).toEqual([
      'relative-destination: node "a": template t goes to "relative/a", which is not an absolute path',
      'file-conflict: node "b" and node "c" both write /tmp/same on phynode local, with different contents',
    ]);
  });

  test('no readFile while templates need one is an error, not a filesystem read', () => {
    const t = new TopoBuilder().node('a', { templates: [{ src: 't', dst: '/x' }] }).build();
    expect(compileError(t).diagnostics.map((d) => d.code)).toEqual(['no-file-reader']);
  });
});
