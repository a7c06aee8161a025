"""kmaudio.py  WAV reading and Goertzel tone measurement for Keymix tests.

Levels are in dBFS with 0 dBFS = a full-scale sine (peak 32767), the same
reference uemedia's --tone HZ:DBFS uses.
"""

import math
import struct
import wave

import numpy as np


def read_wav(path):
    """Return (rate, samples) with samples as float64 in sample units
    (mono; channels averaged).  16-bit PCM only."""
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError("%s: not 16-bit PCM" % path)
        rate = w.getframerate()
        ch = w.getnchannels()
        raw = w.readframes(w.getnframes())
    x = np.frombuffer(raw, dtype="<i2").astype(np.float64)
    if ch > 1:
        x = x[: len(x) - len(x) % ch].reshape(-1, ch).mean(axis=1)
    return rate, x


def write_wav(path, rate, samples):
    """Write mono 16-bit PCM (samples in sample units, clipped)."""
    s = np.clip(np.round(samples), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(s.tobytes())


def sine(rate, hz, dbfs, seconds):
    """A test sine in sample units."""
    n = int(rate * seconds)
    amp = 32767.0 * 10 ** (dbfs / 20.0)
    return amp * np.sin(2 * math.pi * hz * np.arange(n) / rate)


def goertzel_amplitude(x, rate, hz):
    """Peak amplitude of the component at hz in x.

    This is the Goertzel algorithm's output (one DFT bin at an arbitrary,
    not necessarily integer-bin, frequency) computed in closed form with
    numpy, on a Hann-windowed block so a strong neighbouring tone does not
    leak into the measured bin.  Normalised so a sine of peak A gives A.
    """
    n = len(x)
    if n < 16:
        return 0.0
    w = np.hanning(n)
    ph = 2 * math.pi * hz / rate * np.arange(n)
    re = np.dot(x * w, np.cos(ph))
    im = np.dot(x * w, np.sin(ph))
    return 2.0 * math.hypot(re, im) / w.sum()


def goertzel_recurrence(x, rate, hz):
    """The textbook Goertzel recurrence (slow: pure Python), kept to check
    goertzel_amplitude against it in the self-test.  Rectangular window."""
    k = hz / rate
    coeff = 2 * math.cos(2 * math.pi * k)
    s1 = s2 = 0.0
    for v in x:
        s0 = v + coeff * s1 - s2
        s2, s1 = s1, s0
    # generalised Goertzel: correct the final phase for a non-integer bin
    re = s1 - s2 * math.cos(2 * math.pi * k)
    im = s2 * math.sin(2 * math.pi * k)
    return 2.0 * math.hypot(re, im) / len(x)


def to_dbfs(amp):
    return 20 * math.log10(amp / 32767.0) if amp > 0 else -200.0


def segment(rate, x, start=None, end=None):
    """x between start and end seconds (None: file start/end; a negative
    value counts from the end)."""
    n = len(x)
    a = 0 if start is None else int((start if start >= 0 else
                                     n / rate + start) * rate)
    b = n if end is None else int((end if end >= 0 else
                                   n / rate + end) * rate)
    return x[max(a, 0):min(b, n)]


def tone_level(path_or_data, hz, start=None, end=None):
    """dBFS of the tone hz in a WAV file (or a (rate, samples) pair)."""
    if isinstance(path_or_data, str):
        rate, x = read_wav(path_or_data)
    else:
        rate, x = path_or_data
    seg = segment(rate, x, start, end)
    return to_dbfs(goertzel_amplitude(seg, rate, hz))


def rms_dbfs(path_or_data, start=None, end=None):
    """RMS of a segment in dBFS-sine terms (a full-scale sine reads 0)."""
    if isinstance(path_or_data, str):
        rate, x = read_wav(path_or_data)
    else:
        rate, x = path_or_data
    seg = segment(rate, x, start, end)
    if len(seg) == 0:
        return -200.0
    r = math.sqrt(float(np.mean(seg * seg)))
    return to_dbfs(r * math.sqrt(2)) if r > 0 else -200.0


def block_levels(path_or_data, hz, start=None, end=None, block=0.1):
    """dBFS of tone hz in each 100 ms block of the segment."""
    if isinstance(path_or_data, str):
        rate, x = read_wav(path_or_data)
    else:
        rate, x = path_or_data
    seg = segment(rate, x, start, end)
    n = int(rate * block)
    return [to_dbfs(goertzel_amplitude(seg[i:i + n], rate, hz))
            for i in range(0, len(seg) - n + 1, n)]


def tone_level_blocks(path_or_data, hz, start=None, end=None, block=0.1):
    """Median over 100 ms blocks of the dBFS of tone hz."""
    lv = block_levels(path_or_data, hz, start, end, block)
    return float(np.median(lv)) if lv else -200.0


# has_tone/lacks_tone judge 100 ms blocks, not the whole window: one
# click or concealed frame in a long window (a codec or jitter-buffer
# event under load, not a question of who hears whom) can move a
# whole-window measurement by a dB or push broadband energy into an
# absent tone's bin, but it spoils only one or two blocks.
HAS_SHARE = 0.8      # blocks that must show the tone at its level
LACKS_SHARE = 0.9    # blocks that must show the tone absent


def has_tone(path_or_data, hz, level, tol=1.0, start=None, end=None):
    """(ok, median): is hz at level +- tol dB in at least 80 % of the
    100 ms blocks?"""
    lv = block_levels(path_or_data, hz, start, end)
    if not lv:
        return False, -200.0
    share = sum(abs(v - level) <= tol for v in lv) / len(lv)
    return share >= HAS_SHARE, float(np.median(lv))


def lacks_tone(path_or_data, hz, ref_level, below=40.0, start=None,
               end=None):
    """(ok, median): is hz at least `below` dB under ref_level in at least
    90 % of the 100 ms blocks?"""
    lv = block_levels(path_or_data, hz, start, end)
    if not lv:
        return False, -200.0
    share = sum(v <= ref_level - below for v in lv) / len(lv)
    return share >= LACKS_SHARE, float(np.median(lv))


def active_span(path_or_data, hz, level, tol=3.0, block=0.1):
    """Seconds (first, last) of blocks where hz is within tol of level,
    or None: used to see when a participant was heard."""
    if isinstance(path_or_data, str):
        rate, x = read_wav(path_or_data)
    else:
        rate, x = path_or_data
    n = int(rate * block)
    hits = []
    for i in range(0, len(x) - n + 1, n):
        m = to_dbfs(goertzel_amplitude(x[i:i + n], rate, hz))
        if abs(m - level) <= tol:
            hits.append(i / rate)
    if not hits:
        return None
    return hits[0], hits[-1] + block
