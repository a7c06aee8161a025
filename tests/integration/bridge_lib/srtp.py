"""srtp.py  An independent SRTP/SRTCP implementation for the bridge tests.

Written from RFC 3711 (AES-CM + HMAC-SHA1), RFC 6188 (AES-256-CM) and
RFC 7714 (AES-GCM) on python3-cryptography, so that the bridge's keyleg
(libsrtp2) is checked against a second stack, not against itself.
No MKI, key derivation rate 0, RTP header extensions not encrypted.
"""

import hashlib
import hmac
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.exceptions import InvalidTag

PROFILES = {
    # name: (key_len, salt_len, tag_len, aead)
    "AES_CM_128_HMAC_SHA1_80": (16, 14, 10, False),
    "AES_CM_128_HMAC_SHA1_32": (16, 14, 4, False),
    "AES_256_CM_HMAC_SHA1_80": (32, 14, 10, False),
    "AEAD_AES_128_GCM": (16, 12, 16, True),
    "AEAD_AES_256_GCM": (32, 12, 16, True),
}


class AuthError(Exception):
    pass


class ReplayError(Exception):
    pass


def _ctr(key, iv16, data):
    enc = Cipher(algorithms.AES(key), modes.CTR(iv16)).encryptor()
    return enc.update(data) + enc.finalize()


def _kdf(master_key, master_salt, label, n):
    """RFC 3711 4.3.1 / RFC 6188 PRF with kdr = 0 (salt padded to 14)."""
    salt = master_salt.ljust(14, b"\0")
    x = bytearray(salt)
    x[7] ^= label
    return _ctr(master_key, bytes(x) + b"\0\0", b"\0" * n)


class Context:
    """One direction of one SSRC-independent SRTP session (send or recv)."""

    def __init__(self, profile, keysalt, enc_ext=()):
        self.klen, self.slen, self.tlen, self.aead = PROFILES[profile]
        self.enc_ext = set(enc_ext)
        if self.enc_ext and self.aead:
            raise ValueError("RFC 6904 here only for AES-CM profiles")
        if len(keysalt) != self.klen + self.slen:
            raise ValueError("key||salt length")
        mk, ms = keysalt[:self.klen], keysalt[self.klen:]
        slen = 12 if self.aead else 14
        self.rtp_k = _kdf(mk, ms, 0, self.klen)
        self.rtp_a = _kdf(mk, ms, 1, 20)
        self.rtp_s = _kdf(mk, ms, 2, slen)
        self.rtcp_k = _kdf(mk, ms, 3, self.klen)
        self.rtcp_a = _kdf(mk, ms, 4, 20)
        self.rtcp_s = _kdf(mk, ms, 5, slen)
        # RFC 6904: header extension encryption and salting keys
        self.hdr_k = _kdf(mk, ms, 6, self.klen)
        self.hdr_s = _kdf(mk, ms, 7, slen)
        self.roc = {}        # ssrc -> (roc, highest seq)
        self.seen = {}       # ssrc -> set of packet indexes (replay)
        self.rtcp_index = 0
        # SRTCP keeps an 80-bit tag even for the _32 profile (RFC 4568)
        self.rtcp_tlen = 16 if self.aead else 10

    # -- RTP --
    @staticmethod
    def _hdr_len(pkt):
        cc = pkt[0] & 0x0F
        n = 12 + 4 * cc
        if pkt[0] & 0x10:
            n += 4 + 4 * struct.unpack("!H", pkt[n + 2:n + 4])[0]
        return n

    def _index_send(self, ssrc, seq):
        roc, last = self.roc.get(ssrc, (0, None))
        if last is not None and seq < last and last - seq > 32768:
            roc += 1
        self.roc[ssrc] = (roc, seq)
        return roc

    def _index_recv(self, ssrc, seq):
        roc, last = self.roc.get(ssrc, (0, None))
        if last is None:
            return roc, roc
        if last < 32768:
            guess = roc - 1 if seq - last > 32768 and roc > 0 else roc
        else:
            guess = roc + 1 if last - 32768 > seq else roc
        return guess, roc

    def _iv(self, salt, ssrc, idx):
        if self.aead:
            iv = struct.pack("!HIIH", 0, ssrc, idx >> 16, idx & 0xFFFF)
            return bytes(a ^ b for a, b in zip(iv, salt))
        iv = struct.pack("!4xI8x", ssrc)
        iv = int.from_bytes(iv, "big") ^ (idx << 16) ^ \
            (int.from_bytes(salt, "big") << 16)
        return iv.to_bytes(16, "big")

    def _xtn_crypt(self, pkt, ssrc, idx):
        """RFC 6904: XOR the listed elements' data with the keystream made
        by AES-CM under k_he/k_hs and the packet's IV (one-byte form)."""
        if not self.enc_ext or not pkt[0] & 0x10:
            return pkt
        off = 12 + 4 * (pkt[0] & 0x0F)
        prof, words = struct.unpack("!HH", pkt[off:off + 4])
        start, n = off + 4, 4 * words
        if prof != 0xBEDE:
            return pkt
        ks = _ctr(self.hdr_k, self._iv(self.hdr_s, ssrc, idx), b"\0" * n)
        out = bytearray(pkt)
        i = 0
        while i < n:
            b = pkt[start + i]
            if b == 0:
                i += 1
                continue
            eid, ln = b >> 4, (b & 0x0F) + 1
            if eid == 15:
                break
            if eid in self.enc_ext:
                for k in range(i + 1, min(i + 1 + ln, n)):
                    out[start + k] ^= ks[k]
            i += 1 + ln
        return bytes(out)

    def protect(self, pkt):
        pkt = bytes(pkt)
        seq, = struct.unpack("!H", pkt[2:4])
        ssrc, = struct.unpack("!I", pkt[8:12])
        roc = self._index_send(ssrc, seq)
        idx = (roc << 16) | seq
        pkt = self._xtn_crypt(pkt, ssrc, idx)
        h = self._hdr_len(pkt)
        if self.aead:
            iv = self._iv(self.rtp_s, ssrc, idx)
            return pkt[:h] + AESGCM(self.rtp_k).encrypt(iv, pkt[h:],
                                                         pkt[:h])
        body = pkt[:h] + _ctr(self.rtp_k, self._iv(self.rtp_s, ssrc, idx),
                              pkt[h:])
        tag = hmac.new(self.rtp_a, body + struct.pack("!I", roc),
                       hashlib.sha1).digest()[:self.tlen]
        return body + tag

    def unprotect(self, pkt):
        pkt = bytes(pkt)
        if len(pkt) < 12 + self.tlen:
            raise AuthError("short")
        seq, = struct.unpack("!H", pkt[2:4])
        ssrc, = struct.unpack("!I", pkt[8:12])
        roc, cur = self._index_recv(ssrc, seq)
        idx = (roc << 16) | seq
        if idx in self.seen.get(ssrc, ()):
            raise ReplayError(idx)
        h = self._hdr_len(pkt)
        if self.aead:
            iv = self._iv(self.rtp_s, ssrc, idx)
            try:
                plain = AESGCM(self.rtp_k).decrypt(iv, pkt[h:], pkt[:h])
            except InvalidTag:
                raise AuthError("tag")
            out = pkt[:h] + plain
        else:
            body, tag = pkt[:-self.tlen], pkt[-self.tlen:]
            want = hmac.new(self.rtp_a, body + struct.pack("!I", roc),
                            hashlib.sha1).digest()[:self.tlen]
            if not hmac.compare_digest(tag, want):
                raise AuthError("tag")
            out = body[:h] + _ctr(self.rtp_k,
                                  self._iv(self.rtp_s, ssrc, idx), body[h:])
        self.seen.setdefault(ssrc, set()).add(idx)
        last = self.roc.get(ssrc, (0, None))[1]
        if last is None or roc > cur or (roc == cur and seq > last):
            self.roc[ssrc] = (roc, seq)
        return out

    # -- RTCP (always encrypted, E = 1) --
    def protect_rtcp(self, pkt):
        pkt = bytes(pkt)
        self.rtcp_index = (self.rtcp_index + 1) & 0x7FFFFFFF
        ssrc, = struct.unpack("!I", pkt[4:8])
        e_idx = struct.pack("!I", 0x80000000 | self.rtcp_index)
        if self.aead:
            iv = struct.pack("!HIHI", 0, ssrc, 0, self.rtcp_index)
            iv = bytes(a ^ b for a, b in zip(iv, self.rtcp_s))
            ct = AESGCM(self.rtcp_k).encrypt(iv, pkt[8:], pkt[:8] + e_idx)
            return pkt[:8] + ct + e_idx
        iv = self._iv(self.rtcp_s, ssrc, self.rtcp_index)
        body = pkt[:8] + _ctr(self.rtcp_k, iv, pkt[8:]) + e_idx
        tag = hmac.new(self.rtcp_a, body,
                       hashlib.sha1).digest()[:self.rtcp_tlen]
        return body + tag

    def unprotect_rtcp(self, pkt):
        pkt = bytes(pkt)
        ssrc, = struct.unpack("!I", pkt[4:8])
        if self.aead:
            e_idx = pkt[-4:]
            idx = struct.unpack("!I", e_idx)[0] & 0x7FFFFFFF
            iv = struct.pack("!HIHI", 0, ssrc, 0, idx)
            iv = bytes(a ^ b for a, b in zip(iv, self.rtcp_s))
            try:
                plain = AESGCM(self.rtcp_k).decrypt(iv, pkt[8:-4],
                                                    pkt[:8] + e_idx)
            except InvalidTag:
                raise AuthError("rtcp tag")
            return pkt[:8] + plain
        body, tag = pkt[:-self.rtcp_tlen], pkt[-self.rtcp_tlen:]
        want = hmac.new(self.rtcp_a, body,
                        hashlib.sha1).digest()[:self.rtcp_tlen]
        if not hmac.compare_digest(tag, want):
            raise AuthError("rtcp tag")
        idx = struct.unpack("!I", body[-4:])[0] & 0x7FFFFFFF
        iv = self._iv(self.rtcp_s, ssrc, idx)
        return body[:8] + _ctr(self.rtcp_k, iv, body[8:-4])
