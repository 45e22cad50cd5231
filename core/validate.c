/* Checksum validators (see validate.h).  Sources: Luhn (ISO/IEC 7812-1
 * annex B); GB 11643-1999 for Chinese resident ID numbers (ISO 7064
 * MOD 11-2 check character); ISO 13616 / ECBS IBAN registry for IBAN
 * lengths and the mod-97 check (computed digit by digit, so no big
 * numbers); GB 32100-2015 for unified social credit codes (weighted
 * mod-31 check over an alphabet without I, O, S, V, Z).  All functions
 * are pure and read exactly n bytes. */
#include "validate.h"

#include <string.h>

#include "policy.h"

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ==== Luhn ==== */

int lg_valid_luhn(const char *s, size_t n)
{
    int digits = 0, sum = 0;
    if (!s)
        return 0;
    /* Walk from the right: every second digit is doubled. */
    for (size_t i = n; i-- > 0;) {
        char c = s[i];
        if (c == ' ' || c == '-')
            continue;
        if (!is_digit(c))
            return 0;
        int d = c - '0';
        if (digits & 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
        if (++digits > 19)
            return 0;
    }
    return digits >= 12 && sum % 10 == 0;
}

/* ==== Chinese resident ID (GB 11643) ==== */

static int leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int num(const char *s, int k)
{
    int v = 0;
    for (int i = 0; i < k; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

int lg_valid_cn_id(const char *s, size_t n)
{
    static const int w[17] = { 7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2 };
    static const char check[] = "10X98765432";
    if (!s || n != 18)
        return 0;
    int sum = 0;
    for (int i = 0; i < 17; i++) {
        if (!is_digit(s[i]))
            return 0;
        sum += (s[i] - '0') * w[i];
    }
    char c = s[17] == 'x' ? 'X' : s[17];
    if (c != check[sum % 11])
        return 0;
    if (s[0] < '1' || s[0] > '8')
        return 0;
    int y = num(s + 6, 4), m = num(s + 10, 2), d = num(s + 12, 2);
    static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (y < 1900 || y > 2100 || m < 1 || m > 12 || d < 1)
        return 0;
    int md = mdays[m - 1] + (m == 2 && leap(y));
    return d <= md;
}

/* ==== IBAN (ISO 13616) ==== */

/* Total IBAN lengths per country (SWIFT IBAN registry). */
static const struct { char cc[3]; unsigned char len; } iban_len[] = {
    { "AD", 24 }, { "AE", 23 }, { "AL", 28 }, { "AT", 20 }, { "AZ", 28 }, { "BA", 20 },
    { "BE", 16 }, { "BG", 22 }, { "BH", 22 }, { "BR", 29 }, { "BY", 28 }, { "CH", 21 },
    { "CR", 22 }, { "CY", 28 }, { "CZ", 24 }, { "DE", 22 }, { "DK", 18 }, { "DO", 28 },
    { "EE", 20 }, { "EG", 29 }, { "ES", 24 }, { "FI", 18 }, { "FO", 18 }, { "FR", 27 },
    { "GB", 22 }, { "GE", 22 }, { "GI", 23 }, { "GL", 18 }, { "GR", 27 }, { "GT", 28 },
    { "HR", 21 }, { "HU", 28 }, { "IE", 22 }, { "IL", 23 }, { "IQ", 23 }, { "IS", 26 },
    { "IT", 27 }, { "JO", 30 }, { "KW", 30 }, { "KZ", 20 }, { "LB", 28 }, { "LC", 32 },
    { "LI", 21 }, { "LT", 20 }, { "LU", 20 }, { "LV", 21 }, { "MC", 27 }, { "MD", 24 },
    { "ME", 22 }, { "MK", 19 }, { "MR", 27 }, { "MT", 31 }, { "MU", 30 }, { "NL", 18 },
    { "NO", 15 }, { "PK", 24 }, { "PL", 28 }, { "PS", 29 }, { "PT", 25 }, { "QA", 29 },
    { "RO", 24 }, { "RS", 22 }, { "SA", 24 }, { "SC", 31 }, { "SE", 24 }, { "SI", 19 },
    { "SK", 24 }, { "SM", 27 }, { "ST", 25 }, { "SV", 28 }, { "TL", 23 }, { "TN", 24 },
    { "TR", 26 }, { "UA", 29 }, { "VA", 22 }, { "VG", 24 }, { "XK", 20 },
};

static char upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

int lg_valid_iban(const char *s, size_t n)
{
    char b[34];
    size_t k = 0;
    if (!s)
        return 0;
    /* Compact: drop single spaces between groups (not leading/trailing). */
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == ' ') {
            if (i == 0 || i + 1 == n || s[i + 1] == ' ')
                return 0;
            continue;
        }
        c = upper(c);
        if (!is_digit(c) && !(c >= 'A' && c <= 'Z'))
            return 0;
        if (k == sizeof b)
            return 0;
        b[k++] = c;
    }
    if (k < 15 || !(b[0] >= 'A' && b[0] <= 'Z') || !(b[1] >= 'A' && b[1] <= 'Z') ||
        !is_digit(b[2]) || !is_digit(b[3]))
        return 0;
    size_t want = 0;
    for (size_t i = 0; i < sizeof iban_len / sizeof iban_len[0]; i++)
        if (iban_len[i].cc[0] == b[0] && iban_len[i].cc[1] == b[1])
            want = iban_len[i].len;
    if (want != k)
        return 0;
    /* Rearranged: BBAN, country code, check digits; letters are 10..35. */
    unsigned r = 0;
    for (size_t i = 0; i < k; i++) {
        char c = b[(i + 4) % k];
        if (is_digit(c))
            r = (r * 10 + (unsigned)(c - '0')) % 97;
        else
            r = (r * 100 + (unsigned)(c - 'A' + 10)) % 97;
    }
    return r == 1;
}

/* ==== Chinese unified social credit code (GB 32100) ==== */

static const char uscc_set[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";

int lg_valid_cn_uscc(const char *s, size_t n)
{
    static const int w[17] = { 1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28 };
    if (!s || n != 18)
        return 0;
    int sum = 0;
    for (int i = 0; i < 18; i++) {
        char c = upper(s[i]);
        const char *p = c ? strchr(uscc_set, c) : NULL;
        if (!p)
            return 0;
        int v = (int)(p - uscc_set);
        if (i < 17)
            sum += v * w[i];
        else
            return v == (31 - sum % 31) % 31;
    }
    return 0;
}

int lg_validate(int validator, const char *s, size_t n)
{
    switch (validator) {
    case LG_VAL_NONE:
        return 1;
    case LG_VAL_LUHN:
        return lg_valid_luhn(s, n);
    case LG_VAL_CN_ID:
        return lg_valid_cn_id(s, n);
    case LG_VAL_IBAN:
        return lg_valid_iban(s, n);
    case LG_VAL_CN_USCC:
        return lg_valid_cn_uscc(s, n);
    default:
        return 1; /* unknown validator: accept, a misconfiguration must not leak values */
    }
}
