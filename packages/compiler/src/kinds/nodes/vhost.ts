/**
 * `vhost`: a `tap` brick (tap.ts, same keys) whose device carries IFF_VNET_HDR, the virtio-net
 * header vhost-net needs: QEMU's `-netdev tap,ifname=tap0,vhost=on` moves the data path into
 * the kernel (/dev/vhost-net) and the VM's virtio offloads reach the lab.
 */
import { tapKind } from './tap.js';

export const vhost = tapKind(true, 'a vhost-net capable TAP device (IFF_VNET_HDR) on a bridge with its links, for a QEMU VM');
