"""Packets for the brick e2e tests, run inside a lab node with Debian's python3 (scapy from
python3-scapy). Each subcommand prints one line and exits 0 unless said otherwise.

  udp-send ADDR PORT COUNT            COUNT datagrams to ADDR:PORT
  udp-count PORT SECONDS              datagrams received on PORT within SECONDS: prints the count
  tcp-connect ADDR PORT               exit 0 when a TCP connection opens within 2 s, 1 otherwise
  sniff-count IFACE SECONDS BPF [N]   frames matching BPF seen on IFACE within SECONDS (or until N): the count
  arp IFACE OP PSRC HWSRC PDST [N]    N raw ARP frames (OP: who-has or is-at), sender PSRC/HWSRC
                                      (the Ethernet source is the interface's own MAC)
  ip4 IFACE SRC DST DSTMAC [N]        N ICMP echo requests from SRC (spoofed or not) to DST
  ip6 IFACE SRC DST DSTMAC [N]        the same over IPv6
  na IFACE SRC TARGET [N]             N unsolicited neighbour advertisements for TARGET, from SRC
  ether IFACE SRCMAC DSTMAC SRC DST [N]  N ICMP echo requests from another Ethernet source
"""
import socket
import sys
import time


def main(argv):
    cmd, args = argv[0], argv[1:]
    if cmd == 'udp-send':
        addr, port, count = args[0], int(args[1]), int(args[2])
        fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        for i in range(count):
            s.sendto(b'dune %d' % i, (addr, port))
            time.sleep(0.01)
        print('sent', count)
        return 0
    if cmd == 'udp-count':
        port, seconds = int(args[0]), float(args[1])
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(('::', port))
        print('ready', flush=True)
        end = time.time() + seconds
        n = 0
        while True:
            left = end - time.time()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                s.recvfrom(2048)
                n += 1
            except socket.timeout:
                break
        print(n)
        return 0
    if cmd == 'tcp-connect':
        try:
            socket.create_connection((args[0], int(args[1])), timeout=2).close()
            print('connected')
            return 0
        except OSError as e:
            print('failed:', e)
            return 1
    from scapy.all import ARP, ICMP, ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IP, IPv6, Ether, get_if_hwaddr, sendp, sniff  # noqa: E402
    if cmd == 'sniff-count':
        iface, seconds, bpf = args[0], float(args[1]), args[2]
        enough = int(args[3]) if len(args) > 3 else 0
        # 'ready' once the capture socket is open and filtering (scapy's startup and BPF
        # compile can take seconds on a loaded machine: a sender told earlier is missed).
        got = sniff(iface=iface, timeout=seconds, filter=bpf, count=enough, started_callback=lambda: print('ready', flush=True))
        print(len(got))
        return 0
    iface = args[0]
    mine = get_if_hwaddr(iface)
    if cmd == 'arp':
        op, psrc, hwsrc, pdst = args[1], args[2], args[3], args[4]
        n = int(args[5]) if len(args) > 5 else 3
        frame = Ether(src=mine, dst='ff:ff:ff:ff:ff:ff') / ARP(op=op, psrc=psrc, hwsrc=hwsrc, pdst=pdst)
        sendp(frame, iface=iface, count=n, inter=0.05, verbose=False)
    elif cmd == 'ip4':
        src, dst, dmac = args[1], args[2], args[3]
        n = int(args[4]) if len(args) > 4 else 3
        sendp(Ether(src=mine, dst=dmac) / IP(src=src, dst=dst) / ICMP(), iface=iface, count=n, inter=0.05, verbose=False)
    elif cmd == 'ip6':
        src, dst, dmac = args[1], args[2], args[3]
        n = int(args[4]) if len(args) > 4 else 3
        sendp(Ether(src=mine, dst=dmac) / IPv6(src=src, dst=dst) / ICMPv6EchoRequest(), iface=iface, count=n, inter=0.05, verbose=False)
    elif cmd == 'na':
        src, target = args[1], args[2]
        n = int(args[3]) if len(args) > 3 else 3
        frame = Ether(src=mine, dst='33:33:00:00:00:01') / IPv6(src=src, dst='ff02::1') / ICMPv6ND_NA(tgt=target, R=0, S=0, O=1) / ICMPv6NDOptDstLLAddr(lladdr=mine)
        sendp(frame, iface=iface, count=n, inter=0.05, verbose=False)
    elif cmd == 'ether':
        smac, dmac, src, dst = args[1], args[2], args[3], args[4]
        n = int(args[5]) if len(args) > 5 else 3
        sendp(Ether(src=smac, dst=dmac) / IP(src=src, dst=dst) / ICMP(), iface=iface, count=n, inter=0.05, verbose=False)
    else:
        print('unknown command', cmd)
        return 2
    print('sent')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
