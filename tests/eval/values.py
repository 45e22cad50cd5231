"""Real-looking identifiers with correct (or deliberately wrong) checksums,
for the evaluation corpora in tests/data/eval/.  Every "valid" value here
passes the same check the engine's validators apply (core/validate.c):
Luhn for cards, GB 11643 for Chinese resident IDs, ISO 13616 mod-97 for
IBANs, GB 32100 for unified social credit codes; "bad" values differ from a
valid one in exactly the check digit, or carry an impossible field, so a
rule that skips the check is caught.  Python 3 standard library only."""

import random
import string

# ---- payment cards (Luhn) ----

def luhn_digit(body):
    """Check digit that makes body + digit pass Luhn."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # these get doubled once the check digit is appended
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_ok(num):
    digits = [int(c) for c in num if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


CARD_PREFIXES = [  # (IIN prefix, length, brand)
    ("4", 16, "visa"), ("51", 16, "mastercard"), ("55", 16, "mastercard"),
    ("2221", 16, "mastercard"), ("2720", 16, "mastercard"), ("34", 15, "amex"),
    ("37", 15, "amex"), ("6011", 16, "discover"), ("65", 16, "discover"),
    ("62", 16, "unionpay"), ("62", 19, "unionpay"), ("35", 16, "jcb"),
]


def card(rng, bad=False):
    prefix, length, brand = rng.choice(CARD_PREFIXES)
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    check = luhn_digit(body)
    if bad:
        check = str((int(check) + rng.randint(1, 9)) % 10)
    num = body + check
    assert luhn_ok(num) != bad
    return num, brand


def group_card(num, rng):
    style = rng.choice(["plain", "space", "dash"])
    if style == "plain":
        return num
    sep = " " if style == "space" else "-"
    if len(num) == 15:
        parts = [num[:4], num[4:10], num[10:]]
    else:
        parts = [num[i:i + 4] for i in range(0, len(num), 4)]
    return sep.join(parts)

# ---- Chinese resident ID (GB 11643-1999) ----

CN_REGIONS = ["110101", "110105", "310104", "310115", "440305", "440106", "330106",
              "320102", "510107", "420102", "610113", "370202", "350203", "120103",
              "500103", "210102", "430104", "530102"]
CN_ID_W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
CN_ID_C = "10X98765432"


def cn_id_check(body17):
    return CN_ID_C[sum(int(c) * w for c, w in zip(body17, CN_ID_W)) % 11]


def cn_id(rng, bad=None):
    """bad: None (valid), "check" (wrong check character), "date" (impossible date)."""
    region = rng.choice(CN_REGIONS)
    y = rng.randint(1950, 2005)
    m = rng.randint(1, 12)
    d = rng.randint(1, 28)
    if bad == "date":
        m, d = rng.choice([(2, 30), (2, 31), (4, 31), (6, 31), (9, 31), (11, 31)])
    seq = "%03d" % rng.randint(1, 999)
    body = "%s%04d%02d%02d%s" % (region, y, m, d, seq)
    check = cn_id_check(body)
    if bad == "check":
        check = rng.choice([c for c in CN_ID_C if c != check])
    return body + check

# ---- IBAN (ISO 13616, mod 97) ----

IBAN_FORMATS = {  # country: (total length, BBAN generator spec: n digits / a upper / c alnum)
    "DE": (22, "18n"), "GB": (22, "4a14n"), "FR": (27, "10n11c2n"), "ES": (24, "20n"),
    "IT": (27, "1a10n12c"), "NL": (18, "4a10n"), "CH": (21, "5n12c"), "BE": (16, "12n"),
    "AT": (20, "16n"), "PL": (28, "24n"), "SE": (24, "20n"), "IE": (22, "4a14n"),
}


def _bban(rng, spec):
    out = []
    num = ""
    for ch in spec:
        if ch.isdigit():
            num += ch
            continue
        n = int(num)
        num = ""
        pool = {"n": string.digits, "a": string.ascii_uppercase,
                "c": string.ascii_uppercase + string.digits}[ch]
        out.append("".join(rng.choice(pool) for _ in range(n)))
    return "".join(out)


def iban_mod97(s):
    r = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in r)) % 97


def iban(rng, bad=False):
    cc = rng.choice(sorted(IBAN_FORMATS))
    length, spec = IBAN_FORMATS[cc]
    bban = _bban(rng, spec)
    assert len(bban) + 4 == length, cc
    check = 98 - iban_mod97(cc + "00" + bban)
    if bad:
        check = (check + rng.randint(1, 90)) % 97 + 2
        if check == 98 - iban_mod97(cc + "00" + bban):
            check = check % 97 + 2
    value = "%s%02d%s" % (cc, check, bban)
    assert (iban_mod97(value) == 1) != bad
    return value


def group_iban(value, rng):
    if rng.random() < 0.5:
        return value
    return " ".join(value[i:i + 4] for i in range(0, len(value), 4))

# ---- Chinese unified social credit code (GB 32100-2015) ----

USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_W = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def uscc(rng, bad=False):
    head = rng.choice(["91", "92", "93", "11", "12", "51", "52", "Y1"])
    region = rng.choice(CN_REGIONS)
    org = "".join(rng.choice(USCC_CHARS[:10] + "ABCDEFGHJKLMNPQRTUWXY") for _ in range(9))
    body = head + region + org
    s = sum(USCC_CHARS.index(c) * w for c, w in zip(body, USCC_W))
    check = USCC_CHARS[(31 - s % 31) % 31]
    if bad:
        check = rng.choice([c for c in USCC_CHARS if c != check])
    return body + check

# ---- the rest ----

def ssn(rng, bad=False):
    if bad:
        area = rng.choice(["000", "666", "9%02d" % rng.randint(0, 99)])
        group, serial = "%02d" % rng.randint(1, 99), "%04d" % rng.randint(1, 9999)
        if rng.random() < 0.3:
            area, group = "%03d" % rng.randint(1, 665), "00"
    else:
        area = "%03d" % rng.choice([rng.randint(1, 665), rng.randint(667, 899)])
        group, serial = "%02d" % rng.randint(1, 99), "%04d" % rng.randint(1, 9999)
    return "%s-%s-%s" % (area, group, serial)


def ipv4(rng, bad=False):
    octs = [rng.randint(1, 223), rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254)]
    if bad:
        octs[rng.randint(0, 3)] = rng.randint(256, 999)
    return ".".join(map(str, octs))


def ipv6(rng):
    groups = ["%x" % rng.randint(0, 0xffff) for _ in range(8)]
    if rng.random() < 0.5:
        return "2001:db8:%s::%s" % (groups[2], groups[7])
    return ":".join(groups)


def cn_mobile(rng, bad=False):
    second = rng.choice("3456789") if not bad else rng.choice("012")
    num = "1" + second + "".join(rng.choice(string.digits) for _ in range(9))
    if bad:  # 10/11/12 prefixes are not mobile numbers; no +86 (that would be a landline shape)
        return num
    style = rng.random()
    if style < 0.2:
        return "+86 " + num
    if style < 0.4:
        return "%s %s %s" % (num[:3], num[3:7], num[7:])
    if style < 0.5:
        return "%s-%s-%s" % (num[:3], num[3:7], num[7:])
    return num


E164 = [("+44", 10), ("+49", 11), ("+33", 9), ("+1", 10), ("+81", 10), ("+61", 9),
        ("+852", 8), ("+886", 9), ("+65", 8)]


def intl_phone(rng):
    cc, n = rng.choice(E164)
    digits = str(rng.randint(2, 9)) + "".join(rng.choice(string.digits) for _ in range(n - 1))
    if cc == "+1":
        return rng.choice(["%s %s-%s-%s" % (cc, digits[:3], digits[3:6], digits[6:]),
                           "%s (%s) %s-%s" % (cc, digits[:3], digits[3:6], digits[6:]),
                           cc + digits])
    return rng.choice([cc + digits, "%s %s %s" % (cc, digits[:3], digits[3:])])


def us_phone(rng):
    a = "%d%02d" % (rng.randint(2, 9), rng.randint(0, 99))
    b = "%d%02d" % (rng.randint(2, 9), rng.randint(0, 99))
    c = "%04d" % rng.randint(0, 9999)
    return rng.choice(["(%s) %s-%s" % (a, b, c), "%s-%s-%s" % (a, b, c), "%s.%s.%s" % (a, b, c)])


def cn_passport(rng):
    return rng.choice("EG") + "".join(rng.choice(string.digits) for _ in range(8))


FIRST = ["alice", "bob", "chen.wei", "li.na", "zhang_san", "maria", "j.smith", "wang.fang",
         "o.brien", "liu-yang", "sam+news", "k.tanaka"]
DOMAINS = ["example.com", "mail.example.org", "qq.com", "163.com", "gmail.com",
           "company.co.uk", "outlook.com", "univ.edu.cn", "foxmail.com", "corp.example.net"]


def email(rng):
    return "%s%s@%s" % (rng.choice(FIRST), rng.choice(["", str(rng.randint(1, 99))]),
                        rng.choice(DOMAINS))

# ---- secrets ----

B64 = string.ascii_letters + string.digits
B64URL = B64 + "-_"


def rand(rng, pool, n):
    return "".join(rng.choice(pool) for _ in range(n))


def jwt(rng):
    import base64
    import json

    def enc(obj):
        return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()

    head = enc({"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"})
    body = enc({"sub": str(rng.randint(1000, 99999)), "name": rng.choice(FIRST),
                "iat": 1700000000 + rng.randint(0, 10 ** 7)})
    return "%s.%s.%s" % (head, body, rand(rng, B64URL, 43))


def pem_key(rng):
    kind = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
    lines = [rand(rng, B64 + "+/", 64) for _ in range(rng.randint(3, 6))]
    return "-----BEGIN %s-----\n%s\n-----END %s-----" % (kind, "\n".join(lines), kind)


def secret(rng, kind):
    """A value in the provider's documented format, random (not a live key)."""
    up = string.ascii_uppercase + "234567"
    if kind == "aws_access_key_id":
        return rng.choice(["AKIA", "ASIA"]) + rand(rng, up, 16)
    if kind == "aws_secret_access_key":
        # a bare 40-character string is indistinguishable from any other
        # base64: the value is only recognisable with its name
        return rng.choice(["aws_secret_access_key = ", "AWS_SECRET_ACCESS_KEY=", "aws_secret_access_key: "]) + \
            rand(rng, B64 + "+/", 40)
    if kind == "github_token":
        return rng.choice(["ghp_", "gho_", "ghs_", "ghu_"]) + rand(rng, B64, 36)
    if kind == "github_pat":
        return "github_pat_" + rand(rng, B64, 22) + "_" + rand(rng, B64, 59)
    if kind == "gitlab_token":
        return "glpat-" + rand(rng, B64URL, 20)
    if kind == "slack_token":
        return "xoxb-%d-%d-%s" % (rng.randint(10 ** 10, 10 ** 11), rng.randint(10 ** 12, 10 ** 13), rand(rng, B64, 24))
    if kind == "stripe_key":
        return rng.choice(["sk_live_", "rk_live_"]) + rand(rng, B64, rng.choice([24, 34, 99]))
    if kind == "openai_key":
        return rng.choice(["sk-proj-" + rand(rng, B64URL, 48) + "T3BlbkFJ" + rand(rng, B64URL, 48),
                           "sk-" + rand(rng, B64, 20) + "T3BlbkFJ" + rand(rng, B64, 20)])
    if kind == "anthropic_key":
        return "sk-ant-api03-" + rand(rng, B64URL, 93) + "AA"
    if kind == "huggingface_token":
        return "hf_" + rand(rng, string.ascii_letters, 34)
    if kind == "google_api_key":
        return "AIza" + rand(rng, B64URL, 35)
    if kind == "azure_storage_key":
        return "AccountKey=" + rand(rng, B64 + "+/", 86) + "=="
    if kind == "jwt":
        return jwt(rng)
    if kind == "private_key":
        return pem_key(rng)
    if kind == "connection_string":
        user = rng.choice(["admin", "app", "postgres", "root", "svc_orders"])
        pw = rand(rng, B64, rng.randint(12, 20))
        return rng.choice([
            "postgres://%s:%s@db.internal.example:5432/orders" % (user, pw),
            "postgresql://%s:%s@10.0.3.7/analytics" % (user, pw),
            "mysql://%s:%s@mysql.example.com:3306/shop" % (user, pw),
            "mongodb+srv://%s:%s@cluster0.example.mongodb.net/test" % (user, pw),
            "redis://:%s@cache.example.com:6379/0" % pw,
            "amqp://%s:%s@rabbit.example.com:5672/" % (user, pw),
        ])
    if kind == "generic_password":
        key = rng.choice(["password", "passwd", "api_key", "apikey", "secret", "db_password",
                          "client_secret", "API_KEY", "PASSWORD", "auth_token"])
        val = rand(rng, B64 + "!#%^*", rng.randint(14, 28))
        return rng.choice(["%s=%s" % (key, val), "%s: %s" % (key, val), '%s = "%s"' % (key, val),
                           "%s: '%s'" % (key, val)])
    raise ValueError(kind)


SECRET_KINDS = ["aws_access_key_id", "aws_secret_access_key", "github_token", "github_pat",
                "gitlab_token", "slack_token", "stripe_key", "openai_key", "anthropic_key",
                "huggingface_token", "google_api_key", "azure_storage_key", "jwt", "private_key",
                "connection_string", "generic_password"]
