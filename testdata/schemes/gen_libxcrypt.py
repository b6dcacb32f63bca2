#!/usr/bin/env python3
"""Regenerate libxcrypt.json: hashes made by the system crypt(3)
(libxcrypt 4.4.33 on Debian 12), used by schemes/libxcrypt_test.go as a
differential check of authd's pure-Go crypt(3) family.

Run: python3 testdata/schemes/gen_libxcrypt.py > testdata/schemes/libxcrypt.json
(Python 3.11's deprecated crypt module calls the system crypt().)
"""
import json, random, sys, warnings
warnings.simplefilter("ignore")
import crypt

ITOA = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
rnd = random.Random(20240601)

def salt(n):
    return "".join(rnd.choice(ITOA) for _ in range(n))

def enc_uint32(src, minv):
    # yescrypt's variable-length number encoding (encode64_uint32)
    start, end, chars, bits = 0, 47, 1, 0
    src -= minv
    while True:
        count = (end + 1 - start) << bits
        if src < count:
            break
        start = end + 1
        end = start + (62 - end) // 2
        src -= count
        chars += 1
        bits += 6
    out = ITOA[start + (src >> bits)]
    while chars > 1:
        chars -= 1
        bits -= 6
        out += ITOA[(src >> bits) & 0x3F]
    return out

def enc64(b):
    out = ""
    for i in range(0, len(b), 3):
        g = b[i:i + 3]
        v = sum(x << (8 * j) for j, x in enumerate(g))
        for _ in range(len(g) + 1):
            out += ITOA[v & 63]
            v >>= 6
    return out

def yescrypt_setting(flavor, nlog, r, p=1, t=0, saltlen=16):
    s = "$y$" + enc_uint32(flavor, 0) + enc_uint32(nlog, 1) + enc_uint32(r, 1)
    have = (1 if p != 1 else 0) | (2 if t else 0)
    if have:
        s += enc_uint32(have, 1)
        if p != 1:
            s += enc_uint32(p, 2)
        if t:
            s += enc_uint32(t, 1)
    return s + "$" + enc64(bytes(rnd.randrange(256) for _ in range(saltlen)))

PASSWORDS = ["secret", "", "p", "pässwörd-€-日本語-🔑", "x" * 100,
             "The quick brown fox jumps over the lazy dog; 0123456789 !#%&()*+-./:<=>?@[]^_{|}~"]

settings = []
# yescrypt: the default RW flavor (47 = 'j'), WORM (1) and classic scrypt (0)
for nlog, r in [(4, 1), (6, 8), (8, 2), (10, 8), (12, 32), (11, 16)]:
    settings.append(yescrypt_setting(47, nlog, r))
for p, t in [(2, 0), (3, 1), (1, 2), (4, 3), (1, 1)]:
    settings.append(yescrypt_setting(47, 8, 4, p, t))
for nlog, r, t in [(8, 8, 0), (10, 4, 1), (6, 2, 2)]:
    settings.append(yescrypt_setting(1, nlog, r, 1, t))
for nlog, r, p in [(8, 8, 1), (10, 2, 2)]:
    settings.append(yescrypt_setting(0, nlog, r, p))
for n in (1, 8, 32, 64):
    settings.append(yescrypt_setting(47, 8, 8, saltlen=n))
settings += ["$y$j9T$" + enc64(bytes(rnd.randrange(256) for _ in range(16)))]
# classic scrypt $7$: N log2, r and p as 30-bit little-endian groups
def fixed30(v):
    return "".join(ITOA[(v >> (6 * i)) & 63] for i in range(5))
for nlog, r, p in [(10, 8, 1), (8, 4, 2), (12, 1, 1)]:
    settings.append("$7$" + ITOA[nlog] + fixed30(r) + fixed30(p) + salt(rnd.randrange(1, 40)))
# NetBSD sha1crypt
for it in (1, 2, 1000, 4321):
    settings.append("$sha1$%d$%s$" % (it, salt(rnd.randrange(1, 65))))
# SHA-crypt, MD5-crypt, DES, bigcrypt, BSDi, NT
for n in (0, 1, 8, 15, 16, 20):
    settings.append("$6$" + salt(n))
    settings.append("$5$rounds=%d$%s" % (rnd.randrange(1000, 3000), salt(n)))
for n in (0, 1, 8, 9):
    settings.append("$1$" + salt(n))
for _ in range(4):
    settings.append(salt(2))
    settings.append(salt(2) + "x" * 22)
    count = rnd.randrange(1, 5000)  # real BSDi hashes use small counts ("_J9.." = 725)
    settings.append("_" + "".join(ITOA[(count >> (6 * i)) & 63] for i in range(4)) + salt(4))
settings.append("$3$")
settings.append("$2b$04$" + salt(22))
# gost-yescrypt: yescrypt settings with "$gy$" (small N: the test runs
# under the race detector), and libxcrypt's default cost once.
for nlog, r, p, t, flavor, n in [(10, 8, 1, 0, 47, 16), (11, 8, 1, 0, 47, 8), (8, 4, 2, 1, 47, 16),
                                 (8, 8, 1, 0, 1, 16), (9, 2, 1, 0, 0, 1)]:
    settings.append("$gy$" + yescrypt_setting(flavor, nlog, r, p, t, n)[3:])
settings.append("$gy$j9T$" + enc64(bytes(rnd.randrange(256) for _ in range(16))))
# Sun MD5: both separators, with and without rounds=, the "$$" form,
# an empty salt, and a rounds= that wraps the 32-bit count (4095 rounds).
for s in ["$md5$" + salt(8), "$md5$" + salt(8) + "$", "$md5," + salt(5) + "$",
          "$md5,rounds=1$" + salt(8) + "$", "$md5,rounds=%d$%s$" % (rnd.randrange(32768, 102400), salt(8)),
          "$md5$rounds=4000$" + salt(2), "$md5$", "$md5,rounds=4294967295$" + salt(4) + "$"]:
    settings.append(s)

vectors = []
for s in settings:
    for pw in PASSWORDS:
        h = crypt.crypt(pw, s)
        if h is None or h.startswith("*"):
            continue
        vectors.append({"password": pw, "hash": h})
json.dump(vectors, sys.stdout, ensure_ascii=False, indent=0)
print()
