/**
 * The lab `dune up` builds when given no file: small enough to come up in a moment, and
 * using only impairments every kernel has (htb for rate, nftables for loss), so it works
 * on kernels without netem too.
 */
export const DEFAULT_TOPOLOGY_FILE = '<default>.toml';

export const DEFAULT_TOPOLOGY = `# dune's default lab: a diamond of four routers and two hosts.
#
#   h1 --- r1 ==== r2 --- h2
#           \\\\      //
#            r3 -- r4
#
[topology]
lab = "default"
routing_weight = "hops"

[topology.defaults.links]
bw = "100mbit"

[topology.nodes.h1]
[topology.nodes.r1]
[topology.nodes.r2]
[topology.nodes.r3]
[topology.nodes.r4]
[topology.nodes.h2]

[[topology.links]]
endpoints = ["h1:eth0", "r1:eth0"]

[[topology.links]]
endpoints = ["r1:eth1", "r2:eth1"]
bw = "50mbit"

[[topology.links]]
endpoints = ["r1:eth2", "r3:eth0"]

[[topology.links]]
endpoints = ["r3:eth1", "r4:eth0"]
loss = "1%"

[[topology.links]]
endpoints = ["r4:eth1", "r2:eth2"]

[[topology.links]]
endpoints = ["r2:eth0", "h2:eth0"]
`;
