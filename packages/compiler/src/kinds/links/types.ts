/**
 * What a link kind is: how one link of the topology is carried (see index.ts for the table).
 *
 *   choose (placement known)  the first kind in table order whose `fits` accepts the link
 *   check                     the kind's own checks over all the links it carries
 *   assemble (per host)       `ops` pushes the link's devices on that host (links phase,
 *                             after every namespace exists and before any bridge)
 */
import type { Diagnostics, Link, Topology } from '@dune/topology';
import type { Op } from '../../plan.js';
import type { Placement } from '../../placement.js';

/** What `fits` sees. */
export interface LinkFit {
  link: Link;
  /** Both ends' nodes are placed on one phynode. */
  sameHost: boolean;
}

export interface LinkKindCheck {
  topo: Topology;
  placement: Placement;
  /** Per link: the phynode positions of its a and b ends. */
  hostsOf(li: number): [number, number];
  diags: Diagnostics;
}

/** One link on one host, as `ops` sees it. */
export interface LinkOnHost {
  li: number;
  link: Link;
  /** This host's position. */
  h: number;
  ends: Record<'a' | 'b', {
    ns: string;
    /** Kernel name of the end's interface. */
    dev: string;
    /** The phynode it is on (position). */
    host: number;
    /** The end's MAC: the topology's, or one a node kind gave it. */
    mac: string | undefined;
    alias: string;
  }>;
  /** The link's MTU (its own, else the kind's default). */
  mtu: number;
  /** Its tunnel id, for a kind with `vni`. */
  vni: number;
  placement: Placement;
  vxlanPort: number;
}

export interface LinkKindDef {
  description: string;
  fits(l: LinkFit): boolean;
  /** The MTU of its devices when the link sets none. */
  defaultMtu: number;
  /** It is a tunnel: each link of it gets a VNI (sequential from FIRST_VNI in link order). */
  vni?: boolean;
  check?(links: readonly number[], c: LinkKindCheck): void;
  ops(l: LinkOnHost, out: Op[]): void;
}
