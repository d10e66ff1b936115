/** What the capability probe found; each entry with the error text when absent. */
export interface CapResult {
  ok: boolean;
  /** Why not, as the kernel or the tool said it. */
  error?: string;
}

export const CAP_NAMES = ['veth', 'netem', 'htb', 'tbf', 'pfifo', 'bfifo', 'vxlan', 'bridge', 'nft', 'nfqueue'] as const;
export type CapName = (typeof CAP_NAMES)[number];

export type Caps = Record<CapName, CapResult> & {
  /** uname -r */
  kernel: string;
  /** How long the probe took. */
  probeMs: number;
};
