/**
 * `firewall`: a bridge between its links whose forwarded IP traffic goes through ordered
 * rules (allow/deny by protocol, addresses, ports, the port it came in by, stateful or not),
 * applied as one nftables transaction, each rule with its counter in `dune status`, and
 * changed live by `dune firewall` or the API (firewall-rules.ts holds the rules' language).
 *
 *   [topology.nodes.fw]
 *   kind = "firewall"
 *   policy = "deny"                  # traffic no rule matches (default "deny")
 *   stateful = true                  # replies of allowed connections pass (default true)
 *   rules = [
 *     { action = "allow", proto = "tcp", from = "client", dport = 80 },
 *     { action = "allow", proto = "icmp" },
 *   ]
 */
import { bridgePhases } from './bridge.js';
import { FIREWALL_KEYS, FIREWALL_SYSCTLS, firewallOp, readFirewall, type FirewallSpec } from './firewall-rules.js';
import { unknownKindKeys } from './nft.js';
import { nodeKind } from './types.js';

export const firewall = nodeKind<FirewallSpec>({
  description: 'forwards what its rules allow (protocol, addresses, ports, direction, stateful); a counter per rule',
  layer: 2,
  keys: FIREWALL_KEYS,
  ports: { min: 2 },
  options(c) {
    unknownKindKeys(c, FIREWALL_KEYS);
    return readFirewall(c.ctx, c.ports.map((p) => p.peer), (path, message, hint) =>
      c.diags.error('bad-firewall', `node "${c.node.id}": ${message}`, c.loc(path), hint));
  },
  phases: {
    ...bridgePhases(),
    sysctls(n, out, stats) {
      for (const [key, value] of FIREWALL_SYSCTLS) {
        if (n.userSysctls.has(key)) continue;
        out.push({ key, ns: n.ns, op: 'sysctl', value });
        stats.sysctls++;
      }
    },
    filters(n, out) {
      out.push(firewallOp(n.options, n.ports, n.ns, n.node.id));
    },
  },
});
