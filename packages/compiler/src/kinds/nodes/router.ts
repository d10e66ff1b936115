/**
 * `router` (the default kind): a namespace with an address on every link end (and its
 * loopback), forwarding on, and routes to every other router (routing.ts, or a daemon).
 */
import { ifaceRpFilterKey, ROUTER_SYSCTLS } from '../../sysctls.js';
import type { AddrOp, SysctlOp } from '../../plan.js';
import { nodeKind } from './types.js';

export const router = nodeKind({
  description: 'routes between its links (the default)',
  layer: 3,
  phases: {
    addrs(n, out, stats) {
      const { addr, v, ns } = n;
      const user = addr.user[v] as Map<string, string[]>;
      const addrOp = (dev: string, cidr: string) => {
        out.push({ cidr, dev, ns, op: 'addr' } satisfies AddrOp);
        if (cidr.includes(':')) stats.addrsV6++;
        else stats.addrsV4++;
      };
      addrOp('lo', `${addr.nodeV4[v]}/32`);
      addrOp('lo', `${addr.nodeV6[v]}/128`);
      for (const c of user.get('lo') ?? []) addrOp('lo', c);
      for (const i of n.ports) {
        const isA = i.end === 'a';
        addrOp(i.name, `${isA ? addr.v4a[i.link] : addr.v4b[i.link]}/${addr.v4Len[i.link]}`);
        addrOp(i.name, `${isA ? addr.v6a[i.link] : addr.v6b[i.link]}/${addr.v6Len[i.link]}`);
        for (const c of user.get(i.name) ?? []) addrOp(i.name, c);
      }
    },
    up(n, out) {
      for (const i of n.ports) out.push({ dev: i.name, ns: n.ns, op: 'up' });
    },
    sysctls(n, out, stats) {
      const sys = (key: string, value: string) => {
        out.push({ key, ns: n.ns, op: 'sysctl', value } satisfies SysctlOp);
        stats.sysctls++;
      };
      for (const [key, value] of ROUTER_SYSCTLS) if (!n.userSysctls.has(key)) sys(key, value);
      for (const i of n.ports) {
        const key = ifaceRpFilterKey(i.name);
        if (!n.userSysctls.has(key)) sys(key, '0');
      }
    },
  },
});
