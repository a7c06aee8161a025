#!/usr/bin/python3
"""seeds_rel.py  Write the seed corpora of the reliability fuzz targets.

    /usr/bin/python3 tests/fuzz/seeds_rel.py [TARGET...]

Seeds are valid messages (RTP, RTCP, codec payloads, control API bodies)
so that the fuzzer starts from the shapes the code expects.  Files are
named seed-*; crash inputs found later are kept beside them as crash-*.
"""

import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def rtp(seq, ts=0, ssrc=0x11223344, pt=111, marker=0, csrc=(), ext=None,
        payload=b"\xf8\xff\xfe", pad=0):
    b0 = 0x80 | (0x20 if pad else 0) | (0x10 if ext is not None else 0) \
        | len(csrc)
    h = struct.pack("!BBHII", b0, (marker << 7) | pt, seq & 0xffff,
                    ts & 0xffffffff, ssrc)
    for c in csrc:
        h += struct.pack("!I", c)
    if ext is not None:
        profile, body = ext
        body += b"\0" * (-len(body) % 4)
        h += struct.pack("!HH", profile, len(body) // 4) + body
    p = h + payload
    if pad:
        p += b"\0" * (pad - 1) + bytes([pad])
    return p


def one_byte_ext(items):
    """RFC 8285 one-byte header: [(id, bytes)]"""
    body = b""
    for i, d in items:
        body += bytes([(i << 4) | (len(d) - 1)]) + d
    return (0xbede, body)


def rtcp_sr(ssrc=0x11223344, blocks=1):
    rc = blocks
    body = struct.pack("!IIIIII", ssrc, 0x83aa7e80, 0, 48000, 50, 8000)
    for i in range(blocks):
        body += struct.pack("!IIIIII", 0xaabbccdd + i, (5 << 24) | 12,
                            1000, 20, 0, 0)
    return struct.pack("!BBH", 0x80 | rc, 200, len(body) // 4) + body


def rtcp_rr(ssrc=0x55667788):
    body = struct.pack("!I", ssrc) + struct.pack(
        "!IIIIII", 0x11223344, (2 << 24) | 3, 70000, 33, 0x12345678, 400)
    return struct.pack("!BBH", 0x81, 201, len(body) // 4) + body


def rtcp_sdes(ssrc=0x11223344, cname=b"alice@example.org"):
    item = bytes([1, len(cname)]) + cname + b"\0"
    item += b"\0" * (-(4 + len(item)) % 4)
    body = struct.pack("!I", ssrc) + item
    return struct.pack("!BBH", 0x81, 202, len(body) // 4) + body


def rtcp_bye(ssrc=0x11223344):
    return struct.pack("!BBHI", 0x81, 203, 1, ssrc)


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def multi(pkts):
    out = b""
    for p in pkts:
        out += struct.pack("!H", len(p)) + p
    return out


def rtp_srtp():
    lvl = one_byte_ext([(1, b"\x85"), (2, b"\x01\x02\x03"), (5, b"\x07")])
    pkts = {
        "plain": rtp(1, 160),
        "marker": rtp(2, 320, marker=1),
        "csrc": rtp(3, 480, csrc=(1, 2, 3)),
        "ext": rtp(4, 640, ext=lvl),
        "pad": rtp(5, 800, pad=4),
        "twobyte": rtp(6, 960, ext=(0x1000, b"\x01\x02\xaa\xbb")),
        "g711": rtp(7, 160, pt=0, payload=b"\xff" * 160),
        "dtmf": rtp(8, 160, pt=101, payload=b"\x05\x8a\x03\x20"),
    }
    for prof in range(5):
        for name, p in pkts.items():
            write("rtp_srtp", "%d-%s" % (prof, name), bytes([prof]) + p)
            write("rtp_srtp", "%d-%s-p" % (prof, name),
                  bytes([prof | 0x10 | (0x20 if name == "ext" else 0)]) + p)
        comp = rtcp_sr() + rtcp_sdes()
        write("rtp_srtp", "%d-rtcp" % prof, bytes([prof | 0x08]) + comp)
        write("rtp_srtp", "%d-rtcp-p" % prof,
              bytes([prof | 0x18]) + comp)
        write("rtp_srtp", "%d-rtcp-rr-bye-p" % prof,
              bytes([prof | 0x18]) + rtcp_rr() + rtcp_bye())
        # a stream: in order, a wrap of the sequence number, a replay,
        # an old packet, then a rekey half way (bit 6)
        seqs = [65530, 65531, 65533, 65532, 65535, 0, 1, 1, 2, 40000, 3]
        stream = multi([rtp(s, s * 160) for s in seqs])
        write("rtp_srtp", "%d-stream-p" % prof,
              bytes([prof | 0x90]) + stream)
        write("rtp_srtp", "%d-stream-rekey-p" % prof,
              bytes([prof | 0xd0]) + stream)
        write("rtp_srtp", "%d-stream-raw" % prof,
              bytes([prof | 0x80]) + stream)
    write("rtp_srtp", "empty", b"")
    write("rtp_srtp", "short", b"\x10\x80")


def mix_intake():
    # flags byte: codec in bits 0-1, transcode bit 2; see mix_intake.c
    opus_silk = bytes([0x08 | 0x00]) + b"\x00" * 30   # SILK NB 10 ms
    opus_celt = bytes([0xf8]) + os.urandom(0) + b"\xff\xfe" * 40
    opus_hybrid = bytes([0x78]) + b"\x11" * 60
    opus_code3 = bytes([0xfb, 0x83]) + b"\x00" * 20
    opus_dtx = bytes([0xf8])
    pcm = bytes(range(256))[:160]
    g722 = bytes((i * 37) & 0xff for i in range(160))
    cases = {
        0: [opus_silk, opus_celt, opus_hybrid, opus_code3, opus_dtx],
        1: [pcm, b"\xff" * 160, b"\x7f" * 80],
        2: [pcm, b"\xd5" * 160, b"\x55" * 320],
        3: [g722, b"\x00" * 160],
    }
    for codec, pls in cases.items():
        for mode in (0, 4):
            recs = b""
            seq = 100
            for i, pl in enumerate(pls * 2):
                # seq(2) ts_step(1) level(1) then len(2) payload
                recs += struct.pack("!HBBH", seq, 1, 0x80 | (30 + i),
                                    len(pl)) + pl
                seq += 1 if i != 3 else 3
            write("mix_intake", "c%d-m%d" % (codec, mode),
                  bytes([codec | mode]) + recs)
    write("mix_intake", "empty", b"")


def main():
    which = sys.argv[1:] or ["rtp_srtp", "mix_intake"]
    for w in which:
        globals()[w]()


if __name__ == "__main__":
    main()
