/**
 * @dune/agent: the kernel layer of one host. Applies a HostPlan's ops over rtnetlink
 * (namespaces, veth, VXLAN, bridges, addresses, routes, qdiscs) plus nftables for loss,
 * probes what the kernel can do, and tears labs down from kernel marks alone.
 */
export { applyOps, labOf, sysctlPath, type AgentEvent, type ApplyOptions, type ApplyResult } from './apply.js';
export { teardownLab, teardownAll, type TeardownResult, type TeardownOptions } from './teardown.js';
export { reclaimTransients, transientNamespace, parseTag, TRANSIENT_TAG, type ReclaimResult, type TransientKind } from './transient.js';
export { probeCapabilities, CAP_NAMES, type Caps, type CapResult, type CapName } from './probe.js';
export {
  changeImpairment,
  readImpairment,
  planImpairment,
  impairBackends,
  BACKEND_NAMES,
  ImpairmentUnsupportedError,
  netemOptions,
  netemImpairment,
  NETEM,
  nftLossScript,
  nftTableName,
  type BackendName,
  type ImpairPlan,
  type ImpairmentStatus,
  type ImpairOptions,
  type TcNode,
} from './impair/index.js';
export { readLinks, readAddrs, readRoutes, type LinkStatus, type AddrInfo, type RouteInfo } from './status.js';
export { ApplyError, describeOp, emptyJournal, type Journal } from './errors.js';
export { createNamespaces, deleteNamespaces, listNamespaces, nsPath, NETNS_DIR } from './netns.js';
export { rollback } from './rollback.js';
export { removeKernelOps } from './remove.js';
export { releaseAdopted, undoHostOps, savedInterface } from './adopt.js';
export {
  up, down, status, set, change, routes, listLabs, resolveLab, labPlan, nodeNs, requireRoot, checkLabName,
  type ChangeParams, type ChangeResult, type NodeAction, type LabEvent, type UpOptions, type UpResult, type DownResult, type LabStatus, type LinkStatus as LabLinkStatus,
} from './lab/lab.js';
export {
  daemonState, nodeRoutes, waitConverged, expectedRoutes, parseProtocols, parseOspfNeighbours, parseRouteSources, protocolName,
  type DaemonState, type BirdProtocol, type OspfNeighbour, type NodeRoute, type ConvergeOptions,
} from './lab/routing.js';
export { STATE_ROOT, journalLabs, readState, type LabState, type ProcessRecord } from './lab/journal.js';
export { converge, opKey, type Convergence } from './lab/diff.js';
// Netlink building blocks for programs that configure the kernel beyond a plan's ops
// (NetMirage's core and edge: policy rules, other tables, moving a NIC between namespaces).
export { NlSocket, NetlinkError, describeAck } from './netlink/socket.js';
export type { NlWriter } from './netlink/writer.js';
export { getLink, parseLink, setLink, delLink, type LinkInfoMsg } from './netlink/link.js';
export { getAddrDump, getRouteDump, parseAddr as parseAddrMsg } from './netlink/addr-route.js';
export * from './netlink/rule.js';
export { dumpLinks, withNsSocket, linkByName } from './status.js';
export { openNsFd } from './netns.js';
export * from './daemon/index.js';
export { opKinds, kindOfOp, releaseOps, opKind, deleteIfThere, type OpKindDef, type ApplyStage, type UndoHook, type LinkStage, type SocketStage, type ApplyContext, type OpCounter } from './ops/index.js';
