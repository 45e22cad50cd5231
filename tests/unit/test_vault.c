/* Vault tests: stable placeholders, per-label numbering, restoration,
 * bounds, label checks, lock callbacks, and that every placeholder issued
 * matches LG_VAULT_PATTERN (which the restore rule is built from). */
#include <criterion/criterion.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdio.h>
#include <string.h>

#include "error.h"
#include "vault.h"

static lg_buf out;

static void setup(void)
{
    lg_buf_init(&out, 4096);
}

static void teardown(void)
{
    lg_buf_free(&out);
}

static const char *ph(lg_vault *v, const char *label, const char *val)
{
    lg_buf_reset(&out);
    int rc = lg_vault_placeholder(v, label, val, strlen(val), &out);
    cr_assert_eq(rc, LG_OK, "placeholder(%s, %s): %d", label, val, rc);
    return out.data;
}

TestSuite(vault, .init = setup, .fini = teardown);

Test(vault, stable_and_numbered_per_label)
{
    lg_vault *v = lg_vault_new(100);
    cr_assert_str_eq(ph(v, "EMAIL", "a@b.cc"), "[EMAIL_1]");
    cr_assert_str_eq(ph(v, "EMAIL", "c@d.ee"), "[EMAIL_2]");
    cr_assert_str_eq(ph(v, "PHONE", "+1 555 0100"), "[PHONE_1]");
    cr_assert_str_eq(ph(v, "EMAIL", "a@b.cc"), "[EMAIL_1]", "same value, same placeholder");
    cr_assert_str_eq(ph(v, "PHONE", "a@b.cc"), "[PHONE_2]", "labels are separate");
    cr_assert_str_eq(ph(v, "email", "c@d.ee"), "[EMAIL_2]", "labels are upper-cased");
    cr_assert_eq(lg_vault_count(v), 4);
    lg_vault_free(v);
}

Test(vault, restore)
{
    lg_vault *v = lg_vault_new(100);
    ph(v, "EMAIL", "a@b.cc");
    ph(v, "CN_ID", "11010519491231002X");
    lg_buf_reset(&out);
    cr_assert_eq(lg_vault_restore(v, "[CN_ID_1]", 9, &out), LG_OK);
    cr_assert_str_eq(out.data, "11010519491231002X");
    cr_assert_eq(lg_vault_restore(v, "[EMAIL_1]", 9, &out), LG_OK);
    cr_assert_str_eq(out.data, "11010519491231002Xa@b.cc", "appends");
    lg_buf_reset(&out);
    cr_assert_eq(lg_vault_restore(v, "[EMAIL_2]", 9, &out), LG_E_INVAL);
    cr_assert_eq(lg_vault_restore(v, "[EMAIL_1", 8, &out), LG_E_INVAL);
    cr_assert_eq(lg_vault_restore(v, "[email_1]", 9, &out), LG_E_INVAL);
    cr_assert_eq(out.len, 0, "nothing appended on failure");
    lg_vault_free(v);
}

Test(vault, binary_values_and_empty)
{
    lg_vault *v = lg_vault_new(10);
    lg_buf_reset(&out);
    cr_assert_eq(lg_vault_placeholder(v, "X", "a\0b", 3, &out), LG_OK);
    cr_assert_str_eq(out.data, "[X_1]");
    lg_buf_reset(&out);
    cr_assert_eq(lg_vault_placeholder(v, "X", "a\0c", 3, &out), LG_OK);
    cr_assert_str_eq(out.data, "[X_2]", "bytes after a NUL count");
    lg_buf_reset(&out);
    cr_assert_eq(lg_vault_restore(v, "[X_1]", 5, &out), LG_OK);
    cr_assert_eq(out.len, 3);
    cr_assert(memcmp(out.data, "a\0b", 3) == 0);
    lg_vault_free(v);
}

Test(vault, bounded)
{
    lg_vault *v = lg_vault_new(3);
    ph(v, "A", "1");
    ph(v, "A", "2");
    ph(v, "B", "1");
    lg_buf_reset(&out);
    cr_assert_eq(lg_vault_placeholder(v, "A", "3", 1, &out), LG_E_LIMIT);
    cr_assert_eq(out.len, 0);
    cr_assert_str_eq(ph(v, "A", "2"), "[A_2]", "known values still work when full");
    cr_assert_eq(lg_vault_count(v), 3);
    lg_vault_free(v);

    v = lg_vault_new(0);
    cr_assert_eq(lg_vault_placeholder(v, "A", "3", 1, &out), LG_E_LIMIT);
    lg_vault_free(v);
}

Test(vault, bad_labels)
{
    lg_vault *v = lg_vault_new(10);
    const char *bad[] = { "", "1ABC", "_A", "A-B", "A B", "\xc3\x89T\xc3\x89",
                          "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG" /* 33 */ };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(lg_vault_placeholder(v, bad[i], "x", 1, &out), LG_E_INVAL, "%s", bad[i]);
    cr_assert_eq(lg_vault_placeholder(v, NULL, "x", 1, &out), LG_E_INVAL);
    cr_assert_eq(lg_vault_placeholder(NULL, "A", "x", 1, &out), LG_E_INVAL);
    cr_assert_str_eq(ph(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF", "x"),
                     "[ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF_1]");
    cr_assert_str_eq(ph(v, "A_1", "x"), "[A_1_1]");
    lg_vault_free(v);
}

Test(vault, many_entries_grow_and_match_pattern)
{
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR) "^" LG_VAULT_PATTERN "$", PCRE2_ZERO_TERMINATED,
                                   0, &ec, &eo, NULL);
    cr_assert_not_null(re);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    lg_vault *v = lg_vault_new(5000);
    char val[32], exp[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(val, sizeof val, "user%d@example.com", i);
        const char *label = i % 2 ? "EMAIL" : "PHONE_NUMBER";
        const char *p = ph(v, label, val);
        snprintf(exp, sizeof exp, "[%s_%d]", label, i / 2 + 1);
        cr_assert_str_eq(p, exp);
        cr_assert_gt(pcre2_match(re, (PCRE2_SPTR)p, strlen(p), 0, 0, md, NULL), 0, "%s", p);
    }
    for (int i = 0; i < 5000; i += 7) {
        snprintf(val, sizeof val, "user%d@example.com", i);
        const char *label = i % 2 ? "EMAIL" : "PHONE_NUMBER";
        snprintf(exp, sizeof exp, "[%s_%d]", label, i / 2 + 1);
        cr_assert_str_eq(ph(v, label, val), exp);
        lg_buf_reset(&out);
        cr_assert_eq(lg_vault_restore(v, exp, strlen(exp), &out), LG_OK);
        cr_assert_str_eq(out.data, val);
    }
    cr_assert_eq(lg_vault_count(v), 5000);
    lg_vault_free(v);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
}

static int depth, calls, max_depth;

static void lk(void *ud)
{
    cr_assert_eq(ud, &depth);
    depth++;
    calls++;
    if (depth > max_depth)
        max_depth = depth;
}

static void ulk(void *ud)
{
    cr_assert_eq(ud, &depth);
    depth--;
}

Test(vault, lock_callbacks)
{
    lg_vault *v = lg_vault_new(2);
    lg_vault_set_lock(v, lk, ulk, &depth);
    ph(v, "A", "x");
    ph(v, "A", "x");
    lg_vault_placeholder(v, "A", "y", 1, &out);
    lg_vault_placeholder(v, "A", "z", 1, &out); /* full: still balanced */
    lg_vault_restore(v, "[A_1]", 5, &out);
    lg_vault_restore(v, "[A_9]", 5, &out);
    (void)lg_vault_count(v);
    cr_assert_eq(calls, 7);
    cr_assert_eq(depth, 0);
    cr_assert_eq(max_depth, 1, "never nested");
    lg_vault_set_lock(v, NULL, NULL, NULL);
    ph(v, "A", "x");
    cr_assert_eq(calls, 7);
    lg_vault_free(v);
    lg_vault_free(NULL);
}
