/** Sysctls the compiler gives nodes that route (router kind, NetMirage's namespaces). */

/** What every router gets so it forwards, and so asymmetric paths are not dropped. */
export const ROUTER_SYSCTLS: readonly [string, string][] = [
  ['net.ipv4.ip_forward', '1'],
  ['net.ipv6.conf.all.forwarding', '1'],
  ['net.ipv4.conf.all.rp_filter', '0'],
  ['net.ipv4.conf.default.rp_filter', '0'],
];

/**
 * The interface's own rp_filter: the kernel uses max(all, iface), and an interface takes the
 * namespace's `default` when it is created, which a new namespace inherits from the host
 * (often 2 on systemd distributions). The interfaces exist before the sysctl ops run.
 * An interface name may contain dots, so such keys use sysctl's slash form.
 */
export function ifaceRpFilterKey(iface: string): string {
  return iface.includes('.') ? `net/ipv4/conf/${iface}/rp_filter` : `net.ipv4.conf.${iface}.rp_filter`;
}
