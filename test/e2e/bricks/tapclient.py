#!/usr/bin/env python3
"""A tap client, as QEMU is one: opens the persistent tap IFNAME through /dev/net/tun
(TUNSETIFF, IFF_TAP|IFF_NO_PI, and IFF_VNET_HDR when VNET is 1: then every frame carries a
10-byte virtio_net_hdr first), answers ARP requests and ICMP echo requests for IP with MAC,
and reads frames for SECONDS. Prints "ready" once attached, then the numbers of frames read,
ARP replies and echo replies sent.

usage: tapclient.py IFNAME IP MAC VNET SECONDS
"""
import fcntl
import os
import select
import socket
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
VNET_HDR_LEN = 10  # struct virtio_net_hdr, the default TUNSETVNETHDRSZ


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def main() -> None:
    ifname, ip, mac, vnet, seconds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1", float(sys.argv[5])
    my_ip = socket.inet_aton(ip)
    my_mac = bytes.fromhex(mac.replace(":", ""))
    fd = os.open("/dev/net/tun", os.O_RDWR)
    flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet else 0)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", ifname.encode(), flags))
    print("ready", flush=True)
    hdr = b"\0" * VNET_HDR_LEN if vnet else b""
    frames = arps = echoes = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if not r:
            continue
        pkt = os.read(fd, 65536)
        if vnet:
            pkt = pkt[VNET_HDR_LEN:]
        frames += 1
        if len(pkt) < 14:
            continue
        dst, src, etype = pkt[0:6], pkt[6:12], struct.unpack("!H", pkt[12:14])[0]
        if etype == 0x0806 and len(pkt) >= 42:
            op = struct.unpack("!H", pkt[20:22])[0]
            sha, spa, tpa = pkt[22:28], pkt[28:32], pkt[38:42]
            if op == 1 and tpa == my_ip:
                arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + my_mac + my_ip + sha + spa
                os.write(fd, hdr + src + my_mac + b"\x08\x06" + arp)
                arps += 1
        elif etype == 0x0800 and len(pkt) >= 34 and dst == my_mac:
            ihl = (pkt[14] & 0x0F) * 4
            ip_h, icmp = pkt[14:14 + ihl], pkt[14 + ihl:]
            if ip_h[9] == 1 and ip_h[16:20] == my_ip and icmp[:1] == b"\x08":
                reply_icmp = b"\x00\x00\x00\x00" + icmp[4:]
                reply_icmp = reply_icmp[:2] + struct.pack("!H", csum(reply_icmp)) + reply_icmp[4:]
                iph = bytearray(ip_h)
                iph[12:16], iph[16:20] = ip_h[16:20], ip_h[12:16]
                iph[8] = 64
                iph[10:12] = b"\0\0"
                iph[10:12] = struct.pack("!H", csum(bytes(iph)))
                os.write(fd, hdr + src + my_mac + b"\x08\x00" + bytes(iph) + reply_icmp)
                echoes += 1
    print(f"{frames} {arps} {echoes}", flush=True)


if __name__ == "__main__":
    main()
