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


def control_json():
    import base64
    def b64(n, seed):
        return base64.b64encode(bytes((seed + 7 * i) & 0xff
                                      for i in range(n))).decode()
    confs = [
        {"id": "c1"},
        {"id": "c2", "mode": "mix", "rate": 48000, "ptime": 20,
         "max_talkers": 3, "opus": {"complexity": 5, "bitrate": 32000,
                                    "fec": True, "dtx": False}},
        {"id": "t1", "mode": "transcode", "rate": 16000, "ptime": 10},
        {"id": "f"},
        {"id": "x" * 200},
        {"id": 7},
        {"mode": "mix"},
    ]
    for i, c in enumerate(confs):
        write("control_json", "conf-%d" % i,
              b"\0" + json.dumps(c).encode())
    keylen = {"AES_CM_128_HMAC_SHA1_80": 30, "AES_CM_128_HMAC_SHA1_32": 30,
              "AES_256_CM_HMAC_SHA1_80": 46, "AEAD_AES_128_GCM": 28,
              "AEAD_AES_256_GCM": 44}
    legs = [
        {"participant": "sip:a@example.org", "codec": "pcmu",
         "remote": "127.0.0.1:40000"},
        {"participant": "sip:b@example.org", "codec": "opus", "rate": 48000,
         "ptime": 20, "payload_type": 111, "remote": "[::1]:40002",
         "direction": "sendrecv", "audio_level_ext": 1,
         "telephone_event_pt": 101, "opus": {"complexity": 1, "fec": False},
         "srtp": None},
        {"participant": "sip:c@example.org", "codec": "g722",
         "remote": "127.0.0.1:40004", "direction": "recvonly"},
        {"participant": "sip:d@example.org", "codec": "pcma", "rate": 8000,
         "remote": "127.0.0.1:40006",
         "srtp": {"profile": "AES_CM_128_HMAC_SHA1_80", "key": {"kms": {
             "conference": "ref-1", "participant": "sip:d@example.org"}}}},
    ]
    for j, (prof, n) in enumerate(sorted(keylen.items())):
        legs.append({"participant": "sip:k%d@example.org" % j,
                     "codec": "pcmu", "remote": "127.0.0.1:%d" % (41000 + j),
                     "srtp": {"profile": prof, "encrypted_ext": [1],
                              "key": {"inline": {"rx": b64(n, j),
                                                 "tx": b64(n, j + 50)}}}})
    legs.append({"participant": "sip:bad@example.org", "codec": "pcmu",
                 "remote": "127.0.0.1:41100",
                 "srtp": {"profile": "AEAD_AES_128_GCM",
                          "key": {"inline": {"rx": b64(30, 1),
                                             "tx": "!!notbase64"}}}})
    for i, l in enumerate(legs):
        write("control_json", "leg-%d" % i, b"\1" + json.dumps(l).encode())
    patches = [{"muted": True}, {"gain_db": -3}, {"direction": "inactive"},
               {"rekey": True},
               {"rekey": True, "key": {"inline": {"rx": b64(30, 3),
                                                  "tx": b64(30, 4)}}},
               {"muted": "yes"}]
    for i, p in enumerate(patches):
        write("control_json", "patch-%d" % i,
              b"\2" + json.dumps(p).encode())
    routes = [(0, "/v1/health", b""), (0, "/metrics", b""),
              (0, "/v1/conferences", b""), (0, "/v1/conferences/f", b""),
              (0, "/v1/conferences/f/legs/l1", b""),
              (1, "/v1/conferences", b'{"id": "r1"}'),
              (1, "/v1/conferences/f/legs", json.dumps(legs[0]).encode()),
              (2, "/v1/conferences/f/legs/l1", b'{"muted": false}'),
              (0, "/v1/conferences/nope", b""), (1, "/v2/x", b"{}"),
              (0, "/v1/conferences/%2e%2e/legs", b"")]
    for i, (m, path, body) in enumerate(routes):
        write("control_json", "route-%d" % i,
              b"\3" + bytes([m]) + path.encode() + b"\0" + body)
    raws = [b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /v1/conferences HTTP/1.1\r\nContent-Length: 2\r\n"
            b"Authorization: Bearer nope\r\n\r\n{}",
            b"GET / HTTP/1.0\r\n\r\n"]
    for i, r in enumerate(raws):
        write("control_json", "raw-%d" % i, b"\4" + r)


def main():
    which = sys.argv[1:] or ["rtp_srtp", "mix_intake", "control_json"]
    for w in which:
        globals()[w]()


if __name__ == "__main__":
    main()
