/* Validator tests: well-known public test values (card networks' test
 * numbers, the GB 11643 specimen ID, ECBS/Wikipedia example IBANs), values
 * whose check character is computed here by an independent
 * implementation, and near-misses (one character changed, wrong lengths,
 * impossible dates, forbidden characters). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "policy.h"
#include "validate.h"

#define V(fn, s) fn(s, strlen(s))

/* Change character i to the next digit (or letter), keeping the class. */
static void bump(char *s, size_t i)
{
    char c = s[i];
    if (c >= '0' && c <= '9')
        s[i] = c == '9' ? '0' : (char)(c + 1);
    else if (c >= 'A' && c <= 'Z')
        s[i] = c == 'Z' ? 'A' : (char)(c + 1);
}

Test(validate_luhn, valid_cards)
{
    const char *ok[] = { "4111111111111111", "5555555555554444", "378282246310005",
                         "6011111111111117", "4012888888881881", "30569309025904",
                         "3530111333300000", "4111 1111 1111 1111", "4111-1111-1111-1111",
                         "371449635398431", "6011000990139424", "4000056655665556" };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        cr_assert(V(lg_valid_luhn, ok[i]), "%s", ok[i]);
}

Test(validate_luhn, near_misses)
{
    const char *bad[] = { "4111111111111112", "5555555555554443", "411111111111",
                          "41111111111111111111" /* 20 digits */, "4111x111111111111",
                          "", "4111_1111_1111_1111", "00000000000" /* 11 digits */ };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert(!V(lg_valid_luhn, bad[i]), "%s", bad[i]);
    /* every single-digit change of a valid number breaks the checksum */
    char s[] = "4012888888881881";
    for (size_t i = 0; i < strlen(s); i++) {
        char t[sizeof s];
        memcpy(t, s, sizeof s);
        bump(t, i);
        cr_assert(!V(lg_valid_luhn, t), "%s", t);
    }
    cr_assert(lg_valid_luhn("000000000000", 12), "12 zeros pass Luhn (length is the only bound)");
    cr_assert(!lg_valid_luhn(NULL, 0));
}

/* Independent GB 11643 check character. */
static char cnid_check(const char *s17)
{
    int sum = 0;
    for (int i = 0; i < 17; i++) {
        int w = 1;
        for (int k = 0; k < 17 - i; k++)
            w = w * 2 % 11; /* weight = 2^(17-i) mod 11 */
        sum += (s17[i] - '0') * w;
    }
    int c = (12 - sum % 11) % 11;
    return c == 10 ? 'X' : (char)('0' + c);
}

static void make_cnid(char out[19], const char *s17)
{
    memcpy(out, s17, 17);
    out[17] = cnid_check(s17);
    out[18] = '\0';
}

Test(validate_cn_id, valid)
{
    cr_assert(V(lg_valid_cn_id, "11010519491231002X"), "GB 11643 specimen");
    cr_assert(V(lg_valid_cn_id, "11010519491231002x"), "lower-case x");
    const char *bases[] = { "44052419800101001", "31011520000229123" /* leap day 2000 */,
                            "51010719960229456" /* leap 1996 */, "65010219000101001",
                            "81000021001231999" /* 2100-12-31 */, "12010519901130778" };
    for (size_t i = 0; i < sizeof bases / sizeof *bases; i++) {
        char id[19];
        make_cnid(id, bases[i]);
        cr_assert(V(lg_valid_cn_id, id), "%s", id);
        for (size_t k = 0; k < 17; k++) {
            char t[19];
            memcpy(t, id, 19);
            bump(t, k);
            cr_assert(!V(lg_valid_cn_id, t), "changed digit %zu: %s", k, t);
        }
    }
}

Test(validate_cn_id, near_misses)
{
    const char *bases[] = { "11010519000229001" /* 1900 not leap */,
                            "11010521000229001" /* 2100 not leap */,
                            "11010520230229001", "11010519991301001" /* month 13 */,
                            "11010519990431001" /* April 31 */, "11010518991231001" /* 1899 */,
                            "11010521010101001" /* 2101 */, "01010519491231001" /* region 0 */,
                            "91010519491231001" /* region 9 */, "11010519490000001" };
    for (size_t i = 0; i < sizeof bases / sizeof *bases; i++) {
        char id[19];
        make_cnid(id, bases[i]);
        cr_assert(!V(lg_valid_cn_id, id), "%s", id);
    }
    cr_assert(!V(lg_valid_cn_id, "110105194912310021"), "wrong check digit");
    cr_assert(!V(lg_valid_cn_id, "11010519491231002"), "17 characters");
    cr_assert(!V(lg_valid_cn_id, "11010519491231002X1"));
    cr_assert(!V(lg_valid_cn_id, "1101051949123100AX"));
    cr_assert(!V(lg_valid_cn_id, "110105 19491231002"));
}

Test(validate_iban, valid)
{
    const char *ok[] = { "DE89370400440532013000", "GB82WEST12345698765432",
                         "FR1420041010050500013M02606", "NL91ABNA0417164300", "BE68539007547034",
                         "CH9300762011623852957", "ES9121000418450200051332",
                         "IT60X0542811101000000123456", "NO9386011117947", "AT611904300234573201",
                         "DE89 3704 0044 0532 0130 00", "gb82west12345698765432",
                         "PL61109010140000071219812874", "SE4550000000058398257466" };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        cr_assert(V(lg_valid_iban, ok[i]), "%s", ok[i]);
}

Test(validate_iban, near_misses)
{
    const char *bad[] = { "DE89370400440532013001", "DE88370400440532013000",
                          "DE8937040044053201300" /* short */, "XX89370400440532013000" /* country */,
                          "DE89 3704 0044 0532 0130 00 ", " DE89370400440532013000",
                          "DE89  3704004405320130 00", "DE89370400440532013000000000000000000",
                          "D989370400440532013000", "DEAB370400440532013000", "", "DE89" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert(!V(lg_valid_iban, bad[i]), "%s", bad[i]);
    char s[] = "FR1420041010050500013M02606";
    for (size_t i = 4; i < strlen(s); i++) {
        char t[sizeof s];
        memcpy(t, s, sizeof s);
        bump(t, i);
        cr_assert(!V(lg_valid_iban, t), "%s", t);
    }
}

/* Independent GB 32100 check character. */
static const char *uscc_chars = "0123456789ABCDEFGHJKLMNPQRTUWXY";

static void make_uscc(char out[19], const char *s17)
{
    int sum = 0, w = 1;
    for (int i = 0; i < 17; i++) {
        sum += (int)(strchr(uscc_chars, s17[i]) - uscc_chars) * w;
        w = w * 3 % 31; /* weights are 3^i mod 31 */
    }
    memcpy(out, s17, 17);
    out[17] = uscc_chars[(31 - sum % 31) % 31];
    out[18] = '\0';
}

Test(validate_cn_uscc, valid_and_near_misses)
{
    const char *bases[] = { "91350100M000100Y4", "91110108MA01C7F35", "12100000400000398",
                            "5231000050000000X", "93310115MA1K3PQR0", "31110000358344545" };
    for (size_t i = 0; i < sizeof bases / sizeof *bases; i++) {
        char c[19];
        make_uscc(c, bases[i]);
        cr_assert(V(lg_valid_cn_uscc, c), "%s", c);
        for (size_t k = 0; k < 18; k++) {
            char t[19];
            memcpy(t, c, 19);
            /* next character of the alphabet */
            const char *p = strchr(uscc_chars, t[k]);
            t[k] = p[1] ? p[1] : uscc_chars[0];
            cr_assert(!V(lg_valid_cn_uscc, t), "changed %zu: %s", k, t);
        }
        /* a forbidden letter anywhere */
        const char *forbidden = "IOSVZ";
        for (size_t f = 0; f < 5; f++) {
            char t[19];
            memcpy(t, c, 19);
            t[3] = forbidden[f];
            cr_assert(!V(lg_valid_cn_uscc, t), "%s", t);
        }
    }
    cr_assert(!V(lg_valid_cn_uscc, "91350100M000100Y4"), "17 characters");
    cr_assert(!V(lg_valid_cn_uscc, ""));
    cr_assert(!lg_valid_cn_uscc("91350100M000100Y4\0", 18), "NUL is not in the alphabet");
}

Test(validate_dispatch, by_enum)
{
    cr_assert(lg_validate(LG_VAL_NONE, "anything", 8));
    cr_assert(lg_validate(LG_VAL_LUHN, "4111111111111111", 16));
    cr_assert(!lg_validate(LG_VAL_LUHN, "4111111111111112", 16));
    cr_assert(lg_validate(LG_VAL_CN_ID, "11010519491231002X", 18));
    cr_assert(lg_validate(LG_VAL_IBAN, "NL91ABNA0417164300", 18));
    cr_assert(!lg_validate(LG_VAL_IBAN, "NL91ABNA0417164301", 18));
    char c[19];
    make_uscc(c, "91350100M000100Y4");
    cr_assert(lg_validate(LG_VAL_CN_USCC, c, 18));
    cr_assert(lg_validate(99, "x", 1), "unknown validator accepts (fail safe: still redacted)");
}
